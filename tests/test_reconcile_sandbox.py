"""Reconciliation against the sandbox's simulated provider side: refunds in flight are read
back from ``SandboxCharge`` (``get_refund_status``) and a payment's refunds are listed
(``list_payment_refunds``), offline, through the real services and the real adapter."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from django.utils import timezone

from paydesk import services
from paydesk.models import Payment, Refund, SandboxCharge
from paydesk.money import Money
from paydesk.providers.registry import get_payment_provider
from paydesk.providers.sandbox import SandboxProvider
from paydesk.services.reconcile import RefundLister, RefundStatusReader, reconcile
from paydesk.services.refunds import prepare_refund
from paydesk.types import RefundRequest, StatusRequest

pytestmark = pytest.mark.django_db
LATER = dt.timedelta(hours=1)  # past the 30-minute threshold


@pytest.fixture
def sandbox() -> SandboxProvider:
    provider = get_payment_provider("sandbox")
    assert isinstance(provider, SandboxProvider)
    return provider


def paid(amount: str = "50.00") -> Payment:
    payment = services.create_payment(amount=amount, currency="USD", provider="sandbox")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "completed"
    return payment


def answer_lost(sandbox: SandboxProvider, payment: Payment, amount: str) -> Refund:
    """A refund the sandbox made whose answer never reached paydesk (the worker died)."""
    refund = services.create_refund(payment=payment, amount=amount, process=False)
    step = prepare_refund(refund=refund)  # paydesk marks it processing, sends it...
    assert sandbox.create_refund(step.request).status == "completed"  # ...and never records it
    refund.refresh_from_db()
    assert refund.status == "processing"
    return refund


def test_the_sandbox_offers_both_refund_reads(sandbox):
    assert isinstance(sandbox, RefundStatusReader)
    assert isinstance(sandbox, RefundLister)


def test_a_refund_whose_answer_was_lost_is_found_completed(
    sandbox, recorder, django_capture_on_commit_callbacks
):
    payment = paid()
    refund = answer_lost(sandbox, payment, "20.00")

    dry = reconcile(now=timezone.now() + LATER, dry_run=True)
    refund.refresh_from_db()
    assert refund.status == "processing"  # a dry run asks, and writes nothing
    assert [(d.kind, d.ours, d.theirs, d.fixed) for d in dry.drift] == [
        ("refund_status", "processing", "completed", False)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    refund.refresh_from_db()
    payment.refresh_from_db()
    charge = SandboxCharge.objects.get(pk=payment.provider_payment_id)
    (record,) = charge.refunds.values()
    assert (refund.status, refund.provider_refund_id) == ("completed", record["id"])
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Money("20.00", "USD").amount
    assert [(d.kind, d.refund_id, d.fixed) for d in report.drift] == [
        ("refund_status", refund.pk, True)
    ]
    assert report.notes == []  # the sandbox's refund list was compared too, and agrees
    assert "payment_refunded" in recorder.names
    # Settled: the next run finds nothing, and the sandbox refunded once.
    assert reconcile(now=timezone.now() + LATER).clean
    assert charge.refunded_amount == Money("20.00", "USD").amount


def test_a_refund_the_sandbox_never_received_is_not_found(
    sandbox, django_capture_on_commit_callbacks
):
    payment = paid()
    refund = services.create_refund(payment=payment, amount="10.00", process=False)

    report = reconcile(now=timezone.now() + LATER)

    refund.refresh_from_db()
    assert refund.status == "pending"
    (drift,) = report.drift
    assert (drift.kind, drift.theirs, drift.refund_id, drift.fixed) == (
        "refund_status",
        "not_found",
        refund.pk,
        False,
    )
    # What the finding advises: send it again (same key); then all agrees.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.process_refund(refund=refund).status == "completed"
    assert reconcile(now=timezone.now() + LATER).clean


def test_a_refund_made_in_the_dashboard_shows_up_in_the_list(sandbox):
    payment = paid()
    extra = sandbox.refund_in_dashboard(
        provider_payment_id=payment.provider_payment_id, amount=Money("15.00", "USD")
    )

    report = reconcile(now=timezone.now() + LATER)

    (drift,) = report.drift
    assert (drift.kind, drift.theirs) == ("refund_missing_here", f"{extra['id']} 15.00 USD")
    payment.refresh_from_db()
    assert payment.status == "completed"  # reported for a person, never booked by guesswork


def test_reads_answer_by_key_or_by_refund_id_and_list_every_refund(sandbox):
    payment = paid()
    done = services.create_refund(payment=payment, amount="5.00")
    sandbox.refund_in_dashboard(provider_payment_id=payment.provider_payment_id)
    request = RefundRequest(
        refund_id=done.pk,
        payment_id=payment.pk,
        provider_payment_id=payment.provider_payment_id,
        amount=Money("5.00", "USD"),
        idempotency_key="some-other-key",
        provider_refund_id=done.provider_refund_id,
    )

    found = sandbox.get_refund_status(request)
    unknown = sandbox.get_refund_status(replace(request, provider_refund_id="", refund_id="x"))
    listed = sandbox.list_payment_refunds(
        StatusRequest(
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            idempotency_key="",
            amount=payment.money,
        )
    )

    assert (found.status, found.provider_refund_id) == ("completed", done.provider_refund_id)
    assert unknown.status == "not_found"
    assert sorted((r.amount, r.refund_id, r.status) for r in listed) == [
        (Money("5.00", "USD"), done.pk, "completed"),
        (Money("45.00", "USD"), "", "completed"),  # a JSON field: no order is kept
    ]


def test_a_payment_unknown_to_the_sandbox_has_no_refunds(sandbox):
    request = StatusRequest(
        payment_id="pay_x",
        provider_payment_id="pi_sb_missing",
        idempotency_key="k",
        amount=Money("1.00", "USD"),
    )
    assert sandbox.list_payment_refunds(request) == []
