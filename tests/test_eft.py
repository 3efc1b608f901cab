"""Manual bank transfers through ``paydesk.services.eft``: approval, rejection, the four-eyes
rule, expiry, receipts, and manual refunds; with their ledger, signals and audit entries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from paydesk import services, signals
from paydesk.exceptions import (
    InvalidTransition,
    PaymentStateError,
    PaymentValidationError,
    RefundExceedsCaptured,
)
from paydesk.models import AuditLog, BankTransfer, Payment, Refund
from paydesk.services.eft import (
    EFTApprovalService,
    FourEyesViolation,
    ReceiptRejected,
    approve_transfer,
    expire_transfers,
    get_transfer,
    record_receipt,
    reject_transfer,
)

from . import test_provider_bank_transfer as shared
from .test_provider_bank_transfer import (
    IN_MEMORY_STORAGES,
    PDF,
    awaiting_payment,
    paydesk_with_bank,
    upload,
)

bank = shared.bank
second_staff = shared.second_staff
staff = shared.staff

pytestmark = pytest.mark.django_db

D = Decimal
WATCHED = (
    "eft_approved",
    "eft_rejected",
    "payment_confirmed",
    "payment_failed",
    "payment_cancelled",
    "payment_refunded",
)


@pytest.fixture
def sent() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Signals received, in order, as ``(name, kwargs with sender)``."""
    calls: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name in WATCHED:

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            calls.append((_name, {"sender": sender, **kwargs}))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"test-eft-{name}")
    yield calls
    for name in WATCHED:
        getattr(signals, name).disconnect(dispatch_uid=f"test-eft-{name}")


def names(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in calls]


# -- approval ----------------------------------------------------------------------------------


def test_approval_captures_the_payment_through_the_ledger(
    bank, user, staff, sent, django_capture_on_commit_callbacks
):
    payment = awaiting_payment(amount="150.00", currency="EUR", user=user)
    sent.clear()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transfer = approve_transfer(payment=payment, user=staff, note="Seen on statement 12")
        assert sent == []  # nothing before commit
    for callback in callbacks:
        callback()

    assert transfer.status == "approved"
    assert transfer.decided_by == staff
    assert transfer.decided_at is not None
    assert transfer.note == "Seen on statement 12"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == D("150.00")
    assert payment.processed_at is not None
    assert payment.next_action is None
    kinds = list(payment.ledger.order_by("id").values_list("kind", "amount", "ref"))
    assert kinds[-2:] == [
        ("authorization", D("150.00"), transfer.reference),
        ("capture", D("150.00"), transfer.reference),
    ]

    assert names(sent) == ["payment_confirmed", "eft_approved"]
    kwargs = sent[1][1]
    assert kwargs["sender"] is Payment
    assert kwargs["payment"].pk == payment.pk
    assert kwargs["payment"].status == "completed"
    assert kwargs["transfer"].pk == transfer.pk
    assert kwargs["approved_by"] == staff
    assert isinstance(kwargs["approval_service"], EFTApprovalService)
    assert kwargs["provider"] == "bank_transfer"
    assert kwargs["result"].status == "captured"

    entry = AuditLog.objects.get(action="eft_approved")
    assert entry.success
    assert entry.actor == staff
    assert (entry.object_type, entry.object_id) == ("payment", payment.pk)
    assert (entry.amount, entry.currency) == (D("150.00"), "EUR")
    assert entry.provider == "bank_transfer"
    assert entry.details["reference"] == transfer.reference
    assert entry.details["note"] == "Seen on statement 12"


def test_the_service_class_and_the_transfer_reference_work_too(bank, staff):
    payment = awaiting_payment()
    reference = payment.provider_payment_id
    written = reference.lower().replace("-", " ")
    service = EFTApprovalService()
    transfer = service.approve(transfer=written, user=staff)
    assert transfer.reference == reference
    assert transfer.payment.status == "completed"
    assert get_transfer(payment=payment).status == "approved"


def test_approving_twice_is_an_invalid_transition_naming_the_first_approver(
    bank, staff, second_staff, sent, django_capture_on_commit_callbacks
):
    payment = awaiting_payment()
    with django_capture_on_commit_callbacks(execute=True):
        approve_transfer(payment=payment, user=staff)
        with pytest.raises(InvalidTransition) as caught:
            approve_transfer(payment=payment, user=second_staff)
    assert "already approved by carol" in caught.value.message
    assert caught.value.code == "invalid_transition"
    assert names(sent).count("eft_approved") == 1
    assert payment.ledger.filter(kind="capture").count() == 1
    refused = AuditLog.objects.get(action="eft_approved", success=False)
    assert refused.actor == second_staff
    assert refused.details["error"] == "invalid_transition"
    assert AuditLog.objects.filter(action="eft_approved", success=True).count() == 1


def test_a_decision_needs_a_person(bank):
    payment = awaiting_payment()
    with pytest.raises(PaymentValidationError, match="staff member who decides"):
        approve_transfer(payment=payment, user=None)
    assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"


def test_naming_the_transfer_needs_exactly_one_way(bank, staff):
    payment = awaiting_payment()
    with pytest.raises(PaymentValidationError, match="exactly one"):
        approve_transfer(payment=payment, transfer=payment.provider_payment_id, user=staff)
    with pytest.raises(PaymentValidationError, match="No bank transfer") as caught:
        approve_transfer(transfer="PD-AAAA-AAAA", user=staff)
    assert caught.value.code == "not_found"


def test_a_rolled_back_approval_announces_nothing(
    bank, staff, sent, django_capture_on_commit_callbacks
):
    payment = awaiting_payment()
    sent.clear()

    def request_that_fails() -> None:
        with transaction.atomic():
            approve_transfer(payment=payment, user=staff)
            raise RuntimeError("the surrounding request failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        request_that_fails()
    assert sent == []
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"
    assert not AuditLog.objects.filter(action="eft_approved").exists()


# -- rejection -------------------------------------------------------------------------------------


def test_rejection_fails_the_payment(bank, user, staff, sent, django_capture_on_commit_callbacks):
    payment = awaiting_payment(amount="80.00", user=user)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        transfer = reject_transfer(
            payment=payment, user=staff, reason="Only 60.00 EUR arrived; we sent it back."
        )

    assert transfer.status == "rejected"
    assert transfer.decided_by == staff
    assert transfer.reason == "Only 60.00 EUR arrived; we sent it back."
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "transfer_rejected"
    assert payment.failure_message == (
        "Bank transfer rejected: Only 60.00 EUR arrived; we sent it back."
    )
    assert payment.captured_amount == 0
    assert payment.ledger.filter(kind="payment_failed").count() == 1

    assert names(sent) == ["payment_failed", "eft_rejected"]
    failed = sent[0][1]
    assert failed["error_code"] == "transfer_rejected"
    kwargs = sent[1][1]
    assert kwargs["sender"] is Payment
    assert kwargs["payment"].pk == payment.pk
    assert kwargs["transfer"].pk == transfer.pk
    assert kwargs["rejected_by"] == staff
    assert kwargs["reason"] == "Only 60.00 EUR arrived; we sent it back."
    assert isinstance(kwargs["approval_service"], EFTApprovalService)

    entry = AuditLog.objects.get(action="eft_rejected")
    assert entry.actor == staff
    assert entry.object_id == payment.pk
    assert entry.amount == D("80.00")
    assert entry.details["reason"] == "Only 60.00 EUR arrived; we sent it back."


def test_rejection_needs_a_reason(bank, staff):
    payment = awaiting_payment()
    with pytest.raises(PaymentValidationError, match="reason") as caught:
        reject_transfer(payment=payment, user=staff, reason="   ")
    assert caught.value.field == "reason"
    assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"


def test_a_rejected_transfer_cannot_then_be_approved(bank, staff, second_staff):
    payment = awaiting_payment()
    reject_transfer(payment=payment, user=staff, reason="No money arrived")
    with pytest.raises(InvalidTransition, match="already rejected by carol"):
        approve_transfer(payment=payment, user=second_staff)
    with pytest.raises(InvalidTransition, match="already rejected"):
        reject_transfer(payment=payment, user=second_staff, reason="again")
    payment.refresh_from_db()
    assert payment.status == "failed"


def test_a_cancelled_payment_cannot_be_approved(bank, staff):
    payment = awaiting_payment()
    services.cancel_payment(payment=payment)
    with pytest.raises(InvalidTransition, match="cancelled"):
        approve_transfer(payment=payment, user=staff)


# -- four eyes -----------------------------------------------------------------------------------


@pytest.fixture
def four_eyes(settings):
    settings.PAYDESK = paydesk_with_bank(FOUR_EYES=True)
    settings.STORAGES = IN_MEMORY_STORAGES


@pytest.mark.usefixtures("four_eyes")
def test_four_eyes_the_receipt_recorder_cannot_approve(staff, second_staff, sent):
    payment = awaiting_payment()
    transfer = record_receipt(
        transfer=payment.provider_payment_id, file=upload("receipt.pdf", PDF), user=staff
    )
    assert transfer.receipt_uploaded_by == staff

    with pytest.raises(FourEyesViolation) as caught:
        approve_transfer(payment=payment, user=staff)
    assert isinstance(caught.value, PaymentStateError)
    assert caught.value.code == "four_eyes_required"
    assert "another staff member must approve" in caught.value.message
    assert BankTransfer.objects.get(payment=payment).status == "receipt_uploaded"
    refused = AuditLog.objects.get(action="eft_approved", success=False)
    assert refused.details["error"] == "four_eyes_required"

    approve_transfer(payment=payment, user=second_staff)
    payment.refresh_from_db()
    assert payment.status == "completed"


@pytest.mark.usefixtures("four_eyes")
def test_four_eyes_the_customer_cannot_approve_their_own_payment(staff, second_staff):
    payment = awaiting_payment(user=staff)
    with pytest.raises(FourEyesViolation, match="cannot approve their own"):
        approve_transfer(payment=payment, user=staff)
    approve_transfer(payment=payment, user=second_staff)


@pytest.mark.usefixtures("four_eyes")
def test_four_eyes_does_not_apply_to_rejection(staff):
    payment = awaiting_payment()
    record_receipt(transfer=payment.provider_payment_id, file=upload("r.pdf", PDF), user=staff)
    reject_transfer(payment=payment, user=staff, reason="This receipt is for another order")


def test_without_four_eyes_the_recorder_may_approve(bank, staff):
    payment = awaiting_payment()
    record_receipt(transfer=payment.provider_payment_id, file=upload("r.pdf", PDF), user=staff)
    approve_transfer(payment=payment, user=staff)


# -- receipts through the service ----------------------------------------------------------------


def test_record_receipt_validates_before_storing(bank, staff):
    payment = awaiting_payment()
    with pytest.raises(ReceiptRejected) as caught:
        record_receipt(transfer=payment.provider_payment_id, file=None, user=staff)
    assert caught.value.field == "receipt"
    assert caught.value.code == "invalid_receipt"
    with pytest.raises(ReceiptRejected, match="is not a file type we accept"):
        record_receipt(
            transfer=payment.provider_payment_id,
            file=upload("receipt.pdf", b"<html>not a pdf</html>"),
            user=staff,
        )
    assert not AuditLog.objects.filter(action="eft_receipt_uploaded").exists()


# -- expiry ------------------------------------------------------------------------------------


def test_expiry_cancels_transfers_nobody_paid(
    bank, staff, sent, django_capture_on_commit_callbacks
):
    due = awaiting_payment(amount="10.00")
    with_receipt = awaiting_payment(amount="20.00")
    record_receipt(transfer=with_receipt.provider_payment_id, file=upload("r.pdf", PDF), user=staff)
    fresh = awaiting_payment(amount="30.00")
    later = timezone.now() + dt.timedelta(hours=73)
    BankTransfer.objects.filter(payment=fresh).update(expires_at=later + dt.timedelta(hours=1))
    sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert expire_transfers(now=later) == 1

    transfer = BankTransfer.objects.get(payment=due)
    assert transfer.status == "expired"
    assert transfer.reason.startswith("No transfer arrived by ")
    due.refresh_from_db()
    assert due.status == "cancelled"
    assert due.cancelled_at is not None
    assert names(sent) == ["payment_cancelled"]
    entry = AuditLog.objects.get(action="eft_expired")
    assert (entry.actor, entry.actor_label, entry.object_id) == (None, "system", due.pk)

    assert BankTransfer.objects.get(payment=with_receipt).status == "receipt_uploaded"
    assert BankTransfer.objects.get(payment=fresh).status == "awaiting_transfer"
    assert expire_transfers(now=later) == 0  # idempotent

    with pytest.raises(InvalidTransition, match="expired at"):
        approve_transfer(payment=due, user=staff)


def test_a_transfer_due_but_not_yet_expired_may_still_be_approved(bank, staff):
    payment = awaiting_payment()
    BankTransfer.objects.filter(payment=payment).update(
        expires_at=timezone.now() - dt.timedelta(hours=1)
    )
    approve_transfer(payment=payment, user=staff, note="arrived on the last day")
    payment.refresh_from_db()
    assert payment.status == "completed"


def test_the_expire_command(bank):
    payment = awaiting_payment()
    BankTransfer.objects.filter(payment=payment).update(
        expires_at=timezone.now() - dt.timedelta(minutes=5)
    )
    out = StringIO()
    call_command("expire_bank_transfers", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "would expire 1 bank transfers"
    assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

    out = StringIO()
    call_command("expire_bank_transfers", stdout=out)
    assert out.getvalue().strip() == "expired 1 bank transfers"
    payment.refresh_from_db()
    assert payment.status == "cancelled"


# -- manual refunds ----------------------------------------------------------------------------


def test_refunds_are_recorded_as_manual_refunds_by_the_staff_member(
    bank, user, staff, sent, django_capture_on_commit_callbacks
):
    payment = awaiting_payment(amount="100.00", user=user)
    approve_transfer(payment=payment, user=staff)
    reference = payment.provider_payment_id

    with django_capture_on_commit_callbacks(execute=True):
        first = services.create_refund(
            payment=payment, amount="30.00", reason="one item", user=staff
        )
    assert first.status == "completed"
    assert first.processed_by == staff
    assert first.provider_refund_id == f"manual-{reference}"
    assert first.provider_response["refunded_by"] == "carol"
    assert first.provider_response["reference"] == reference
    assert first.provider_response["manual"] is True

    with django_capture_on_commit_callbacks(execute=True):
        second = services.create_refund(payment=payment, reason="the rest", user=staff)
    assert second.amount == D("70.00")
    assert second.provider_refund_id == f"manual-{reference}-2"

    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert payment.refunded_amount == D("100.00")
    transfer = BankTransfer.objects.get(payment=payment)
    assert len(transfer.refunds) == 2
    assert names(sent).count("payment_refunded") == 2

    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment, amount="1.00", user=staff)
    assert Refund.objects.filter(payment=payment).count() == 2


def test_a_waiting_transfer_cannot_be_refunded(bank, staff):
    payment = awaiting_payment()
    with pytest.raises(InvalidTransition):
        services.create_refund(payment=payment, user=staff)


def test_the_docs_page_is_linked_from_the_index():
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    page = docs / "providers" / "bank_transfer.md"
    assert page.exists()
    assert "providers/bank_transfer.md" in (docs / "index.md").read_text(encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert "```python" not in text  # excerpts only: docs/providers/ is not executed
    assert "```mermaid" in text
