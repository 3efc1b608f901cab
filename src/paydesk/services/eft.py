"""Manual bank transfers: receipts, staff approval and rejection, expiry.

This module owns one decision: how a staff member's verdict on a bank transfer becomes a
payment fact, exactly once. Every change runs in one transaction that locks the payment row
and then the ``BankTransfer`` row (always in that order, so two decisions serialise instead
of deadlocking), re-reads the transfer's status under the lock, and only then writes:

* ``approve`` appends the capture through the ledger primitives (``record_result`` with a
  ``captured`` result; ``payment_confirmed`` follows on commit) and sends ``eft_approved``;
* ``reject`` appends a failure with code ``transfer_rejected`` (``payment_failed`` follows)
  and sends ``eft_rejected``;
* ``expire_transfers`` cancels transfers that waited past ``expires_at`` without a receipt;
* ``record_receipt`` stores a validated receipt (the payment's state does not change).

Two staff members approving at once therefore give one approval: the second waits for the
first's lock, then finds the transfer approved and gets ``InvalidTransition`` naming who
approved it and when. With the provider's ``FOUR_EYES`` option, the approver must be someone
other than whoever recorded the receipt and other than the paying user
(``FourEyesViolation``). Every decision, and every refused attempt to decide, is written to
the audit log (``eft_approved`` / ``eft_rejected`` / ``eft_expired`` /
``eft_receipt_uploaded``; refused attempts with ``success=False``).

Permission to decide (``is_staff``, model permissions) is the caller's business: the admin
and the dashboard check it before calling in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..exceptions import InvalidTransition, PaymentStateError, PaymentValidationError
from ..models import Payment
from ..models.eft import BankTransfer, BankTransferStatus, normalize_reference
from ..money import Money
from ..providers.bank_transfer import (
    DEFAULT_RECEIPT_MAX_SIZE,
    BankTransferProvider,
    rejection_message,
)
from ..providers.bank_transfer.errors import FourEyesViolation, ReceiptRejected
from ..providers.bank_transfer.receipts import (
    DEFAULT_RECEIPT_TYPES,
    check_receipt,
)
from ..providers.registry import get_payment_provider
from ..security.audit import AuditLogger
from ..states import CANCELLABLE, LedgerKind, PaymentStatus
from ..types import PaymentResult, ProviderFailure, ProviderStatus
from . import ledger

__all__ = [
    "EFTApprovalService",
    "FourEyesViolation",
    "ReceiptRejected",
    "approve_transfer",
    "expire_transfers",
    "get_transfer",
    "record_receipt",
    "reject_transfer",
]

TransferRef = BankTransfer | str


def get_transfer(
    *, payment: Payment | str | None = None, transfer: TransferRef | None = None
) -> BankTransfer:
    """The bank transfer for ``payment`` (a Payment or its id) or ``transfer`` (a
    ``BankTransfer`` or its reference, written any way: ``"pd 7kqm x3tr"`` works).

    Unknown ones raise ``PaymentValidationError`` with code ``not_found``.
    """
    if (payment is None) == (transfer is None):
        raise PaymentValidationError(
            "Name the bank transfer by payment=... or by transfer=... (exactly one).",
            field="transfer",
        )
    if isinstance(transfer, BankTransfer):
        return transfer
    queryset = BankTransfer.objects.select_related("payment")
    if transfer is not None:
        found = queryset.filter(reference=normalize_reference(transfer)).first()
        what = f"reference {transfer!r}"
    else:
        payment_id = ledger.payment_pk(payment)  # type: ignore[arg-type]
        found = queryset.filter(payment_id=payment_id).first()
        what = f"payment {payment_id!r}"
    if found is None:
        raise PaymentValidationError(
            f"No bank transfer for {what}.", code="not_found", field="transfer"
        )
    return found


def _who(user: Any) -> str:
    if user is None:
        return "someone"
    return str(user.get_username() if hasattr(user, "get_username") else user)


def _require_user(user: Any, verb: str) -> None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        raise PaymentValidationError(
            f"To {verb} a bank transfer, pass the staff member who decides as user=...; "
            "decisions are recorded against a person.",
            field="user",
        )


def _utc(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def _closed_message(transfer: BankTransfer) -> str:
    ref = transfer.reference
    when = _utc(transfer.decided_at) if transfer.decided_at else "earlier"
    if transfer.status == BankTransferStatus.APPROVED:
        return (
            f"Bank transfer {ref} was already approved by {_who(transfer.decided_by)} at "
            f"{when}; nothing was changed. Refund the payment if the approval was a mistake."
        )
    if transfer.status == BankTransferStatus.REJECTED:
        return (
            f"Bank transfer {ref} was already rejected by {_who(transfer.decided_by)} at "
            f"{when} ({transfer.reason}); nothing was changed."
        )
    if transfer.status == BankTransferStatus.EXPIRED:
        return (
            f"Bank transfer {ref} expired at {_utc(transfer.expires_at)} and its "
            "payment is cancelled; if the money arrived late, send it back by hand or take it "
            "as a new payment."
        )
    return f"Bank transfer {ref} is {transfer.status}; nothing was changed."


class EFTApprovalService:
    """Approve or reject manual bank transfers; see the module docstring for the guarantees.

    ``approve(payment=..., user=...)`` and ``reject(transfer=..., user=..., reason=...)``
    name the transfer by its payment or by the transfer (instance or reference) and return
    the updated ``BankTransfer`` (its ``payment`` is the refreshed payment row).
    """

    def __init__(self, *, audit: AuditLogger | None = None) -> None:
        self.audit = audit or AuditLogger()

    # -- decisions -----------------------------------------------------------------------

    def approve(
        self,
        *,
        payment: Payment | str | None = None,
        transfer: TransferRef | None = None,
        user: Any,
        note: str = "",
    ) -> BankTransfer:
        """Confirm the money arrived: the payment is captured and becomes ``completed``."""
        _require_user(user, "approve")
        target = get_transfer(payment=payment, transfer=transfer)
        try:
            with transaction.atomic():
                locked, bt = self._lock(target)
                self._check_open(bt, locked)
                self._check_four_eyes(bt, locked, user)
                money = Money(bt.amount, bt.currency)
                bt.status = BankTransferStatus.APPROVED
                bt.decided_by = user
                bt.decided_at = timezone.now()
                bt.note = note
                bt.save(update_fields=["status", "decided_by", "decided_at", "note", "updated_at"])
                result = PaymentResult(
                    status=ProviderStatus.CAPTURED,
                    provider_payment_id=bt.reference,
                    amount_authorized=money,
                    amount_captured=money,
                    raw={
                        "reference": bt.reference,
                        "status": bt.status,
                        "approved_by": _who(user),
                        "note": note,
                    },
                )
                old = locked.status
                ledger.record_result(locked, result, attempt=locked.attempt, source="eft_approval")
                ledger.announce(locked, old, result=result)
                self.audit.log(
                    action="eft_approved",
                    obj=locked,
                    actor=user,
                    provider=locked.provider,
                    amount=money,
                    details={"reference": bt.reference, "transfer_id": bt.pk, "note": note},
                )
                signals.send_on_commit(
                    signals.eft_approved,
                    sender=Payment,
                    payment=locked,
                    provider=locked.provider,
                    result=result,
                    transfer=bt,
                    approved_by=user,
                    approval_service=self,
                )
        except PaymentStateError as exc:
            self._log_refusal("eft_approved", target, user, exc)
            raise
        bt.payment = locked
        return bt

    def reject(
        self,
        *,
        payment: Payment | str | None = None,
        transfer: TransferRef | None = None,
        user: Any,
        reason: str,
    ) -> BankTransfer:
        """Refuse the transfer (wrong amount, no money arrived...): the payment fails with
        code ``transfer_rejected`` and ``reason`` in its failure message, which the customer
        may see."""
        _require_user(user, "reject")
        reason = (reason or "").strip()
        if not reason:
            raise PaymentValidationError(
                "Give a reason for rejecting the transfer; the customer is shown it.",
                field="reason",
            )
        target = get_transfer(payment=payment, transfer=transfer)
        try:
            with transaction.atomic():
                locked, bt = self._lock(target)
                self._check_open(bt, locked)
                bt.status = BankTransferStatus.REJECTED
                bt.decided_by = user
                bt.decided_at = timezone.now()
                bt.reason = reason
                bt.save(
                    update_fields=["status", "decided_by", "decided_at", "reason", "updated_at"]
                )
                result = PaymentResult(
                    status=ProviderStatus.FAILED,
                    provider_payment_id=bt.reference,
                    failure=ProviderFailure(
                        code="transfer_rejected",
                        message=rejection_message(reason),
                        provider_code="rejected",
                    ),
                    raw={
                        "reference": bt.reference,
                        "status": bt.status,
                        "rejected_by": _who(user),
                        "reason": reason,
                    },
                )
                old = locked.status
                ledger.record_result(locked, result, attempt=locked.attempt, source="eft_approval")
                ledger.announce(locked, old, result=result)
                self.audit.log(
                    action="eft_rejected",
                    obj=locked,
                    actor=user,
                    provider=locked.provider,
                    amount=Money(bt.amount, bt.currency),
                    details={"reference": bt.reference, "transfer_id": bt.pk, "reason": reason},
                )
                signals.send_on_commit(
                    signals.eft_rejected,
                    sender=Payment,
                    payment=locked,
                    provider=locked.provider,
                    result=result,
                    transfer=bt,
                    rejected_by=user,
                    reason=reason,
                    approval_service=self,
                )
        except PaymentStateError as exc:
            self._log_refusal("eft_rejected", target, user, exc)
            raise
        bt.payment = locked
        return bt

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _lock(target: BankTransfer) -> tuple[Payment, BankTransfer]:
        # Payment first, then the transfer: the order every EFT service uses.
        locked = ledger.locked_payment(target.payment_id)
        bt = BankTransfer.objects.select_for_update().get(pk=target.pk)
        return locked, bt

    @staticmethod
    def _check_open(bt: BankTransfer, payment: Payment) -> None:
        if not bt.is_open:
            raise InvalidTransition(_closed_message(bt))
        if payment.status != PaymentStatus.REQUIRES_ACTION:
            raise InvalidTransition(
                f"Payment {payment.pk} is {payment.status}; a bank transfer can be decided only "
                "while its payment waits for the customer (requires_action)."
            )

    @staticmethod
    def _check_four_eyes(bt: BankTransfer, payment: Payment, user: Any) -> None:
        provider = get_payment_provider(payment.provider)
        if not getattr(provider, "four_eyes", False):
            return
        if bt.receipt_uploaded_by_id is not None and bt.receipt_uploaded_by_id == user.pk:
            raise FourEyesViolation(
                f"Four-eyes rule: {_who(user)} recorded the receipt of bank transfer "
                f"{bt.reference}, so another staff member must approve it."
            )
        if payment.user_id is not None and payment.user_id == user.pk:
            raise FourEyesViolation(
                f"Four-eyes rule: {_who(user)} is the customer of payment {payment.pk} and "
                "cannot approve their own transfer; ask another staff member."
            )

    def _log_refusal(
        self, action: str, target: BankTransfer, user: Any, exc: PaymentStateError
    ) -> None:
        # Outside the rolled-back transaction, so the refused attempt stays on record.
        self.audit.log(
            action=action,
            object_type="payment",
            object_id=str(target.payment_id),
            actor=user,
            provider=target.payment.provider,
            success=False,
            amount=Money(target.amount, target.currency),
            details={"reference": target.reference, "error": exc.code, "message": exc.message},
        )


def approve_transfer(
    *,
    payment: Payment | str | None = None,
    transfer: TransferRef | None = None,
    user: Any,
    note: str = "",
) -> BankTransfer:
    """``EFTApprovalService().approve(...)``."""
    return EFTApprovalService().approve(payment=payment, transfer=transfer, user=user, note=note)


def reject_transfer(
    *,
    payment: Payment | str | None = None,
    transfer: TransferRef | None = None,
    user: Any,
    reason: str,
) -> BankTransfer:
    """``EFTApprovalService().reject(...)``."""
    return EFTApprovalService().reject(payment=payment, transfer=transfer, user=user, reason=reason)


def _receipt_rules(payment: Payment) -> tuple[tuple[str, ...], int]:
    provider = get_payment_provider(payment.provider)
    if isinstance(provider, BankTransferProvider):
        return provider.receipt_types, provider.receipt_max_size
    return DEFAULT_RECEIPT_TYPES, DEFAULT_RECEIPT_MAX_SIZE


def record_receipt(
    *,
    transfer: TransferRef,
    file: Any,
    user: Any,
    ip_address: str | None = None,
) -> BankTransfer:
    """Store ``file`` (a Django ``UploadedFile``/``File``) as the transfer's receipt.

    The file's type is sniffed from its first bytes and must be one of the provider's
    ``RECEIPT_TYPES``, at most ``RECEIPT_MAX_SIZE`` bytes (``ReceiptRejected`` otherwise).
    Allowed while the transfer awaits a decision and before it expires (``InvalidTransition``
    otherwise); a new upload replaces the previous receipt, whose file is deleted. ``user`` is
    the uploader (the customer, or staff recording an emailed receipt); an anonymous user is
    stored as nobody. Saved through Django's default storage.
    """
    target = get_transfer(transfer=transfer)
    allowed, max_size = _receipt_rules(target.payment)
    kind = check_receipt(file, allowed=allowed, max_size=max_size)
    uploader = user if getattr(user, "is_authenticated", False) and user.pk else None
    with transaction.atomic():
        locked, bt = EFTApprovalService._lock(target)
        if not bt.is_open:
            raise InvalidTransition(_closed_message(bt))
        now = timezone.now()
        if bt.expired_by(now):
            raise InvalidTransition(
                f"The payment window for bank transfer {bt.reference} closed at "
                f"{_utc(bt.expires_at)}; receipts are no longer accepted. "
                "Contact the shop if you have already sent the money."
            )
        previous = bt.receipt.name if bt.receipt else ""
        bt.receipt.save(f"receipt.{kind.extension}", file, save=False)
        bt.receipt_content_type = kind.content_type
        bt.receipt_size = file.size
        bt.receipt_uploaded_at = now
        bt.receipt_uploaded_by = uploader
        bt.status = BankTransferStatus.RECEIPT_UPLOADED
        bt.save()
        count = locked.ledger.filter(kind=LedgerKind.NOTE).count()
        ledger.append(
            locked,
            kind=LedgerKind.NOTE,
            key=f"eft:receipt:{now.timestamp():.6f}:{count}",
            provider_data={"reference": bt.reference, "receipt": bt.receipt.name},
            message=f"receipt uploaded by {_who(uploader) if uploader else 'the customer'}",
        )
        AuditLogger().log(
            action="eft_receipt_uploaded",
            obj=locked,
            actor=user,  # an anonymous customer is recorded as "anonymous"
            provider=locked.provider,
            ip_address=ip_address,
            details={
                "reference": bt.reference,
                "receipt": bt.receipt.name,
                "content_type": kind.content_type,
                "size": file.size,
                "replaced": previous,
            },
        )
        if previous:
            storage = bt.receipt.storage
            transaction.on_commit(lambda: storage.delete(previous))
    bt.payment = locked
    return bt


def expire_transfers(*, now: dt.datetime | None = None) -> int:
    """Expire transfers still ``awaiting_transfer`` after their ``expires_at``; return how many.

    Their payments are cancelled (``payment_cancelled`` is sent). A transfer with a receipt
    waiting for review is left for staff to decide, however old.
    """
    now = now or timezone.now()
    candidates = list(
        BankTransfer.objects.filter(
            status=BankTransferStatus.AWAITING_TRANSFER, expires_at__lte=now
        ).values_list("pk", "payment_id")
    )
    audit = AuditLogger()
    expired = 0
    for pk, payment_id in candidates:
        with transaction.atomic():
            locked = ledger.locked_payment(payment_id)
            bt = BankTransfer.objects.select_for_update().get(pk=pk)
            if bt.status != BankTransferStatus.AWAITING_TRANSFER or not bt.expired_by(now):
                continue  # decided, or given a receipt, since the list was read
            bt.status = BankTransferStatus.EXPIRED
            bt.decided_at = now
            bt.reason = f"No transfer arrived by {_utc(bt.expires_at)}."
            bt.save(update_fields=["status", "decided_at", "reason", "updated_at"])
            if locked.status in CANCELLABLE:
                old = locked.status
                result = PaymentResult(
                    status=ProviderStatus.CANCELLED,
                    provider_payment_id=bt.reference,
                    raw={"reference": bt.reference, "status": bt.status, "reason": bt.reason},
                )
                ledger.record_result(locked, result, attempt=locked.attempt, source="eft_expiry")
                ledger.announce(locked, old, result=result)
            audit.log(
                action="eft_expired",
                obj=locked,
                actor=None,
                provider=locked.provider,
                amount=Money(bt.amount, bt.currency),
                details={"reference": bt.reference, "transfer_id": bt.pk, "reason": bt.reason},
            )
            expired += 1
    return expired
