"""Payment services: create, process, confirm, capture, cancel, retry, sync.

This module owns one decision: the order of operations around each provider call. Every
function follows the same three steps, so no row lock is ever held across the network:

1. lock the payment, check the transition, record the intent and take the operation lease;
   commit;
2. call the provider with a deterministic idempotency key derived from paydesk's own ids
   (a retry of the same step sends the same key, so the provider cannot charge twice);
3. lock again, append what the provider answered, refresh the fold, release the lease;
   commit; signals go out on commit.

A definitive refusal (declined card, expired card) is recorded and the payment returned with
``status="failed"``; it is not raised. A retryable provider error (timeout, 5xx) leaves the
outcome unknown: it is noted in the ledger and re-raised, and ``sync_payment`` settles it.

Each service is written as those steps: a ``prepare_*`` function (step 1, returning a
``ProviderStep``), the provider call, and ``record_outcome`` / ``record_failure`` (step 3).
The async twins in ``paydesk.services.async_services`` run the same step functions around
the provider's native ``*_async`` call, so the two can never drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction

from .. import metrics, signals
from ..conf import paydesk_settings
from ..exceptions import (
    ConfigurationError,
    InvalidTransition,
    MoneyError,
    NotSupported,
    PaymentInProgress,
    PaymentMethodNotUsable,
    PaymentValidationError,
    ProviderError,
    UnknownCurrency,
)
from ..models import Payment, PaymentMethod
from ..models.fields import AMOUNT_DIGITS, AMOUNT_PLACES
from ..money import Money
from ..providers.base import PaymentProvider
from ..providers.registry import get_payment_provider
from ..states import (
    CANCELLABLE,
    CAPTURABLE,
    PROCESSABLE,
    RETRYABLE,
    LedgerKind,
    PaymentStatus,
)
from ..types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    Customer,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    StatusRequest,
)
from . import fraud, ledger
from .ledger import locked_payment
from .methods import check_token

__all__ = [
    "ProviderStep",
    "cancel_payment",
    "capture_payment",
    "confirm_payment",
    "create_payment",
    "process_payment",
    "retry_payment",
    "sync_payment",
]


@dataclass(frozen=True, slots=True)
class ProviderStep:
    """What step 1 decided and committed: the provider call that step 2 must make.

    ``method`` names the provider operation (``create_payment``, ``confirm_payment``...;
    its async twin is ``method + "_async"``), ``source`` is the ledger's name for the step
    (``process``, ``confirm``, ``capture``, ``cancel``, ``sync``).
    """

    payment: Payment
    alias: str
    method: str
    source: str
    request: Any
    attempt: int


MAX_AMOUNT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


def _to_money(amount: Money | Decimal | str | int, currency: str | None) -> Money:
    if isinstance(amount, Money):
        if currency and currency.upper() != amount.currency:
            raise PaymentValidationError(
                f"amount is in {amount.currency} but currency={currency!r} was given.",
                field="currency",
            )
        return amount
    if isinstance(amount, float):
        raise PaymentValidationError(
            "Amounts must not be floats; pass a Decimal or a string such as '19.99'.",
            field="amount",
        )
    try:
        return Money(amount, currency or paydesk_settings.DEFAULT_CURRENCY)
    except MoneyError as exc:
        field = "currency" if isinstance(exc, UnknownCurrency) else "amount"
        raise PaymentValidationError(exc.message, code=exc.code, field=field) from exc


def check_wire_amount(provider: PaymentProvider, money: Money) -> None:
    """Refuse ``money`` if ``provider`` cannot send it (PayPal: no HUF/JPY/TWD decimals).

    Called before anything is written or reserved, so a refusal leaves no lease, no ledger
    entry and no refund reservation behind.
    """
    try:
        provider.currency_rules.to_minor_units(money)
    except MoneyError as exc:
        raise PaymentValidationError(exc.message, code=exc.code, field="amount") from exc


def processing_fee(money: Money) -> Money:
    """The configured processing fee (``PAYDESK["PROCESSING_FEE_RATE"]`` percent), exact."""
    configured = paydesk_settings.PROCESSING_FEE_RATE or "0"
    if isinstance(configured, float):
        raise ConfigurationError(
            'PAYDESK["PROCESSING_FEE_RATE"] must be a string or Decimal such as "3", not a '
            "float (see check paydesk.E007)."
        )
    rate = Decimal(str(configured))
    return money.percentage(rate) if rate else Money.zero(money.currency)


def _check_method(method: PaymentMethod, *, user: Any, provider: str) -> None:
    if not method.is_active:
        raise PaymentMethodNotUsable(
            "This payment method is deactivated; ask the customer for another one.",
            field="payment_method",
        )
    if user is None or method.user_id != user.pk:
        raise PaymentMethodNotUsable(
            "This payment method belongs to another user.", field="payment_method"
        )
    if method.provider != provider:
        raise PaymentMethodNotUsable(
            f"This payment method was saved with provider {method.provider!r}, not {provider!r}.",
            field="payment_method",
        )


def create_payment(
    *,
    amount: Money | Decimal | str | int,
    currency: str | None = None,
    provider: str | None = None,
    user: Any | None = None,
    payment_method: PaymentMethod | None = None,
    payment_method_token: str = "",
    reference: str = "",
    content_object: models.Model | None = None,
    description: str = "",
    capture: bool = True,
    return_url: str = "",
    customer_email: str = "",
    metadata: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Payment:
    """Create a pending payment and its first ledger entry; nothing is sent to the provider.

    ``idempotency_key`` (scoped to ``user``; all anonymous checkouts share one scope, so use
    a random key such as a per-form UUID) makes a double-submitted checkout return the
    payment the first submission created, provided amount, currency, provider and
    ``content_object`` are the same; otherwise ``PaymentValidationError`` with code
    ``idempotency_key_reused``.
    """
    check_token(payment_method_token, field="payment_method_token")
    money = _to_money(amount, currency)
    if money.amount <= 0:
        raise PaymentValidationError("amount must be greater than zero.", field="amount")
    if money.amount >= MAX_AMOUNT:
        # Money holds 34 digits; the amount columns hold fewer. Refuse here, clearly,
        # rather than let the database refuse the INSERT.
        raise PaymentValidationError(
            f"amount must be less than {MAX_AMOUNT:,} {money.currency}.", field="amount"
        )
    alias = provider or paydesk_settings.DEFAULT_PROVIDER
    backend = get_payment_provider(alias)
    if not backend.supports_currency(money.currency):
        raise PaymentValidationError(
            f"Provider {alias!r} does not accept {money.currency}; choose another provider "
            "or currency.",
            code="currency_not_supported",
            field="currency",
        )
    # The provider's wire rules (Stripe: KWD amounts end in 0, ISK whole units) refuse
    # now, before a payment exists, rather than when it is sent.
    check_wire_amount(backend, money)
    if not capture and not backend.supports(Capability.CAPTURE):
        raise NotSupported(
            f"Provider {alias!r} cannot authorize now and capture later; use capture=True."
        )
    if payment_method is not None:
        _check_method(payment_method, user=user, provider=alias)

    scoped_key = None
    if idempotency_key:
        owner = getattr(user, "pk", None) or "anonymous"
        scoped_key = f"{owner}:{idempotency_key}"
        existing = Payment.objects.filter(idempotency_key=scoped_key).first()
        if existing is not None:
            return _same_request(existing, money=money, provider=alias, target=content_object)

    fee = processing_fee(money)
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                user=user if getattr(user, "pk", None) else None,
                provider=alias,
                payment_method=payment_method,
                payment_method_token=payment_method_token,
                amount=money.amount,
                currency=money.currency,
                processing_fee=fee.amount,
                reference=reference,
                content_type=(
                    ContentType.objects.get_for_model(content_object) if content_object else None
                ),
                object_id=str(content_object.pk) if content_object else "",
                description=description,
                capture_method="automatic" if capture else "manual",
                return_url=return_url,
                customer_email=customer_email or getattr(user, "email", "") or "",
                metadata=dict(metadata or {}),
                idempotency_key=scoped_key,
            )
            ledger.append(
                payment,
                kind=LedgerKind.PAYMENT_CREATED,
                key="created",
                amount=money.amount,
                message=description,
            )
            ledger.refresh(payment)
            signals.send_on_commit(
                signals.payment_created,
                sender=Payment,
                payment=payment,
                provider=alias,
                result=None,
            )
    except IntegrityError:
        # Two submissions with the same idempotency key raced; the other one won.
        existing = Payment.objects.filter(idempotency_key=scoped_key).first()
        if scoped_key is None or existing is None:
            raise
        return _same_request(existing, money=money, provider=alias, target=content_object)
    return payment


def _same_request(
    existing: Payment, *, money: Money, provider: str, target: models.Model | None
) -> Payment:
    same_target = target is None or (
        existing.content_type_id == ContentType.objects.get_for_model(target).pk
        and existing.object_id == str(target.pk)
    )
    if existing.money != money or existing.provider != provider or not same_target:
        raise PaymentValidationError(
            "This idempotency key was already used for a different payment "
            f"({existing.money} via {existing.provider}); "
            "use a new key for a new payment.",
            code="idempotency_key_reused",
            field="idempotency_key",
        )
    return existing


def _provider_key(payment: Payment, operation: str, attempt: int | None = None) -> str:
    # Derived only from our own ids, so any retry of the same step sends the same key.
    suffix = f":attempt-{attempt}" if attempt is not None else ""
    return f"paydesk:{payment.pk}{suffix}:{operation}"


def _customer(payment: Payment) -> Customer:
    email = payment.customer_email or getattr(payment.user, "email", "") or ""
    name = ""
    if payment.user is not None:
        name = payment.user.get_full_name() if hasattr(payment.user, "get_full_name") else ""
    return Customer(email=email, name=name)


def _finish(step: ProviderStep, provider: PaymentProvider) -> Payment:
    """Step 2 and 3: call the provider, then record what it said."""
    try:
        with metrics.observe_provider_call(step.alias, step.method):
            result: PaymentResult = getattr(provider, step.method)(step.request)
    except ProviderError as exc:
        return record_failure(step, exc)
    return record_outcome(step, result)


def record_outcome(step: ProviderStep, result: PaymentResult) -> Payment:
    """Step 3 after an answer: append it, refresh the fold, release the lease; commit."""
    with transaction.atomic():
        locked = locked_payment(step.payment)
        old = locked.status
        ledger.release_lease(locked)
        ledger.record_result(locked, result, attempt=step.attempt, source=step.source)
        ledger.announce(locked, old, result=result)
    return locked


def record_failure(step: ProviderStep, exc: ProviderError) -> Payment:
    """Step 3 after a ``ProviderError``: record it, then return the payment or re-raise.

    A decline of the payment itself is an outcome (recorded as failed, returned); a decline
    of a capture or cancel leaves the payment as it was, so the caller must hear of it; an
    unknown outcome (retryable error) is re-raised for the caller to retry or sync.
    """
    exc.provider = exc.provider or step.alias
    _record_error(step.payment, exc, attempt=step.attempt, source=step.source)
    if exc.retryable or exc.http_status != 402 or step.source not in ("process", "confirm"):
        raise exc
    return Payment.objects.get(pk=step.payment.pk)


def _record_error(payment: Payment, exc: ProviderError, *, attempt: int, source: str) -> None:
    with transaction.atomic():
        locked = locked_payment(payment)
        old = locked.status
        ledger.release_lease(locked)
        if exc.retryable:
            # Outcome unknown: the provider may have acted. Keep the status; sync settles it.
            ledger.append(
                locked,
                kind=LedgerKind.NOTE,
                key=f"attempt-{attempt}:{source}:unknown:{locked.ledger.count()}",
                attempt=attempt,
                provider_data=exc.as_dict(),
                message=f"{source}: {exc.message} (outcome unknown; call sync_payment)",
            )
            locked.save()
            return
        if source in ("process", "confirm"):
            result = PaymentResult(
                status=ProviderStatus.FAILED,
                failure=ProviderFailure(
                    code=exc.code, message=exc.message, provider_code=exc.provider_code or ""
                ),
                raw=exc.as_dict(),
            )
            ledger.record_result(locked, result, attempt=attempt, source=source)
            ledger.announce(locked, old, result=None)
        else:
            ledger.append(
                locked,
                kind=LedgerKind.NOTE,
                key=f"attempt-{attempt}:{source}:refused:{locked.ledger.count()}",
                attempt=attempt,
                provider_data=exc.as_dict(),
                message=f"{source} refused: {exc.message}",
            )
            locked.save()


def process_payment(
    *,
    payment: Payment | str,
    payment_method_token: str | None = None,
    return_url: str | None = None,
    fraud_context: Mapping[str, Any] | None = None,
) -> Payment:
    """Send a pending payment to its provider.

    Returns the payment: ``completed``/``authorized`` on success, ``requires_action`` with
    ``payment.next_action`` when the customer must act (redirect or 3-D Secure client
    secret), ``failed`` with ``failure_code`` when the provider refused it.
    Raises ``PaymentInProgress`` if another request is already processing it.

    When ``PAYDESK["FRAUD"]`` has rules, they judge the attempt first (``fraud_context``:
    ``ip_address``, ``email``, ``card_fingerprint``, ``card_country``, ``ip_country``,
    ``billing_country``; see ``paydesk.services.fraud``). A held attempt is returned still
    ``pending`` and unsent (``payment.fraud_assessment.review_status == "pending"``); a
    blocked one is recorded as failed and ``FraudBlocked`` is raised; an attempt already
    held raises ``PaymentUnderReview``.
    """
    step = prepare_process(
        payment=payment,
        payment_method_token=payment_method_token,
        return_url=return_url,
        fraud_context=fraud_context,
    )
    if isinstance(step, Payment):
        return step  # held for a fraud review
    return _finish(step, get_payment_provider(step.alias))


def prepare_process(
    *,
    payment: Payment | str,
    payment_method_token: str | None = None,
    return_url: str | None = None,
    fraud_context: Mapping[str, Any] | None = None,
) -> ProviderStep | Payment:
    """Step 1 of ``process_payment``: check, screen, take the lease, record the submission;
    commit. The payment itself when the fraud rules held it; ``FraudBlocked`` after commit
    when they blocked it."""
    with transaction.atomic():
        locked = locked_payment(payment)
        if locked.status == PaymentStatus.PROCESSING or not ledger.lease_expired(locked):
            raise PaymentInProgress(
                f"Payment {locked.pk} is already being processed; read its status instead of "
                "submitting it again."
            )
        if locked.status not in PROCESSABLE:
            raise InvalidTransition(
                f"Payment {locked.pk} is {locked.status}; only pending payments can be "
                "processed (use retry_payment after a failure)."
            )
        if payment_method_token is not None:
            check_token(payment_method_token, field="payment_method_token")
            locked.payment_method_token = payment_method_token
        if return_url is not None:
            locked.return_url = return_url
        attempt = locked.attempt
        # The fraud rules judge the attempt before anything is sent; a held or blocked one
        # is recorded (and committed) here and never reaches the provider.
        verdict = fraud.screen_payment(locked, context=fraud_context)
        if not verdict.allowed:
            locked.save()  # keeps the token and return URL for when staff approve it
        else:
            ledger.take_lease(locked, "process")
            ledger.append(
                locked,
                kind=LedgerKind.SUBMITTED,
                key=f"attempt-{attempt}:submitted",
                attempt=attempt,
                message="sent to the provider",
            )
            ledger.refresh(locked)
            saved = locked.payment_method if not locked.payment_method_token else None
            token = locked.payment_method_token or (saved.provider_token if saved else "")
            request = PaymentRequest(
                payment_id=locked.pk,
                amount=locked.money,
                idempotency_key=_provider_key(locked, "create", attempt),
                attempt=attempt,
                capture=locked.capture_method == "automatic",
                payment_method_token=token,
                customer=_customer(locked),
                description=locked.description,
                return_url=locked.return_url,
                metadata={"paydesk_payment_id": locked.pk, "reference": locked.reference},
                customer_ref=str((saved.metadata or {}).get("customer_ref", "")) if saved else "",
            )
    if verdict.decision == "block":
        raise fraud.blocked_error(locked, verdict)
    if not verdict.allowed:
        return locked
    return ProviderStep(locked, locked.provider, "create_payment", "process", request, attempt)


def confirm_payment(*, payment: Payment | str, params: Mapping[str, str] | None = None) -> Payment:
    """Ask the provider for the outcome after the customer's action (3-D Secure, redirect)."""
    step = prepare_confirm(payment=payment, params=params)
    if isinstance(step, Payment):
        return step
    return _finish(step, get_payment_provider(step.alias))


def prepare_confirm(
    *, payment: Payment | str, params: Mapping[str, str] | None = None
) -> ProviderStep | Payment:
    """Step 1 of ``confirm_payment``; the payment itself when there is nothing to ask."""
    with transaction.atomic():
        locked = locked_payment(payment)
        if locked.status not in (PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING):
            if locked.status in (PaymentStatus.COMPLETED, PaymentStatus.AUTHORIZED):
                return locked  # already confirmed (a webhook got there first)
            raise InvalidTransition(
                f"Payment {locked.pk} is {locked.status}; there is nothing to confirm."
            )
        ledger.take_lease(locked, "confirm")
        locked.save()
        attempt = locked.attempt
        request = ConfirmRequest(
            payment_id=locked.pk,
            provider_payment_id=locked.provider_payment_id,
            amount=locked.money,
            idempotency_key=_provider_key(locked, "confirm", attempt),
            params=dict(params or {}),
        )
    return ProviderStep(locked, locked.provider, "confirm_payment", "confirm", request, attempt)


def capture_payment(
    *, payment: Payment | str, amount: Money | Decimal | str | None = None
) -> Payment:
    """Capture an authorized payment, in full or (if the provider allows) in part."""
    step = prepare_capture(payment=payment, amount=amount)
    return _finish(step, get_payment_provider(step.alias))


def prepare_capture(
    *, payment: Payment | str, amount: Money | Decimal | str | None = None
) -> ProviderStep:
    """Step 1 of ``capture_payment``: check the amount, take the lease; commit."""
    with transaction.atomic():
        locked = locked_payment(payment)
        provider = get_payment_provider(locked.provider)
        if not provider.supports(Capability.CAPTURE):
            raise NotSupported(f"Provider {locked.provider!r} does not support manual capture.")
        if locked.status not in CAPTURABLE:
            raise InvalidTransition(
                f"Payment {locked.pk} is {locked.status}; only authorized payments can be captured."
            )
        capturable = locked.authorized_amount - locked.captured_amount
        money = (
            _to_money(amount, locked.currency)
            if amount is not None
            else Money(capturable, locked.currency)
        )
        if money.amount <= 0 or money.amount > capturable:
            raise PaymentValidationError(
                f"Capture amount must be between 0 and {Money(capturable, locked.currency)} "
                "(more than zero, at most what is still authorized).",
                field="amount",
            )
        check_wire_amount(provider, money)
        if money.amount < capturable and not provider.supports(Capability.PARTIAL_CAPTURE):
            raise NotSupported(f"Provider {locked.provider!r} cannot capture part of a payment.")
        ledger.take_lease(locked, "capture")
        locked.save()
        attempt = locked.attempt
        request = CaptureRequest(
            payment_id=locked.pk,
            provider_payment_id=locked.provider_payment_id,
            amount=money,
            idempotency_key=_provider_key(locked, "capture"),
        )
    return ProviderStep(locked, locked.provider, "capture_payment", "capture", request, attempt)


def cancel_payment(*, payment: Payment | str, reason: str = "") -> Payment:
    """Cancel a payment that has not been captured (voids an authorization)."""
    step = prepare_cancel(payment=payment, reason=reason)
    if isinstance(step, Payment):
        return step
    return _finish(step, get_payment_provider(step.alias))


def prepare_cancel(*, payment: Payment | str, reason: str = "") -> ProviderStep | Payment:
    """Step 1 of ``cancel_payment``; the cancelled payment itself if it never reached the
    provider (nothing to void remotely)."""
    with transaction.atomic():
        locked = locked_payment(payment)
        if locked.status not in CANCELLABLE:
            raise InvalidTransition(
                f"Payment {locked.pk} is {locked.status}; only pending, requires_action or "
                "authorized payments can be cancelled (refund a completed one instead)."
            )
        if not locked.provider_payment_id:
            # Never reached the provider: nothing to void remotely.
            old = locked.status
            ledger.append(
                locked,
                kind=LedgerKind.CANCELLATION,
                key="cancellation:local",
                message=reason or "cancelled before submission",
            )
            ledger.refresh(locked)
            ledger.announce(locked, old)
            return locked
        provider = get_payment_provider(locked.provider)
        if not provider.supports(Capability.CANCEL):
            raise NotSupported(f"Provider {locked.provider!r} does not support cancellation.")
        ledger.take_lease(locked, "cancel")
        locked.save()
        attempt = locked.attempt
        request = CancelRequest(
            payment_id=locked.pk,
            provider_payment_id=locked.provider_payment_id,
            idempotency_key=_provider_key(locked, "cancel"),
            reason=reason,
        )
    return ProviderStep(locked, locked.provider, "cancel_payment", "cancel", request, attempt)


def retry_payment(
    *,
    payment: Payment | str,
    payment_method: PaymentMethod | None = None,
    payment_method_token: str | None = None,
    process: bool = True,
) -> Payment:
    """Start a new attempt for a failed payment, optionally with another payment method."""
    locked = start_attempt(
        payment=payment, payment_method=payment_method, payment_method_token=payment_method_token
    )
    if process:
        return process_payment(payment=locked)
    return locked


def start_attempt(
    *,
    payment: Payment | str,
    payment_method: PaymentMethod | None = None,
    payment_method_token: str | None = None,
) -> Payment:
    """The database part of ``retry_payment``: a new attempt, pending, not yet sent."""
    with transaction.atomic():
        locked = locked_payment(payment)
        if locked.status not in RETRYABLE:
            raise InvalidTransition(
                f"Payment {locked.pk} is {locked.status}; only failed payments can be retried."
            )
        if payment_method is not None:
            _check_method(payment_method, user=locked.user, provider=locked.provider)
            locked.payment_method = payment_method
            locked.payment_method_token = ""
        if payment_method_token is not None:
            check_token(payment_method_token, field="payment_method_token")
            locked.payment_method_token = payment_method_token
        locked.attempt += 1
        locked.failure_code = ""
        locked.failure_message = ""
        locked.provider_payment_id = ""
        ledger.append(
            locked,
            kind=LedgerKind.ATTEMPT_STARTED,
            key=f"attempt-{locked.attempt}:started",
            attempt=locked.attempt,
            message="retry",
        )
        ledger.refresh(locked)
    return locked


def sync_payment(*, payment: Payment | str) -> Payment:
    """Pull the payment's status from its provider and record anything new."""
    step = prepare_sync(payment=payment)
    if isinstance(step, Payment):
        return step
    provider = get_payment_provider(step.alias)
    return record_sync(step, provider.get_payment_status(step.request))


def prepare_sync(*, payment: Payment | str) -> ProviderStep | Payment:
    """What ``sync_payment`` asks (no lock, no lease: a status read changes nothing at the
    provider); the payment itself when it was never submitted."""
    current = ledger.get_payment(payment)
    provider = get_payment_provider(current.provider)
    if not provider.supports(Capability.SYNC):
        raise NotSupported(f"Provider {current.provider!r} cannot report a payment's status.")
    if current.status == PaymentStatus.PENDING:
        return current  # never submitted: the provider knows nothing yet
    attempt = current.attempt
    request = StatusRequest(
        payment_id=current.pk,
        provider_payment_id=current.provider_payment_id,
        idempotency_key=_provider_key(current, "create", attempt),
        amount=current.money,
    )
    return ProviderStep(current, current.provider, "get_payment_status", "sync", request, attempt)


def record_sync(step: ProviderStep, result: PaymentResult) -> Payment:
    """Step 3 of ``sync_payment``: record what the provider reports, if anything is new."""
    attempt = step.attempt
    with transaction.atomic():
        locked = locked_payment(step.payment)
        old = locked.status
        if result.status == ProviderStatus.NOT_FOUND:
            if locked.status == PaymentStatus.PROCESSING and ledger.lease_expired(locked):
                # The submission never reached the provider and nobody is still waiting for it.
                result = PaymentResult(
                    status=ProviderStatus.FAILED,
                    failure=ProviderFailure(
                        code="provider_unavailable",
                        message="The provider never received this payment; retry it.",
                    ),
                )
            else:
                return locked
        ledger.record_result(locked, result, attempt=attempt, source="sync")
        ledger.announce(locked, old, result=result)
    return locked
