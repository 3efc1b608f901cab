"""Audit entries: one append-only row per event, JSON details, failures raise."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from django.test import RequestFactory, override_settings

from paydesk import services
from paydesk.models import AppendOnlyError, AuditLog
from paydesk.money import Money
from paydesk.security.audit import AuditLogger, audit_request_ip

pytestmark = pytest.mark.django_db

audit = AuditLogger()


@pytest.fixture
def payment():
    payment = services.create_payment(amount="20.00", currency="EUR", reference="order-7")
    return services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")


def test_log_refund_records_the_refund_its_payment_and_the_actor(payment, user):
    refund = services.create_refund(payment=payment, amount="5.00", reason="damaged")
    entry = audit.log_refund(refund=refund, actor=user, ip_address="203.0.113.5", reason="damaged")
    entry.refresh_from_db()
    assert entry.action == "refund"
    assert (entry.object_type, entry.object_id) == ("refund", refund.pk)
    assert (entry.actor, entry.actor_label) == (user, "alice")
    assert (entry.amount, entry.currency) == (Decimal("5.00"), "EUR")
    assert entry.provider == payment.provider
    assert entry.ip_address == "203.0.113.5"
    assert entry.success is True
    assert entry.details == {"reason": "damaged", "payment_id": payment.pk}
    assert AuditLog.objects.count() == 1


def test_a_refused_refund_attempt_is_logged_against_the_payment(payment):
    entry = audit.log_refund(
        payment=payment,
        actor="api-key:backoffice",
        success=False,
        amount=Money("50.00", "EUR"),
        error="refund_exceeds_captured",
    )
    assert (entry.object_type, entry.object_id) == ("payment", payment.pk)
    assert (entry.amount, entry.currency) == (Decimal("50.00"), "EUR")
    assert (entry.actor, entry.actor_label, entry.success) == (None, "api-key:backoffice", False)
    assert entry.details == {"error": "refund_exceeds_captured", "payment_id": payment.pk}


def test_log_payment_defaults_to_the_payments_amount(payment):
    entry = audit.log_payment(payment=payment, action="payment.capture", actor=None, attempt=1)
    assert entry.action == "payment.capture"
    assert (entry.amount, entry.currency, entry.actor_label) == (Decimal("20.00"), "EUR", "system")
    assert entry.details == {"attempt": 1}


def test_log_webhook(payment):
    entry = audit.log_webhook(
        provider="stripe",
        event_id="evt_123",
        event_type="payment_intent.succeeded",
        success=False,
        ip_address="::ffff:198.51.100.1",
        reason="invalid_signature",
    )
    entry.refresh_from_db()
    assert (entry.action, entry.object_type, entry.object_id) == (
        "webhook",
        "webhook_event",
        "evt_123",
    )
    assert (entry.provider, entry.actor_label, entry.success) == ("stripe", "webhook:stripe", False)
    assert entry.ip_address == "198.51.100.1"
    assert entry.details == {
        "reason": "invalid_signature",
        "event_type": "payment_intent.succeeded",
    }


def test_log_admin_action(payment, user):
    entry = audit.log_admin_action(actor=user, action="mark_reviewed", obj=payment, note="ok")
    assert entry.action == "admin.mark_reviewed"
    assert (entry.object_type, entry.object_id, entry.provider) == (
        "payment",
        payment.pk,
        "sandbox",
    )
    assert entry.details == {"note": "ok"}
    assert (
        audit.log_admin_action(actor=AnonymousUser(), action="login_failed").actor_label
        == "anonymous"
    )


def test_details_are_made_json_safe():
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ident = uuid.UUID(int=1)
    entry = audit.log(
        action="test", details={"d": Decimal("1.10"), "t": when, "u": ident, "n": [1, None]}
    )
    entry.refresh_from_db()
    assert entry.details == {
        "d": "1.10",
        "t": "2024-01-02T03:04:05Z",
        "u": "00000000-0000-0000-0000-000000000001",
        "n": [1, None],
    }


@pytest.mark.parametrize(
    "amount",
    [Decimal("1E17"), Decimal("-1E15"), Decimal("1.23456"), Decimal("NaN"), Money("1E20", "USD")],
)
def test_an_amount_the_column_cannot_hold_is_kept_in_details(amount):
    # A refused attempt with an absurd amount is exactly what the log is for: the entry must
    # be written (on PostgreSQL too, where the column would overflow), with the exact figure.
    entry = audit.log(action="refund", success=False, amount=amount)
    entry.refresh_from_db()
    assert entry.amount is None
    assert entry.details == {"amount": str(getattr(amount, "amount", amount))}
    assert entry.currency == getattr(amount, "currency", "")


def test_an_amount_that_fits_stays_in_its_column():
    entry = audit.log(action="refund", amount=Decimal("123456789.1234"), currency="USD")
    entry.refresh_from_db()
    assert entry.amount == Decimal("123456789.1234")
    assert entry.details == {}


def test_audit_failures_raise_instead_of_dropping_entries():
    with pytest.raises(TypeError, match="Audit detail 'obj'"):
        audit.log_webhook(provider="p", event_id="e", event_type="t", success=True, obj=object())
    with pytest.raises(ValueError, match="1-50 characters"):
        audit.log(action="x" * 51)
    with pytest.raises(ValueError, match="not an IP address"):
        audit.log(action="x", ip_address="not-an-ip")
    with pytest.raises(TypeError, match="never a float"):
        audit.log(action="x", amount=1.5)
    assert AuditLog.objects.count() == 0


def test_a_database_failure_propagates(monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(AuditLog.objects, "create", broken)
    with pytest.raises(DatabaseError):
        audit.log(action="x")


def test_entries_are_append_only():
    entry = audit.log(action="x")
    entry.action = "y"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.all().delete()


def test_audit_request_ip_honours_trusted_proxies():
    request = RequestFactory().post(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert audit_request_ip(request) == "10.0.0.2"
    with override_settings(PAYDESK={"SECURITY": {"TRUSTED_PROXIES": ["10.0.0.0/8"]}}):
        assert audit_request_ip(request) == "198.51.100.7"
        entry = audit.log(action="x", ip_address=audit_request_ip(request))
    assert entry.ip_address == "198.51.100.7"
