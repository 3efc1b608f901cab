"""The dashboard's audit log page: filters, pagination, escaping, constant queries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from paydesk.models import AuditLog
from paydesk.security.audit import AuditLogger

pytestmark = pytest.mark.django_db

URL = reverse("paydesk_dashboard:audit")
XSS = '<script>alert("x")</script>'


@pytest.fixture
def staff(django_user_model: Any) -> User:
    user: User = django_user_model.objects.create_user(
        username="auditor", password="pw", is_staff=True
    )
    return user


@pytest.fixture
def staff_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


@pytest.fixture
def entries(staff: User) -> dict[str, AuditLog]:
    audit = AuditLogger()
    return {
        "refund": audit.log(
            action="refund",
            object_type="refund",
            object_id="re_1",
            actor=staff,
            provider="stripe",
            amount=Decimal("5.00"),
            currency="USD",
            details={"payment_id": "pay_1"},
        ),
        "failed": audit.log(
            action="payment.capture",
            object_type="payment",
            object_id="pay_1",
            actor=staff,
            provider="stripe",
            success=False,
            details={"code": "invalid_transition"},
        ),
        "webhook": audit.log_webhook(
            provider="paypal", event_id="WH-1", event_type="x", success=True
        ),
        "system": audit.log(action="eft_expired", object_type="payment", object_id="pay_2"),
    }


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200
    return {entry.pk for entry in response.context["page"].object_list}


def test_anonymous_is_sent_to_log_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_non_staff_is_refused(client: Client, user: User) -> None:
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_lists_every_entry_newest_first(staff_client: Client, entries: dict[str, AuditLog]) -> None:
    response = staff_client.get(URL)
    rows = [entry.pk for entry in response.context["page"].object_list]
    assert rows == sorted((e.pk for e in entries.values()), reverse=True)
    body = response.content.decode()
    assert 'data-success="false"' in body
    assert "$5.00" in body
    # A payment's entry links to its page in the dashboard.
    assert reverse("paydesk_dashboard:payment-detail", args=["pay_1"]) in body
    assert 'aria-current="page"' in body


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "refund"}, {"refund"}),
        ({"provider": "stripe"}, {"refund", "failed"}),
        ({"success": "false"}, {"failed"}),
        ({"success": "true", "provider": "stripe"}, {"refund"}),
        ({"actor": "AUDITOR"}, {"refund", "failed"}),
        ({"actor": "webhook:"}, {"webhook"}),
        ({"actor": "system"}, {"system"}),
        ({"object_id": "pay_1"}, {"refund", "failed"}),  # the refund names its payment
        ({"object_id": "re_1"}, {"refund"}),
        ({"object_id": "nothing"}, set()),
    ],
)
def test_filters(
    staff_client: Client,
    entries: dict[str, AuditLog],
    params: dict[str, str],
    expected: set[str],
) -> None:
    assert _ids(staff_client.get(URL, params)) == {entries[name].pk for name in expected}


@pytest.mark.parametrize(
    "params",
    [{"action": "nope"}, {"provider": "nope"}, {"success": "maybe"}, {"object_id": "x" * 300}],
)
def test_invalid_filters_are_a_message(
    staff_client: Client, entries: dict[str, AuditLog], params: dict[str, str]
) -> None:
    response = staff_client.get(URL, params)
    assert _ids(response) == {e.pk for e in entries.values()}  # ignored, not applied
    assert "data-filter-errors" in response.content.decode()


def test_hostile_values_are_escaped(staff_client: Client) -> None:
    AuditLogger().log(action="refund", object_id=XSS, actor=XSS, details={"reason": XSS})
    # Not a payment id that a URL can hold: shown as text, not linked (and not a 500).
    AuditLogger().log(action="refund", object_type="payment", object_id=f"a/{XSS}")
    response = staff_client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert XSS not in body
    assert "&lt;script&gt;" in body


def test_paginates_and_keeps_the_filters(staff_client: Client, settings: Any) -> None:
    settings.PAYDESK = {**settings.PAYDESK, "DASHBOARD": {"PAGE_SIZE": 2}}
    for i in range(5):
        AuditLogger().log(action="refund", object_id=f"re_{i}")
    response = staff_client.get(URL, {"action": "refund", "page": "2"})
    assert response.context["page"].number == 2
    assert "action=refund&amp;page=3" in response.content.decode()


def test_query_count_does_not_grow_with_the_page(staff_client: Client, staff: User) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(URL).status_code == 200
        return len(queries)

    AuditLogger().log(action="refund", actor=staff)
    few = count()
    for i in range(20):
        AuditLogger().log(action=f"action.{i % 3}", actor=staff, provider="stripe")
    assert count() == few
