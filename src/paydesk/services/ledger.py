"""Appending to a payment's ledger and refreshing its cached state.

This module owns one decision: how a fact becomes durable. Callers hold the payment's row
lock (``locked_payment``) inside ``transaction.atomic``; ``append`` inserts one ledger row
(a repeated idempotency key is a no-op, so duplicate events are harmless), ``refresh``
re-folds the ledger onto the payment row, and ``announce`` queues the signals that the
status change deserves, to be sent on commit.

It also owns the *operation lease*: a short-lived marker on the payment row, taken under the
lock before a provider call and cleared when its outcome is recorded, so two requests can
never send the same operation to the provider at once. A lease expires on its own, so a
process that died mid-call does not block the payment forever.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from .. import signals
from ..exceptions import PaymentInProgress, PaymentValidationError
from ..models import Payment, Refund, TransactionLog
from ..states import LedgerFact, LedgerKind, PaymentState, PaymentStatus, fold
from ..types import PaymentResult, ProviderStatus
from . import _sql

logger = logging.getLogger("paydesk.services")

LEASE_DURATION = dt.timedelta(minutes=2)


def payment_pk(payment: Payment | str) -> str:
    return payment if isinstance(payment, str) else payment.pk


def get_payment(payment: Payment | str, *, lock: bool = False) -> Payment:
    """The payment row (locked until the transaction ends with ``lock=True``).

    Every service reports an unknown id the same way: ``PaymentValidationError`` with code
    ``not_found``, never ``DoesNotExist``.
    """
    queryset = Payment.objects.select_for_update() if lock else Payment.objects
    try:
        return queryset.get(pk=payment_pk(payment))
    except Payment.DoesNotExist:
        raise PaymentValidationError(
            f"No payment with id {payment_pk(payment)!r}.", code="not_found", field="payment"
        ) from None


def locked_payment(payment: Payment | str) -> Payment:
    """The payment row, locked until the surrounding transaction ends."""
    return get_payment(payment, lock=True)


def get_refund(refund: Refund | str, *, lock: bool = False) -> Refund:
    refund_id = refund if isinstance(refund, str) else refund.pk
    queryset = Refund.objects.select_for_update() if lock else Refund.objects
    try:
        return queryset.get(pk=refund_id)
    except Refund.DoesNotExist:
        raise PaymentValidationError(
            f"No refund with id {refund_id!r}.", code="not_found", field="refund"
        ) from None


def append(
    payment: Payment,
    *,
    kind: LedgerKind,
    key: str,
    amount: Decimal | None = None,
    ref: str = "",
    attempt: int | None = None,
    refund: Refund | None = None,
    provider_data: dict[str, Any] | None = None,
    message: str = "",
) -> TransactionLog | None:
    """Insert one ledger row; return ``None`` if this key was already recorded.

    On PostgreSQL and SQLite one ``INSERT ... ON CONFLICT (payment_id, idempotency_key) DO
    NOTHING``: no existence check, no savepoint, and a duplicate cannot poison the caller's
    transaction. Elsewhere: check, then insert in a savepoint.
    """
    entry = TransactionLog(
        payment=payment,
        refund=refund,
        kind=kind,
        amount=amount,
        currency=payment.currency,
        attempt=payment.attempt if attempt is None else attempt,
        ref=ref,
        idempotency_key=key,
        provider_data=provider_data or {},
        message=message,
    )
    using = router.db_for_write(TransactionLog)
    if _sql.supported(using):
        inserted = _sql.insert_on_conflict(
            entry, using=using, unique=("payment", "idempotency_key")
        )
        if inserted is None:
            return None
        _sql.mark_inserted(entry, inserted["id"], using)
        return entry
    if TransactionLog.objects.filter(payment=payment, idempotency_key=key).exists():
        return None
    try:
        # The savepoint keeps an unexpected duplicate from poisoning the outer transaction.
        with transaction.atomic(using=using):
            entry.save(using=using, force_insert=True)
            return entry
    except IntegrityError:
        return None


_FACT_COLUMNS = ("kind", "idempotency_key", "attempt", "amount", "ref")


def _facts(payment: Payment) -> list[LedgerFact]:
    """The payment's ledger as the fold reads it.

    Unordered: the fold is order-independent (see ``states.fold``), so the ledger's default
    ``ORDER BY created_at, id`` would only cost a sort. Every refresh reads it, so where the
    database allows, by a statement built once rather than a compiled queryset (the same
    columns as ``LedgerQuerySet.facts``).
    """
    using = router.db_for_read(TransactionLog)
    if not _sql.supported(using):
        return TransactionLog.objects.filter(payment=payment).order_by().facts()
    rows = _sql.select_values(
        TransactionLog, using=using, names=_FACT_COLUMNS, where={"payment": payment.pk}
    )
    return [
        LedgerFact(kind=LedgerKind(kind), key=key, attempt=attempt, amount=amount, ref=ref)
        for kind, key, attempt, amount, ref in rows
    ]


def refresh(payment: Payment) -> PaymentState:
    """Fold the ledger onto the payment row (caller holds the lock)."""
    state = fold(_facts(payment))
    payment.status = state.status
    payment.authorized_amount = state.authorized
    payment.captured_amount = state.captured
    payment.refunded_amount = state.refunded
    payment.refund_reserved_amount = state.refund_reserved
    if (
        state.status in (PaymentStatus.AUTHORIZED, PaymentStatus.COMPLETED)
        and not payment.processed_at
    ):
        payment.processed_at = timezone.now()
    if state.status == PaymentStatus.CANCELLED and not payment.cancelled_at:
        payment.cancelled_at = timezone.now()
    if state.status != PaymentStatus.REQUIRES_ACTION:
        payment.next_action = None
    if state.captured > 0 or state.status == PaymentStatus.AUTHORIZED:
        # A late failure report for a payment whose money moved must not show as its error.
        payment.failure_code = ""
        payment.failure_message = ""
    payment.save()
    return state


def take_lease(payment: Payment, operation: str) -> None:
    """Mark ``operation`` as under way (caller holds the lock)."""
    now = timezone.now()
    if payment.lease_operation and payment.lease_until and payment.lease_until > now:
        raise PaymentInProgress(
            f"Payment {payment.pk} is already being sent to the provider "
            f"({payment.lease_operation}). Wait for that request to finish, then read the "
            "payment's status."
        )
    payment.lease_operation = operation
    payment.lease_until = now + LEASE_DURATION


def release_lease(payment: Payment) -> None:
    payment.lease_operation = ""
    payment.lease_until = None


def lease_expired(payment: Payment) -> bool:
    return not payment.lease_until or payment.lease_until <= timezone.now()


def announce(payment: Payment, old_status: str, *, result: Any = None) -> None:
    """Queue the signals a status change from ``old_status`` deserves (sent on commit)."""
    new = PaymentStatus(payment.status)
    if new == old_status:
        return
    common: dict[str, Any] = {
        **dict(getattr(result, "signal_kwargs", None) or {}),
        "sender": Payment,
        "payment": payment,
        "provider": payment.provider,
        "result": result,
    }
    if new == PaymentStatus.REQUIRES_ACTION:
        signals.send_on_commit(
            signals.payment_requires_action, next_action=payment.next_action, **common
        )
        action = payment.next_action or {}
        if action.get("type") == "redirect" and action.get("redirect_url"):
            signals.send_on_commit(
                signals.payment_registered,
                next_action=action,
                redirect_url=action["redirect_url"],
                **common,
            )
    elif new in (PaymentStatus.AUTHORIZED, PaymentStatus.COMPLETED) and old_status in (
        PaymentStatus.PENDING,
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.PROCESSING,
        PaymentStatus.FAILED,
        PaymentStatus.AUTHORIZED,
    ):
        signals.send_on_commit(signals.payment_confirmed, **common)
    elif new == PaymentStatus.FAILED:
        signals.send_on_commit(
            signals.payment_failed,
            error_code=payment.failure_code,
            error_message=payment.failure_message,
            **common,
        )
    elif new == PaymentStatus.CANCELLED:
        signals.send_on_commit(signals.payment_cancelled, **common)


def record_result(
    payment: Payment, result: PaymentResult, *, attempt: int, source: str
) -> PaymentState:
    """Append the facts a provider result reports (caller holds the lock).

    Keys are derived from the provider's ids and the attempt, never from the source, so the
    same outcome reported by the API response, a webhook and a sync is one ledger fact.
    """
    ppid = result.provider_payment_id or payment.provider_payment_id
    if result.provider_payment_id and not payment.provider_payment_id:
        payment.provider_payment_id = result.provider_payment_id
    raw = dict(result.raw)
    amount = payment.amount
    status = result.status

    if status == ProviderStatus.REQUIRES_ACTION:
        payment.next_action = result.next_action.as_dict() if result.next_action else None
        append(
            payment,
            kind=LedgerKind.REQUIRES_ACTION,
            key=f"attempt-{attempt}:requires_action",
            attempt=attempt,
            provider_data=raw,
            message=f"via {source}",
        )
    elif status == ProviderStatus.PROCESSING:
        append(
            payment,
            kind=LedgerKind.PROCESSING,
            key=f"attempt-{attempt}:processing",
            attempt=attempt,
            provider_data=raw,
            message=f"via {source}",
        )
    elif status in (ProviderStatus.AUTHORIZED, ProviderStatus.CAPTURED):
        authorized = result.amount_authorized.amount if result.amount_authorized else amount
        append(
            payment,
            kind=LedgerKind.AUTHORIZATION,
            key=f"authorization:{ppid}",
            amount=authorized,
            ref=ppid,
            attempt=attempt,
            provider_data=raw,
            message=f"via {source}",
        )
        if status == ProviderStatus.CAPTURED:
            captured = result.amount_captured.amount if result.amount_captured else authorized
            append(
                payment,
                kind=LedgerKind.CAPTURE,
                key=f"capture:{ppid}",
                amount=captured,
                ref=ppid,
                attempt=attempt,
                provider_data=raw,
                message=f"via {source}",
            )
        if result.fee is not None:
            payment.processing_fee = result.fee.amount
        payment.failure_code = ""
        payment.failure_message = ""
    elif status == ProviderStatus.FAILED:
        failure = result.failure
        payment.failure_code = failure.code if failure else "processing_error"
        payment.failure_message = failure.message if failure else "The provider failed the payment."
        append(
            payment,
            kind=LedgerKind.PAYMENT_FAILED,
            key=f"attempt-{attempt}:failed",
            attempt=attempt,
            provider_data={**raw, "failure_code": payment.failure_code},
            message=payment.failure_message,
        )
    elif status == ProviderStatus.CANCELLED:
        append(
            payment,
            kind=LedgerKind.CANCELLATION,
            key=f"cancellation:{ppid or attempt}",
            attempt=attempt,
            provider_data=raw,
            message=f"via {source}",
        )
    # Fraud signals in the provider's answer (iyzico fraudStatus, Stripe outcome) go to the
    # payment's FraudAssessment; nothing is written when there are none.
    from .fraud import record_provider_signals

    record_provider_signals(payment, result)
    if result.note:
        digest = hashlib.sha256(result.note.encode()).hexdigest()[:16]
        append(
            payment,
            kind=LedgerKind.NOTE,
            key=f"attempt-{attempt}:provider-note:{digest}",
            attempt=attempt,
            provider_data=raw,
            message=result.note,
        )
    return refresh(payment)
