"""Reconciliation against Stripe: refunds in flight read back (``GET /v1/refunds/{id}``, or the
PaymentIntent's refund list searched for paydesk's metadata) and refund lists compared, through
the real stripe SDK against the local fake Stripe server (tests/fakes/stripe_server.py)."""

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
from paydesk.providers import stripe as stripe_provider
from paydesk.services.reconcile import RefundLister, RefundStatusReader, reconcile
from paydesk.types import StatusRequest

from .fakes.stripe_server import FakeStripe, paydesk_settings

pytestmark = pytest.mark.django_db
LATER = dt.timedelta(hours=1)  # past the 30-minute threshold
TIMEOUT = 0.5  # the client's; a "timeout" fault holds the answer for 1.5 s


@pytest.fixture
def fake_stripe():
    fake = FakeStripe().start()
    fake.hang_seconds = 1.5
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _stripe(fake_stripe):
    with override_settings(PAYDESK=paydesk_settings(fake_stripe, TIMEOUT=TIMEOUT)):
        yield


def paid(amount: str = "50.00") -> Payment:
    payment = services.create_payment(amount=amount, currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    assert payment.status == "completed"
    return payment


def in_flight(fake: FakeStripe, payment: Payment, amount: str, fault: str) -> Refund:
    """A refund whose POST met ``fault``: done at Stripe ("timeout") or never sent ("reset")."""
    fake.fail_next(fault, method="POST", path="/v1/refunds")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount=amount)
    refund = Refund.objects.get(payment=payment, status="pending")
    assert not refund.provider_refund_id
    return refund


def gets(fake: FakeStripe, path: str = "/v1/refunds") -> list:
    return [r for r in fake.requests if r.method == "GET" and r.path.startswith(path)]


def test_stripe_offers_both_refund_reads():
    provider = get_payment_provider("stripe")
    assert isinstance(provider, RefundStatusReader)
    assert isinstance(provider, RefundLister)


def test_a_refund_whose_answer_was_lost_is_found_by_its_metadata(
    fake_stripe, recorder, django_capture_on_commit_callbacks
):
    payment = paid()
    refund = in_flight(fake_stripe, payment, "20.00", "timeout")
    (made,) = fake_stripe.refunds.values()  # Stripe did it; paydesk never heard
    assert made["metadata"]["paydesk_refund_id"] == refund.pk

    posts = len(fake_stripe.posts())
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
    assert len(fake_stripe.posts()) == posts  # reconciliation only reads
    assert all(
        r.params.get("payment_intent") == payment.provider_payment_id for r in gets(fake_stripe)
    )
    assert fake_stripe.refunded(payment.pk) == 2000  # refunded once
    assert reconcile(now=timezone.now() + LATER).clean


def test_a_refund_stripe_never_received_is_not_found(fake_stripe):
    payment = paid()
    refund = in_flight(fake_stripe, payment, "10.00", "reset")
    assert fake_stripe.refunds == {}

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
    # Sent again with the same key, as the finding advises: then both sides agree.
    assert services.process_refund(refund=refund).status == "completed"
    assert reconcile(now=timezone.now() + LATER).clean


def test_a_pending_refund_with_a_known_id_is_retrieved_by_id(
    fake_stripe, django_capture_on_commit_callbacks
):
    payment = paid()
    fake_stripe.refund_status = "pending"
    refund = services.create_refund(payment=payment, amount="5.00")
    assert (refund.status, bool(refund.provider_refund_id)) == ("processing", True)
    assert reconcile(now=timezone.now() + LATER).clean  # pending on both sides
    fake_stripe.settle_refund(refund.provider_refund_id, "failed", "expired_or_canceled_card")

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.theirs, d.fixed) for d in report.drift] == [
        ("refund_status", "failed", True)
    ]
    refund.refresh_from_db()
    assert (refund.status, refund.failure_code) == ("failed", "expired_card")
    assert gets(fake_stripe, f"/v1/refunds/{refund.provider_refund_id}")


def test_a_dashboard_refund_shows_up_as_drift(fake_stripe):
    payment = paid()
    ours = services.create_refund(payment=payment, amount="10.00")
    extra = fake_stripe.refund_in_dashboard(payment.provider_payment_id, 1500)

    report = reconcile(now=timezone.now() + LATER)

    (drift,) = report.drift
    assert (drift.kind, drift.theirs) == ("refund_missing_here", f"{extra['id']} 15.00 USD")
    listed = get_payment_provider("stripe").list_payment_refunds(
        StatusRequest(
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            idempotency_key="",
            amount=payment.money,
        )
    )
    assert [(r.provider_refund_id, r.amount, r.status, r.refund_id) for r in listed] == [
        (extra["id"], Money("15.00", "USD"), "completed", ""),  # newest first
        (ours.provider_refund_id, Money("10.00", "USD"), "completed", ours.pk),
    ]


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_provider_failures_are_error_drift_not_a_crash(fake_stripe, fault):
    payment = paid()
    refund = in_flight(fake_stripe, payment, "20.00", "timeout")
    fake_stripe.fail_next(fault, fault, method="GET", path="/v1/refunds")

    report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.refund_id) for d in report.drift] == [
        ("error", refund.pk),  # its status could not be asked
        ("error", ""),  # nor the payment's refund list
    ]
    assert all("Stripe" in d.detail for d in report.errors)
    refund.refresh_from_db()
    assert refund.status == "pending"  # left for the next run, which settles it
    assert [d.kind for d in reconcile(now=timezone.now() + LATER).drift] == ["refund_status"]


def test_refunds_are_read_across_pages(fake_stripe, monkeypatch):
    monkeypatch.setattr(stripe_provider, "LIST_PAGE_SIZE", 2)
    payment = paid()
    lost = in_flight(fake_stripe, payment, "1.00", "timeout")  # the oldest: on the last page
    for _ in range(4):
        services.create_refund(payment=payment, amount="1.00")

    report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.refund_id, d.fixed) for d in report.drift] == [
        ("refund_status", lost.pk, True)
    ]
    # Five refunds, two a page: three pages for the status, three for the list.
    cursors = [r.params.get("starting_after") for r in gets(fake_stripe)]
    assert [bool(cursor) for cursor in cursors] == [False, True, True] * 2
    lost.refresh_from_db()
    assert lost.status == "completed"
    assert {r.provider_refund_id for r in Refund.objects.filter(payment=payment)} == {
        r["id"] for r in fake_stripe.refunds.values()
    }


def test_the_fake_pages_as_stripe_documents(fake_stripe):
    payment = paid()
    for _ in range(3):
        services.create_refund(payment=payment, amount="1.00")
    client = get_payment_provider("stripe").client
    intent = payment.provider_payment_id

    first = client.v1.refunds.list(params={"payment_intent": intent, "limit": 2})
    second = client.v1.refunds.list(
        params={"payment_intent": intent, "limit": 2, "starting_after": first.data[-1].id}
    )
    back = client.v1.refunds.list(
        params={"payment_intent": intent, "limit": 2, "ending_before": second.data[0].id}
    )
    everything = client.v1.refunds.list(params={"payment_intent": intent})

    assert (len(first.data), first.has_more) == (2, True)
    assert (len(second.data), second.has_more) == (1, False)
    assert [r.id for r in back.data] == [r.id for r in first.data]
    assert [r.id for r in everything.data] == [r.id for r in first.data + second.data]
    assert [r.id for r in everything.auto_paging_iter()] == [r.id for r in everything.data]
