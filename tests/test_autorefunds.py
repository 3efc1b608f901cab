"""Automatic refunds: rules pick payments, the refund service refunds each once, audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from bookings.models import Booking, Event
from paydesk import services, tasks
from paydesk.exceptions import ConfigurationError, ProviderUnavailable
from paydesk.models import AuditLog, AutoRefund, Payment, Refund
from paydesk.money import Money
from paydesk.services import autorefunds
from paydesk.services.autorefunds import Candidate, run_auto_refunds
from paydesk.testing import mock_provider

pytestmark = pytest.mark.django_db


@contextmanager
def auto_refunds(rules: list[Any], **extra: Any) -> Iterator[None]:
    current = dict(settings.PAYDESK)
    from paydesk.conf import paydesk_settings

    current["PROVIDERS"] = dict(paydesk_settings.PROVIDERS)
    current["AUTO_REFUNDS"] = {"RULES": rules, **extra}
    with override_settings(PAYDESK=current):
        yield


def paid(amount: str = "25.00", *, reference: str = "", provider: str = "sandbox", **kwargs):
    payment = services.create_payment(
        amount=amount, currency="USD", reference=reference, provider=provider, **kwargs
    )
    token = "pm_sandbox_visa" if provider == "sandbox" else "tok"
    return services.process_payment(payment=payment, payment_method_token=token)


DUPLICATES = ["duplicate_reference"]


def test_duplicate_payments_for_one_reference_are_refunded_but_the_first():
    first = paid(reference="order-1")
    second = paid(reference="order-1")
    third = paid(reference="order-1")
    other = paid(reference="order-2")
    unrelated = paid()  # no reference: never a duplicate

    with auto_refunds(DUPLICATES):
        report = run_auto_refunds()

    assert report.as_dict() == {
        "refunded": 2,
        "pending": 0,
        "skipped": 0,
        "failed": 0,
        "already": 0,
        "by_rule": {"duplicate_reference": {"refunded": 2}},
    }
    statuses = {p.pk: p.status for p in Payment.objects.all()}
    assert statuses[first.pk] == "completed"
    assert statuses[second.pk] == "refunded"
    assert statuses[third.pk] == "refunded"
    assert statuses[other.pk] == "completed"
    assert statuses[unrelated.pk] == "completed"
    refund = Refund.objects.get(payment=second)
    assert refund.amount == Decimal("25.00")
    assert refund.reason == "duplicate payment (reference order-1)"
    assert refund.processed_by is None
    claim = AutoRefund.objects.get(payment=second)
    assert (claim.rule, claim.status, claim.refund) == ("duplicate_reference", "refunded", refund)


def test_running_twice_refunds_once():
    paid(reference="order-1")
    duplicate = paid(reference="order-1")

    with auto_refunds(DUPLICATES):
        first = run_auto_refunds()
        second = run_auto_refunds()
        # Even asked directly, the claimed payment is not refunded again.
        again = autorefunds.refund_once("duplicate_reference", Candidate(duplicate))

    assert first.refunded == 1
    assert second.as_dict()["refunded"] == 0
    assert again == "already"
    assert Refund.objects.filter(payment=duplicate).count() == 1
    assert AutoRefund.objects.count() == 1


def test_every_claim_is_audited():
    paid(reference="order-1")
    duplicate = paid(reference="order-1")
    with auto_refunds(DUPLICATES):
        run_auto_refunds()

    entries = AuditLog.objects.filter(action="refund").order_by("pk")
    assert [e.details["outcome"] for e in entries] == ["reserved", "completed"]
    for entry in entries:
        assert entry.actor is None
        assert entry.actor_label == "system:auto-refund"
        assert entry.details["auto_refund_rule"] == "duplicate_reference"
        assert entry.details["payment_id"] == duplicate.pk
        assert entry.amount == Decimal("25.00")


def test_a_payment_refunded_by_hand_meanwhile_is_skipped():
    paid(reference="order-1")
    duplicate = paid(reference="order-1")
    candidate = Candidate(duplicate, reason="duplicate")
    services.create_refund(payment=duplicate, reason="customer asked")

    with auto_refunds(DUPLICATES):
        outcome = autorefunds.refund_once("duplicate_reference", candidate)
        assert run_auto_refunds().as_dict()["skipped"] == 0  # no longer a candidate

    assert outcome == "skipped"
    claim = AutoRefund.objects.get()
    assert claim.status == "skipped"
    assert claim.detail.startswith("refund_exceeds_captured:")
    assert Refund.objects.filter(payment=duplicate).count() == 1
    assert AuditLog.objects.get(action="refund", success=False).details["error"] == (
        "refund_exceeds_captured"
    )


def test_the_first_payment_refunded_by_hand_keeps_its_duplicate():
    first = paid(reference="order-1")
    second = paid(reference="order-1")
    services.create_refund(payment=first, reason="wrong size")
    with auto_refunds(DUPLICATES):
        assert run_auto_refunds().refunded == 0
    assert Payment.objects.get(pk=second.pk).status == "completed"


def test_old_duplicates_are_left_alone():
    paid(reference="order-1")
    paid(reference="order-1")
    Payment.objects.update(created_at=timezone.now() - dt.timedelta(days=40))
    with auto_refunds([{"RULE": "duplicate_reference", "OPTIONS": {"within_days": 30}}]):
        assert run_auto_refunds().refunded == 0


def test_a_refund_whose_outcome_is_unknown_is_sent_again_by_the_next_run():
    # The mock is configured inside: changing PAYDESK rebuilds the providers.
    with auto_refunds(DUPLICATES), mock_provider("mock") as mock:
        paid(reference="order-1", provider="mock")
        duplicate = paid(reference="order-1", provider="mock")
        mock.set_exception(ProviderUnavailable("timeout", provider="mock"))
        first = run_auto_refunds()
        assert first.pending == 1
        claim = AutoRefund.objects.get()
        assert claim.status == "pending"
        assert claim.refund.status == "pending"
        second = run_auto_refunds()

    assert second.refunded == 1
    refund = Refund.objects.get(payment=duplicate)
    assert refund.status == "completed"
    keys = [request.idempotency_key for method, request in mock.calls if method == "create_refund"]
    assert keys == [f"paydesk:{refund.pk}:refund"] * 2  # the same key both times
    assert AutoRefund.objects.get().status == "refunded"


def test_a_refused_refund_is_recorded_as_failed():
    from paydesk.types import ProviderFailure, RefundResult

    with auto_refunds(DUPLICATES), mock_provider("mock") as mock:
        paid(reference="order-1", provider="mock")
        duplicate = paid(reference="order-1", provider="mock")
        mock.set_next_refund_result(
            RefundResult(
                status="failed",
                failure=ProviderFailure(code="processing_error", message="Refund window closed."),
            )
        )
        report = run_auto_refunds()
        assert run_auto_refunds().failed == 0  # failures are not retried by themselves

    assert report.failed == 1
    claim = AutoRefund.objects.get(payment=duplicate)
    assert claim.status == "failed"
    assert "Refund window closed." in claim.detail
    assert Payment.objects.get(pk=duplicate.pk).status == "completed"


@pytest.fixture
def gala(db):
    starts = timezone.now() + dt.timedelta(days=10)
    cancelled = Event.objects.create(
        title="Cancelled gala", starts_at=starts, price=Decimal("40.00"), currency="USD"
    )
    running = Event.objects.create(
        title="Summer fair", starts_at=starts, price=Decimal("15.00"), currency="USD"
    )
    return cancelled, running


def book(event: Event, email: str) -> tuple[Booking, Payment]:
    booking = Booking.objects.create(event=event, email=email)
    payment = paid(str(event.price), content_object=booking)
    booking.payment = payment
    booking.status = Booking.Status.PAID
    booking.save()
    return booking, payment


def test_bookings_of_a_cancelled_event_through_the_generic_relation(gala):
    cancelled, running = gala
    _, refund_me = book(cancelled, "a@example.com")
    _, refund_me_too = book(cancelled, "b@example.com")
    _, keep = book(running, "c@example.com")
    rule = {
        "RULE": "content_objects",
        "OPTIONS": {
            "name": "cancelled_events",
            "model": "bookings.Booking",
            "filter": {"event__title": "Cancelled gala"},
            "reason": "event cancelled",
        },
    }
    with auto_refunds([rule]):
        report = run_auto_refunds(rules=["cancelled_events"])
        assert run_auto_refunds().refunded == 0

    assert report.by_rule == {"cancelled_events": {"refunded": 2}}
    assert Payment.objects.get(pk=refund_me.pk).status == "refunded"
    assert Payment.objects.get(pk=refund_me_too.pk).status == "refunded"
    assert Payment.objects.get(pk=keep.pk).status == "completed"
    assert set(Refund.objects.values_list("reason", flat=True)) == {"event cancelled"}


def test_bookings_of_a_cancelled_event_through_a_foreign_key(gala):
    cancelled, _ = gala
    booking = Booking.objects.create(event=cancelled, email="d@example.com")
    payment = paid("40.00")  # no content_object: only booking.payment links them
    booking.payment = payment
    booking.save()
    rule = {
        "RULE": "content_objects",
        "OPTIONS": {
            "model": "bookings.Booking",
            "filter": {"event": cancelled.pk},
            "payment_field": "payment",
        },
    }
    with auto_refunds([rule]):
        assert run_auto_refunds().refunded == 1
    assert Payment.objects.get(pk=payment.pk).status == "refunded"


def half_of_big_payments(*, limit: int) -> list[Candidate]:
    return [
        Candidate(payment, reason="goodwill", amount=Money(payment.amount / 2, payment.currency))
        for payment in autorefunds.refundable_payments().filter(amount__gte=100)[:limit]
    ]


def test_project_rules_by_dotted_path_may_refund_part_of_a_payment():
    big = paid("120.00")
    paid("20.00")
    with auto_refunds([f"{__name__}.half_of_big_payments"]):
        report = run_auto_refunds()
        assert run_auto_refunds().refunded == 0
    assert report.by_rule == {"half_of_big_payments": {"refunded": 1}}
    big.refresh_from_db()
    assert big.status == "partially_refunded"
    assert big.refunded_amount == Decimal("60.00")


def test_the_task_runs_the_rules_and_is_enqueued_on_commit(django_capture_on_commit_callbacks):
    paid(reference="order-1")
    duplicate = paid(reference="order-1")
    with auto_refunds(DUPLICATES):
        with django_capture_on_commit_callbacks(execute=True):
            tasks.enqueue_auto_refunds(rules=["duplicate_reference"])
        result = tasks.run_auto_refunds_task.call(None)
    assert Payment.objects.get(pk=duplicate.pk).status == "refunded"
    assert result["already"] == 0  # the first run refunded it; this one found no candidate
    assert Refund.objects.count() == 1


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["nope"], "cannot be imported"),
        ([{"RULE": "content_objects", "OPTIONS": {"model": "nope.Nothing"}}], "not an installed"),
        ([{"RULE": "duplicate_reference", "OPTIONS": {"days": 3}}], "bad OPTIONS"),
        (["duplicate_reference", "duplicate_reference"], "more than once"),
        ([{"OPTIONS": {}}], "must be"),
    ],
)
def test_misconfigured_rules_fail_loudly(rules, message):
    with auto_refunds(rules), pytest.raises(ConfigurationError, match=message):
        run_auto_refunds()


def test_asking_for_an_unknown_rule_fails():
    with auto_refunds(DUPLICATES), pytest.raises(ConfigurationError, match="No automatic"):
        run_auto_refunds(rules=["cancelled_events"])
