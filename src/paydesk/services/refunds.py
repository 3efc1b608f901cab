"""Refund services: reserve, then call the provider, then record.

This module owns one decision: how a refund can never exceed what was captured, even when
many are requested at once. ``create_refund`` locks the payment, checks the amount against
the ledger fold (captured - completed - in-flight refunds) and appends a
``refund_requested`` entry that *reserves* the amount, all in one transaction. Only then,
outside any lock, does ``process_refund`` call the provider, with an idempotency key derived
from the refund's id so a repeated call cannot refund twice. A failed refund releases its
reservation; an unknown outcome (timeout) keeps it until a retry or sync settles it.

As in ``payments``, each step is its own function (``reserve_refund``, ``prepare_refund``,
``record_refund_result`` / ``record_refund_error``) so the async twins in
``paydesk.services.async_services`` reuse them around the provider's native async call.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import metrics, signals
from ..exceptions import (
    InvalidTransition,
    NotSupported,
    PaymentInProgress,
    PaymentValidationError,
    ProviderError,
    RefundExceedsCaptured,
)
from ..models import Payment, Refund
from ..money import Money
from ..policy import get_refund_policy
from ..providers.registry import get_payment_provider
from ..states import REFUNDABLE, LedgerKind, PaymentStatus, RefundStatus
from ..types import Capability, RefundRequest, RefundResult
from . import ledger
from .ledger import locked_payment
from .payments import _to_money, check_wire_amount

__all__ = ["RefundStep", "create_refund", "process_refund"]


@dataclass(frozen=True, slots=True)
class RefundStep:
    """The refund call ``prepare_refund`` committed to: who answers and what is asked."""

    refund_id: str
    alias: str
    request: RefundRequest


def create_refund(
    *,
    payment: Payment | str,
    amount: Money | Decimal | str | None = None,
    reason: str = "",
    user: Any | None = None,
    process: bool = True,
) -> Refund:
    """Reserve a refund of ``amount`` (default: all that is left) and, by default, send it.

    Raises ``RefundExceedsCaptured`` when completed plus in-flight refunds plus this one would
    exceed the captured amount, ``RefundNotAllowed`` when the project's refund policy says
    no, ``NotSupported`` when the provider cannot refund this way. Nothing is written then.
    """
    refund = reserve_refund(payment=payment, amount=amount, reason=reason, user=user)
    if process:
        return process_refund(refund=refund)
    return refund


def reserve_refund(
    *,
    payment: Payment | str,
    amount: Money | Decimal | str | None = None,
    reason: str = "",
    user: Any | None = None,
) -> Refund:
    """The database part of ``create_refund``: check and reserve the amount; commit."""
    current = ledger.get_payment(payment)
    provider = get_payment_provider(current.provider)
    if not provider.supports(Capability.REFUND):
        how = f" {provider.refund_instructions}" if provider.refund_instructions else ""
        raise NotSupported(f"Provider {current.provider!r} does not support refunds.{how}")
    money = _to_money(amount, current.currency) if amount is not None else None
    if money is not None and money.amount <= 0:
        raise PaymentValidationError("Refund amount must be greater than zero.", field="amount")
    get_refund_policy().check_refund(
        payment=current,
        amount=money or Money(current.refundable_amount, current.currency),
        user=user,
    )

    with transaction.atomic():
        locked = locked_payment(current)
        # A fully refunded payment gets the same answer as one whose remaining balance is
        # reserved by refunds still in flight: a caller racing them must not see a
        # different error depending on timing.
        if locked.status not in REFUNDABLE and locked.status != PaymentStatus.REFUNDED:
            raise InvalidTransition(
                f"Payment {locked.pk} is {locked.status}; only completed or partially refunded "
                "payments can be refunded (cancel an authorized one instead)."
            )
        available = locked.captured_amount - locked.refunded_amount - locked.refund_reserved_amount
        value = money or Money(available, locked.currency)
        if value.amount <= 0 or value.amount > available:

            def show(amount: Decimal) -> Money:
                return Money(amount, locked.currency)  # the currency's own precision

            raise RefundExceedsCaptured(
                f"Cannot refund {value}: {show(locked.captured_amount)} was captured, "
                f"{show(locked.refunded_amount)} is refunded and "
                f"{show(locked.refund_reserved_amount)} is being refunded, so at most "
                f"{Money(available, locked.currency)} can still be refunded."
            )
        check_wire_amount(provider, value)
        if value.amount < locked.captured_amount and not provider.supports(
            Capability.PARTIAL_REFUND
        ):
            raise NotSupported(f"Provider {locked.provider!r} only refunds whole payments.")
        if locked.refunded_amount + locked.refund_reserved_amount > 0 and not provider.supports(
            Capability.MULTIPLE_REFUNDS
        ):
            raise NotSupported(f"Provider {locked.provider!r} allows one refund per payment.")
        refund = Refund.objects.create(
            payment=locked,
            amount=value.amount,
            currency=locked.currency,
            reason=reason,
            processed_by=user if getattr(user, "pk", None) else None,
        )
        ledger.append(
            locked,
            kind=LedgerKind.REFUND_REQUESTED,
            key=f"refund:{refund.pk}:requested",
            amount=value.amount,
            ref=refund.pk,
            refund=refund,
            message=reason,
        )
        ledger.refresh(locked)
    return refund


def process_refund(*, refund: Refund | str) -> Refund:
    """Send a reserved refund to the provider and record its outcome.

    Safe to call again after a timeout: the same idempotency key is sent.
    """
    step = prepare_refund(refund=refund)
    provider = get_payment_provider(step.alias)
    try:
        with metrics.observe_provider_call(step.alias, "create_refund"):
            result = provider.create_refund(step.request)
    except ProviderError as exc:
        return record_refund_error(step, exc)
    return record_refund_result(refund=step.refund_id, result=result)


def prepare_refund(*, refund: Refund | str) -> RefundStep:
    """Step 1 of ``process_refund``: mark the refund processing; commit."""
    refund_id = refund if isinstance(refund, str) else refund.pk
    with transaction.atomic():
        locked_refund = ledger.get_refund(refund_id, lock=True)
        stale = locked_refund.updated_at <= timezone.now() - ledger.LEASE_DURATION
        # A refund stuck in processing (the process died mid-call, or the provider never
        # answered) may be sent again once its lease has run out: the same idempotency key
        # goes with it, so the provider cannot refund twice.
        if locked_refund.status == RefundStatus.PROCESSING and not stale:
            raise PaymentInProgress(
                f"Refund {refund_id} is already being sent to the provider; read its status."
            )
        if locked_refund.status not in (RefundStatus.PENDING, RefundStatus.PROCESSING):
            raise InvalidTransition(
                f"Refund {refund_id} is {locked_refund.status}; only pending refunds can be sent."
            )
        locked_refund.status = RefundStatus.PROCESSING
        locked_refund.save(update_fields=["status", "updated_at"])
        payment = Payment.objects.get(pk=locked_refund.payment_id)
        # Everything refunded or reserved except this refund's own reservation.
        others = payment.refunded_amount + payment.refund_reserved_amount - locked_refund.amount
        request = RefundRequest(
            refund_id=locked_refund.pk,
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            amount=Money(locked_refund.amount, locked_refund.currency),
            idempotency_key=f"paydesk:{locked_refund.pk}:refund",
            reason=locked_refund.reason,
            captured=Money(payment.captured_amount, payment.currency),
            already_refunded=Money(max(others, Decimal(0)), payment.currency),
        )
    return RefundStep(refund_id=refund_id, alias=payment.provider, request=request)


def record_refund_error(step: RefundStep, exc: ProviderError) -> Refund:
    """Step 3 after a ``ProviderError``: a refusal fails the refund (and releases its
    reservation); an unknown outcome keeps the reservation and is re-raised."""
    exc.provider = exc.provider or step.alias
    if exc.retryable:
        # Outcome unknown: keep the reservation, allow a retry with the same key.
        Refund.objects.filter(pk=step.refund_id, status=RefundStatus.PROCESSING).update(
            status=RefundStatus.PENDING, failure_code=exc.code, failure_message=exc.message
        )
        raise exc
    result = RefundResult(status="failed", raw=exc.as_dict())
    return record_refund_result(refund=step.refund_id, result=result, error=exc)


_SIGNAL_ARGUMENTS = frozenset(
    {"sender", "payment", "provider", "result", "refund", "amount", "reason"}
    | {"error_code", "error_message"}
)


def _extra_kwargs(result: RefundResult) -> dict[str, Any]:
    """The provider's extra signal arguments, never overriding paydesk's own."""
    return {k: v for k, v in result.signal_kwargs.items() if k not in _SIGNAL_ARGUMENTS}


def record_refund_result(
    *, refund: Refund | str, result: RefundResult, error: ProviderError | None = None
) -> Refund:
    """Append a provider's refund outcome (from the API response, a webhook or a sync)."""
    refund_id = ledger.get_refund(refund).pk
    with transaction.atomic():
        payment = locked_payment(
            Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
        )
        locked_refund = Refund.objects.select_for_update().get(pk=refund_id)
        old = payment.status
        if result.provider_refund_id:
            locked_refund.provider_refund_id = result.provider_refund_id
        locked_refund.provider_response = dict(result.raw)
        if result.status == "completed":
            entry = ledger.append(
                payment,
                kind=LedgerKind.REFUND_COMPLETED,
                key=f"refund:{refund_id}:completed",
                amount=locked_refund.amount,
                ref=refund_id,
                refund=locked_refund,
                provider_data=dict(result.raw),
                message=locked_refund.reason,
            )
            locked_refund.status = RefundStatus.COMPLETED
            locked_refund.failure_code = ""
            locked_refund.failure_message = ""
            locked_refund.processed_at = locked_refund.processed_at or timezone.now()
            ledger.refresh(payment)
            if entry is not None:
                signals.send_on_commit(
                    signals.payment_refunded,
                    **_extra_kwargs(result),
                    sender=Payment,
                    payment=payment,
                    provider=payment.provider,
                    result=result,
                    refund=locked_refund,
                    amount=locked_refund.amount,
                    reason=locked_refund.reason,
                )
        elif result.status == "failed":
            code = error.code if error else (result.failure.code if result.failure else "")
            message = (
                error.message
                if error
                else (
                    result.failure.message if result.failure else "The provider refused the refund."
                )
            )
            entry = ledger.append(
                payment,
                kind=LedgerKind.REFUND_FAILED,
                key=f"refund:{refund_id}:failed",
                ref=refund_id,
                refund=locked_refund,
                provider_data=dict(result.raw),
                message=message,
            )
            if locked_refund.status != RefundStatus.COMPLETED:
                locked_refund.status = RefundStatus.FAILED
                locked_refund.failure_code = code or "processing_error"
                locked_refund.failure_message = message
            ledger.refresh(payment)
            # A late failure report for a refund that completed is recorded, not announced.
            if entry is not None and locked_refund.status == RefundStatus.FAILED:
                signals.send_on_commit(
                    signals.refund_failed,
                    **_extra_kwargs(result),
                    sender=Payment,
                    payment=payment,
                    provider=payment.provider,
                    result=result,
                    refund=locked_refund,
                    error_code=locked_refund.failure_code,
                    error_message=message,
                )
        else:  # pending at the provider: a webhook or sync completes it
            locked_refund.status = RefundStatus.PROCESSING
        locked_refund.save()
        ledger.announce(payment, old, result=None)
    return locked_refund
