"""paydesk.services._sql: one-statement inserts that tolerate a conflict.

Exercised end to end by the webhook and ledger tests; here, the statement on its own: a new
row, a conflicting one (DO NOTHING and DO UPDATE ... + 1), and the psycopg cursor path falling
back to Django's ordinary cursor when Django's private ``_prepare_cursor`` is not there.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from paydesk.models import WebhookEvent
from paydesk.services import _sql

pytestmark = pytest.mark.django_db


def delivery(event_id: str) -> WebhookEvent:
    return WebhookEvent(
        provider="sandbox",
        event_type="payment.succeeded",
        event_id=event_id,
        payload={"id": event_id, "amount": "25.00"},
        body=json.dumps({"id": event_id}),
        headers={"Content-Type": "application/json"},
        signature="t=1,v1=ab",
        ip_address="127.0.0.1",
    )


def store(event_id: str, *, increment: str | None) -> dict | None:
    fields = [WebhookEvent._meta.pk, WebhookEvent._meta.get_field("deliveries")]
    return _sql.insert_on_conflict(
        delivery(event_id),
        using="default",
        unique=("provider", "event_id"),
        increment=increment,
        returning=fields,
    )


def test_a_new_row_then_a_conflict():
    if not _sql.supported("default"):
        pytest.skip("this database keeps the ORM fallback")  # pragma: no cover
    first = store("evt_1", increment="deliveries")
    assert first is not None
    assert first["deliveries"] == 1
    again = store("evt_1", increment="deliveries")
    assert again == {"id": first["id"], "deliveries": 2}
    assert store("evt_1", increment=None) is None  # DO NOTHING returns no row
    row = WebhookEvent.objects.get(pk=first["id"])
    assert (row.deliveries, row.payload, row.headers) == (
        2,
        {"id": "evt_1", "amount": "25.00"},
        {"Content-Type": "application/json"},
    )


@pytest.mark.postgres
def test_without_djangos_private_cursor_hook_the_ordinary_cursor_is_used(monkeypatch):
    monkeypatch.setattr(_sql, "_PREPARE_HOOK", "_no_such_hook_in_this_django")
    assert not hasattr(connection, _sql._PREPARE_HOOK)
    first = store("evt_2", increment="deliveries")
    assert first is not None
    assert store("evt_2", increment="deliveries") == {"id": first["id"], "deliveries": 2}
