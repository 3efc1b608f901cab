"""paydesk.services._sql: one-statement inserts that tolerate a conflict.

Exercised end to end by the webhook and ledger tests; here, the statement on its own: a new
row, a conflicting one (DO NOTHING and DO UPDATE ... + 1), and the psycopg cursor path falling
back to Django's ordinary cursor when Django's private ``_prepare_cursor`` is not there, the
kept psycopg cursor, and the literal defaults; and ``select_one``, the one-row read the
webhook path uses instead of a compiled ``.get()``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import isolate_apps

from paydesk.models import Payment, TransactionLog, WebhookEvent
from paydesk.services import _sql, ledger
from paydesk.states import LedgerKind

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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # it closes the connection
def test_the_psycopg_cursor_is_kept_per_connection_and_replaced_after_a_reconnect():
    from django.test.utils import CaptureQueriesContext

    assert store("evt_k1", increment="deliveries") is not None
    kept = getattr(connection, _sql._KEPT)
    assert store("evt_k2", increment="deliveries") is not None
    assert getattr(connection, _sql._KEPT) is kept  # reused, not made again
    # Still Django's cursor wrapper around it: the statement is logged when queries are.
    with CaptureQueriesContext(connection) as ctx:
        store("evt_k3", increment="deliveries")
    assert len(ctx.captured_queries) == 1
    assert "ON CONFLICT" in ctx.captured_queries[0]["sql"]
    # A closed connection (e.g. CONN_MAX_AGE, a failed health check) reconnects with a new
    # psycopg connection; the old cursor is not used on it.
    connection.close()
    assert kept.closed or kept.connection.closed
    assert store("evt_k4", increment="deliveries") is not None
    assert getattr(connection, _sql._KEPT) is not kept
    assert WebhookEvent.objects.filter(event_id__startswith="evt_k").count() == 4


# -- constant defaults written into the statement -------------------------------------------


def test_columns_at_their_constant_default_are_literals_and_the_rest_parameters():
    if not _sql.supported("default"):
        pytest.skip("this database keeps the ORM fallback")  # pragma: no cover
    store("evt_lit", increment="deliveries")
    fields = (WebhookEvent._meta.pk, WebhookEvent._meta.get_field("deliveries"))
    plan = _sql._plan(WebhookEvent, "default", ("provider", "event_id"), "deliveries", fields)
    (statement,) = plan.variants.values()
    # What the request brought (and the creation time) is sent; flags, counters, empty
    # texts and unset dates at their defaults are written into the statement.
    assert {f.name for f in statement.fields} == {
        "provider",
        "event_type",
        "event_id",
        "payload",
        "body",
        "headers",
        "signature",
        "ip_address",
        "created_at",
    }
    for literal in ("'pending'", "FALSE", "NULL"):
        assert literal in statement.sql
    assert statement.sql.count("%s") == len(statement.fields)


def test_values_that_differ_from_the_default_are_stored_as_given():
    if not _sql.supported("default"):
        pytest.skip("this database keeps the ORM fallback")  # pragma: no cover
    row = delivery("evt_odd")
    # Every column that could be a literal, away from its default; texts with quotes,
    # backslashes and percent signs, booleans and integers of the "other" type.
    row.status = "dead"
    row.processed = True
    row.success = False
    row.attempts = 3
    row.deliveries = 1
    row.error_message = "it's 100% \\ broken"
    row.traceback = "%s %(x)s"
    row.payment_id = "pay_'x"
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    row.next_retry_at = when
    stored = _sql.insert_on_conflict(
        row, using="default", unique=("provider", "event_id"), increment="deliveries"
    )
    assert stored is not None
    got = WebhookEvent.objects.get(pk=stored["id"])
    assert (got.status, got.processed, got.success, got.attempts, got.deliveries) == (
        "dead",
        True,
        False,
        3,
        1,
    )
    assert got.error_message == "it's 100% \\ broken"
    assert got.traceback == "%s %(x)s"
    assert got.payment_id == "pay_'x"
    assert got.next_retry_at == when
    # The default-valued twin right after uses the other statement, and both stay right.
    again = store("evt_plain", increment="deliveries")
    assert again is not None
    plain = WebhookEvent.objects.get(pk=again["id"])
    assert (plain.status, plain.processed, plain.attempts, plain.next_retry_at) == (
        "pending",
        False,
        0,
        None,
    )


@isolate_apps("paydesk")
def test_only_plain_constant_defaults_qualify():
    from django.db import models

    class Probe(models.Model):
        flag = models.BooleanField(default=False)
        count = models.PositiveIntegerField(default=0)
        label = models.CharField(max_length=20, default="plain-text_1.0")
        quoted = models.CharField(max_length=20, default="it's")
        percent = models.CharField(max_length=20, default="100%")
        made = models.CharField(max_length=20, default=str)
        bare = models.CharField(max_length=20)
        when = models.DateTimeField(null=True)
        required_when = models.DateTimeField(default=None, null=False)
        stamped = models.DateTimeField(auto_now_add=True, null=True)
        data = models.JSONField(null=True)

        class Meta:
            app_label = "paydesk"
            managed = False

        def __str__(self) -> str:
            return "probe"

    got = {f.name: _sql._constant(f) for f in Probe._meta.concrete_fields}
    missing = _sql._MISSING
    assert got["flag"] is False
    assert got["count"] == 0
    assert got["label"] == "plain-text_1.0"
    assert got["bare"] == ""
    assert got["when"] is None
    for name in ("id", "quoted", "percent", "made", "required_when", "stamped", "data"):
        assert got[name] is missing, name


def test_a_value_of_another_type_is_not_the_default():
    assert _sql._same(0, 0)
    assert _sql._same(None, None)
    assert _sql._same("", "")
    assert not _sql._same(True, 1)
    assert not _sql._same(0, False)
    assert not _sql._same(1.0, 1)


def test_select_one_loads_the_row_the_orm_loads():
    payment = Payment.objects.create(
        amount=Decimal("25.00"),
        currency="USD",
        provider="sandbox",
        next_action={"type": "redirect", "redirect_url": "https://example.com/"},
        metadata={"order": 7},
    )
    with transaction.atomic():
        found = _sql.select_one(
            Payment, using="default", where={"id": payment.pk, "provider": "sandbox"}, lock=True
        )
    loaded = Payment.objects.get(pk=payment.pk)
    assert found is not None
    for field in Payment._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(loaded, field.attname), field.name
        assert type(getattr(found, field.attname)) is type(getattr(loaded, field.attname))
    assert (found._state.adding, found._state.db) == (False, "default")
    where = {"id": payment.pk, "provider": "stripe"}
    assert _sql.select_one(Payment, using="default", where=where) is None


@pytest.mark.django_db(transaction=True)
def test_select_one_locks_only_inside_a_transaction():
    # As select_for_update(): a lock outside a transaction would be released at once.
    with pytest.raises(TransactionManagementError):
        _sql.select_one(Payment, using="default", where={"id": "pay_x"}, lock=True)


def test_the_folds_read_is_the_ledgers_facts_in_any_order():
    payment = Payment.objects.create(amount=Decimal("25.00"), currency="USD", provider="sandbox")
    with transaction.atomic():
        ledger.append(payment, kind=LedgerKind.AUTHORIZATION, key="a", amount=Decimal("25.00"))
        ledger.append(payment, kind=LedgerKind.CAPTURE, key="c", amount=Decimal("10.5"), ref="r")
        ledger.append(payment, kind=LedgerKind.NOTE, key="n", attempt=2, message="hi")
    facts = ledger._facts(payment)
    expected = TransactionLog.objects.filter(payment=payment).facts()
    assert sorted(facts, key=lambda f: f.key) == sorted(expected, key=lambda f: f.key)
    assert [type(f.amount) for f in sorted(facts, key=lambda f: f.key)] == [
        Decimal,
        Decimal,
        type(None),
    ]
