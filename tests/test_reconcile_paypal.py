"""Reconciliation against PayPal: refunds in flight read back (``GET /v2/payments/refunds/{id}``,
or the order's ``purchase_units[].payments.refunds`` matched by ``custom_id``) and refund lists
compared, through the real adapter and its httpx client against the fake PayPal API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from paydesk import services
from paydesk.exceptions import ProviderUnavailable
from paydesk.models import Payment, Refund, TransactionLog
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.services.reconcile import RefundLister, RefundStatusReader, reconcile
from paydesk.types import StatusRequest

from .fakes.paypal_api import VAULT_APPROVED, FakePayPal, PayPalWebhookKit, paydesk_settings

pytestmark = pytest.mark.django_db
LATER = dt.timedelta(hours=1)  # past the 30-minute threshold


@pytest.fixture
def fake() -> FakePayPal:
    return FakePayPal()


@pytest.fixture(autouse=True)
def paypal(fake: FakePayPal):
    kit = PayPalWebhookKit(fake=fake)
    with override_settings(PAYDESK=paydesk_settings(fake, kit, options={"MAX_RETRIES": 0})):
        yield get_payment_provider("paypal")


def paid(amount: str = "50.00") -> Payment:
    payment = services.create_payment(amount=amount, currency="USD", provider="paypal")
    payment = services.process_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    assert payment.status == "completed"
    return payment


def in_flight(fake: FakePayPal, payment: Payment, amount: str, fault: str) -> Refund:
    """A refund whose POST met ``fault``: done at PayPal ("timeout_after") or not ("timeout")."""
    fake.inject(fault, method="POST", path="/refund$")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount=amount)
    refund = Refund.objects.get(payment=payment, status="pending")
    assert not refund.provider_refund_id
    return refund


def test_paypal_offers_both_refund_reads(paypal):
    assert isinstance(paypal, RefundStatusReader)
    assert isinstance(paypal, RefundLister)


def test_a_refund_whose_answer_was_lost_is_found_by_its_custom_id(
    fake, recorder, django_capture_on_commit_callbacks
):
    payment = paid()
    refund = in_flight(fake, payment, "20.00", "timeout_after")
    (made,) = fake.refunds.values()  # PayPal did it; paydesk never heard
    assert made["custom_id"] == refund.pk

    posts = len(fake.calls("POST"))
    rows = TransactionLog.objects.count()
    dry = reconcile(now=timezone.now() + LATER, dry_run=True)
    assert [(d.kind, d.ours, d.theirs, d.fixed) for d in dry.drift] == [
        ("refund_status", "pending", "completed", False)
    ]
    assert TransactionLog.objects.count() == rows  # a dry run only reports
    refund.refresh_from_db()
    assert refund.status == "pending"

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.refund_id, d.fixed) for d in report.drift] == [
        ("refund_status", refund.pk, True)
    ]
    assert report.notes == []
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert (refund.status, refund.provider_refund_id) == ("completed", made["id"])
    assert payment.status == "partially_refunded"
    assert "payment_refunded" in recorder.names
    # Only reads went out (the token request aside), and PayPal refunded once.
    assert [c.path for c in fake.calls("POST")[posts:] if c.path != "/v1/oauth2/token"] == []
    assert fake.count("refund") == 1
    assert reconcile(now=timezone.now() + LATER).clean


def test_a_refund_paypal_never_received_is_not_found(fake):
    payment = paid()
    refund = in_flight(fake, payment, "10.00", "timeout")
    assert fake.refunds == {}

    report = reconcile(now=timezone.now() + LATER)

    (drift,) = report.drift
    assert (drift.kind, drift.theirs, drift.refund_id, drift.fixed) == (
        "refund_status",
        "not_found",
        refund.pk,
        False,
    )
    refund.refresh_from_db()
    assert refund.status == "pending"
    assert services.process_refund(refund=refund).status == "completed"
    assert reconcile(now=timezone.now() + LATER).clean


def test_a_pending_refund_with_a_known_id_is_read_by_id(fake, django_capture_on_commit_callbacks):
    payment = paid()
    fake.refund_status = "PENDING"
    refund = services.create_refund(payment=payment, amount="5.00")
    assert (refund.status, bool(refund.provider_refund_id)) == ("processing", True)
    assert reconcile(now=timezone.now() + LATER).clean  # pending on both sides
    fake.settle_refund(refund.provider_refund_id, "COMPLETED")

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.theirs, d.fixed) for d in report.drift] == [
        ("refund_status", "completed", True)
    ]
    refund.refresh_from_db()
    assert refund.status == "completed"
    assert fake.calls("GET", f"/v2/payments/refunds/{refund.provider_refund_id}$")


def test_a_dashboard_refund_shows_up_as_drift(fake, paypal):
    payment = paid()
    ours = services.create_refund(payment=payment, amount="10.00")
    extra = fake.refund_in_dashboard(payment.provider_payment_id, "15.00")

    report = reconcile(now=timezone.now() + LATER)

    (drift,) = report.drift
    assert (drift.kind, drift.theirs) == ("refund_missing_here", f"{extra['id']} 15.00 USD")
    listed = paypal.list_payment_refunds(
        StatusRequest(
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            idempotency_key="",
            amount=payment.money,
        )
    )
    assert [(r.provider_refund_id, r.amount, r.status, r.refund_id) for r in listed] == [
        (ours.provider_refund_id, Money("10.00", "USD"), "completed", ours.pk),
        (extra["id"], Money("15.00", "USD"), "completed", ""),
    ]


@pytest.mark.parametrize("fault", ["503", "timeout"])
def test_provider_failures_are_error_drift_not_a_crash(fake, fault):
    payment = paid()
    refund = in_flight(fake, payment, "20.00", "timeout_after")
    fake.inject(fault, fault, method="GET", path="/v2/checkout/orders/")

    report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.refund_id) for d in report.drift] == [
        ("error", refund.pk),  # its status could not be asked
        ("error", ""),  # nor the order's refund list
    ]
    assert all("PayPal" in d.detail for d in report.errors)
    refund.refresh_from_db()
    assert refund.status == "pending"  # left for the next run, which settles it
    assert [d.kind for d in reconcile(now=timezone.now() + LATER).drift] == ["refund_status"]


def test_a_failed_refund_at_paypal_is_recorded_failed(fake, django_capture_on_commit_callbacks):
    payment = paid()
    fake.refund_status = "PENDING"
    refund = services.create_refund(payment=payment, amount="5.00")
    fake.settle_refund(refund.provider_refund_id, "CANCELLED")

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.theirs, d.fixed) for d in report.drift] == [
        ("refund_status", "failed", True)
    ]
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == "failed"
    assert payment.status == "completed"  # the reservation is released
