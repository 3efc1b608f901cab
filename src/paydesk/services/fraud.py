"""Fraud screening services: screen an attempt, decide held payments, record provider signals.

This module owns one decision: what happens to a payment attempt the fraud rules judged,
and how that is recorded. ``process_payment`` calls ``screen_payment`` inside its first
transaction, with the payment row locked and before anything is sent:

* no rules configured (the default): nothing is read or written, the attempt goes on;
* ``allow``: a ``fraud_check`` ledger entry, a ``FraudCheck`` row and the payment's
  ``FraudAssessment`` are written, and the attempt is sent in the same transaction;
* ``review``: the same records, the assessment's ``review_status`` becomes ``pending`` and
  the payment stays ``pending``, not sent, until staff call ``approve_review`` (which sends
  it) or ``reject_review`` (which fails it); ``payment_flagged`` is sent;
* ``block``: the same records, then the payment fails with ``failure_code="fraud_blocked"``
  and ``process_payment`` raises ``FraudBlocked``; ``payment_blocked`` and
  ``payment_failed`` are sent.

Velocity counts are exact under concurrency: before the rules count recent attempts,
screening locks the ``FraudLock`` rows its keys (user, email, IP, card) hash to, in a fixed
order, and the new ``FraudCheck`` row is inserted before those locks are released at
commit. Two attempts by the same user are therefore counted one after the other, never
both against the same old count. The locks are held for the screening queries only, never
across the provider call.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from .. import signals
from ..conf import paydesk_settings
from ..exceptions import (
    ConfigurationError,
    FraudBlocked,
    InvalidTransition,
    PaymentUnderReview,
    PaymentValidationError,
)
from ..fraud import provider_signals
from ..fraud.base import NOT_SCREENED, FraudContext, Verdict
from ..fraud.pipeline import evaluate, load_rules
from ..models import (
    BlocklistEntry,
    BlocklistKind,
    FraudAssessment,
    FraudCheck,
    FraudDecision,
    FraudLock,
    FraudRuleHit,
    Payment,
    ReviewStatus,
)
from ..models.fraud import normalize_blocklist_value
from ..money import Money
from ..security.audit import AuditLogger
from ..states import LedgerKind, PaymentStatus
from ..types import PaymentResult, ProviderFailure, ProviderStatus
from . import ledger

__all__ = [
    "LOCK_STRIPES",
    "add_to_blocklist",
    "approve_review",
    "blocked_error",
    "build_context",
    "context_from_request",
    "record_provider_signals",
    "reject_review",
    "review_queue",
    "screen_payment",
]

#: How many ``FraudLock`` rows the velocity keys hash onto. Two unrelated keys sharing a row
#: only wait for each other's screening queries (milliseconds); the table never grows.
LOCK_STRIPES = 1024

#: What a customer is told about a blocked or rejected payment: nothing about the rules.
DECLINED_MESSAGE = "The payment was declined. Use another payment method or contact the shop."

_CONTEXT_FIELDS = (
    "email",
    "ip_address",
    "card_fingerprint",
    "card_country",
    "ip_country",
    "billing_country",
)


# -- context ------------------------------------------------------------------------------


def _country(value: Any) -> str:
    text = str(value or "").strip().upper()
    return text if len(text) == 2 and text.isalpha() else ""


def _ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value).strip())) if value else None
    except ValueError:
        return None


def _resolve_ip_country(ip: str | None) -> str:
    path = paydesk_settings.FRAUD.get("IP_COUNTRY_RESOLVER")
    if not ip or not path:
        return ""
    try:
        resolver = import_string(path) if isinstance(path, str) else path
    except ImportError as exc:
        raise ConfigurationError(
            f'PAYDESK["FRAUD"]["IP_COUNTRY_RESOLVER"] = {path!r} cannot be imported ({exc}).'
        ) from exc
    return _country(resolver(ip))


def context_from_request(request: Any) -> dict[str, Any]:
    """``fraud_context`` for ``process_payment`` from a request: the client's IP address,
    honouring ``PAYDESK["SECURITY"]["TRUSTED_PROXIES"]``."""
    from ..security.ipfilter import client_ip

    ip = client_ip(request)
    return {"ip_address": str(ip)} if ip else {}


def build_context(payment: Payment, given: Mapping[str, Any] | None = None) -> FraudContext:
    """What the rules will see for ``payment``'s current attempt.

    ``given`` (``process_payment(fraud_context=...)``) wins; then the payment's
    ``metadata`` under the same keys; then what paydesk knows (the customer's email, the
    saved method's fingerprint and ``metadata["country"]``). The IP's country comes from
    ``PAYDESK["FRAUD"]["IP_COUNTRY_RESOLVER"]`` when the caller did not give it.
    """
    given = dict(given or {})
    unknown_keys = {k: v for k, v in given.items() if k not in _CONTEXT_FIELDS}
    metadata = payment.metadata if isinstance(payment.metadata, Mapping) else {}

    def pick(name: str) -> Any:
        return given.get(name) or metadata.get(name) or ""

    method = None
    if payment.payment_method_id and not payment.payment_method_token:
        method = payment.payment_method
    method_meta = (method.metadata or {}) if method is not None else {}
    ip = _ip(pick("ip_address"))
    email = str(pick("email") or payment.customer_email or "").strip().lower()
    fingerprint = str(pick("card_fingerprint") or (method.fingerprint if method else ""))
    ip_country = _country(pick("ip_country")) or _resolve_ip_country(ip)
    return FraudContext(
        payment=payment,
        amount=Money(payment.amount, payment.currency),
        attempt=payment.attempt,
        user_id=payment.user_id,
        email=email,
        ip_address=ip,
        card_fingerprint=fingerprint[:128],
        card_country=_country(pick("card_country") or method_meta.get("country")),
        ip_country=ip_country,
        billing_country=_country(pick("billing_country")),
        extra=unknown_keys,
    )


# -- screening ----------------------------------------------------------------------------


def _lock(keys: Iterable[str]) -> None:
    """Lock the ``FraudLock`` rows ``keys`` hash to, in ascending order (no deadlocks)."""
    stripes = sorted({zlib.crc32(key.encode()) % LOCK_STRIPES for key in keys})
    if not stripes:
        return
    # Create missing rows first (a no-op for existing ones), in the same order as the lock.
    FraudLock.objects.bulk_create([FraudLock(stripe=s) for s in stripes], ignore_conflicts=True)
    list(
        FraudLock.objects.select_for_update()
        .filter(stripe__in=stripes)
        .order_by("stripe")
        .values_list("stripe", flat=True)
    )


def _current_assessment(payment: Payment) -> FraudAssessment | None:
    return (
        FraudAssessment.objects.filter(payment=payment, attempt=payment.attempt)
        .exclude(review_status=ReviewStatus.NONE)
        .first()
    )


def screen_payment(payment: Payment, *, context: Mapping[str, Any] | None = None) -> Verdict:
    """Run the fraud rules on ``payment``'s current attempt and record the verdict.

    The caller holds the payment's row lock inside ``transaction.atomic`` (as
    ``process_payment`` does). Raises ``PaymentUnderReview`` if this attempt is already
    held. An attempt staff approved is not screened again. See the module docstring for
    what each decision records.
    """
    review = _current_assessment(payment)
    if review is not None and review.review_status == ReviewStatus.PENDING:
        raise PaymentUnderReview(
            f"Payment {payment.pk} is held for a fraud review; it is sent to the provider "
            "when a staff member approves it (or fails if they reject it)."
        )
    if review is not None and review.review_status == ReviewStatus.APPROVED:
        return NOT_SCREENED
    rules = load_rules()
    if not rules:
        return NOT_SCREENED
    ctx = build_context(payment, context)
    _lock(key for rule in rules for key in rule.lock_keys(ctx))
    ctx = dataclasses.replace(ctx, now=timezone.now())
    verdict = evaluate(rules, ctx)
    _record(payment, ctx, verdict)
    return verdict


def _record(payment: Payment, ctx: FraudContext, verdict: Verdict) -> None:
    now = ctx.now or timezone.now()
    attempt = payment.attempt
    check = FraudCheck.objects.create(
        payment=payment,
        attempt=attempt,
        decision=verdict.decision,
        score=verdict.score,
        amount=payment.amount,
        currency=payment.currency,
        user_id=ctx.user_id,
        email=ctx.email[:254],
        ip_address=ctx.ip_address,
        card_fingerprint=ctx.card_fingerprint,
        card_country=ctx.card_country,
        ip_country=ctx.ip_country,
        billing_country=ctx.billing_country,
        created_at=now,
    )
    if verdict.hits:
        FraudRuleHit.objects.bulk_create(
            FraudRuleHit(fraud_check=check, rule=hit.rule, score=hit.score, reason=hit.reason)
            for hit in verdict.hits
        )
    held = verdict.decision == FraudDecision.REVIEW
    assessment, _ = FraudAssessment.objects.update_or_create(
        payment=payment,
        defaults={
            "attempt": attempt,
            "decision": verdict.decision,
            "score": verdict.score,
            "reasons": verdict.reasons,
            "review_status": ReviewStatus.PENDING if held else ReviewStatus.NONE,
            "held_at": now if held else None,
            "reviewed_by": None,
            "reviewed_at": None,
            "review_note": "",
        },
    )
    ledger.append(
        payment,
        kind=LedgerKind.FRAUD_CHECK,
        key=f"attempt-{attempt}:fraud_check",
        attempt=attempt,
        provider_data={
            "decision": verdict.decision,
            "score": verdict.score,
            "reasons": verdict.reasons,
        },
        message=f"fraud screening: {verdict.decision} (score {verdict.score})",
    )
    common: dict[str, Any] = {
        "sender": Payment,
        "payment": payment,
        "provider": payment.provider,
        "result": None,
        "assessment": assessment,
        "score": verdict.score,
        "reasons": verdict.reasons,
    }
    if verdict.decision == FraudDecision.BLOCK:
        old = payment.status
        result = PaymentResult(
            status=ProviderStatus.FAILED,
            failure=ProviderFailure(
                code="fraud_blocked", message=DECLINED_MESSAGE, provider_code="paydesk_fraud"
            ),
            raw={"source": "paydesk_fraud", "score": verdict.score},
        )
        ledger.record_result(payment, result, attempt=attempt, source="fraud")
        ledger.announce(payment, old, result=None)
        signals.send_on_commit(signals.payment_blocked, **common)
    else:
        ledger.refresh(payment)
        if held:
            signals.send_on_commit(signals.payment_flagged, **common)


def blocked_error(payment: Payment, verdict: Verdict) -> FraudBlocked:
    """The exception ``process_payment`` raises for a blocked attempt."""
    return FraudBlocked(
        f"Payment {payment.pk} was declined by the shop's fraud checks and was not sent to "
        "the payment provider. Use another payment method or contact the shop.",
        payment_id=payment.pk,
        score=verdict.score,
        reasons=verdict.reasons,
    )


# -- staff review --------------------------------------------------------------------------


def review_queue() -> QuerySet[FraudAssessment]:
    """Payments held for review, oldest first (``assessment.payment`` is joined)."""
    return (
        FraudAssessment.objects.filter(
            review_status=ReviewStatus.PENDING, payment__status=PaymentStatus.PENDING
        )
        .select_related("payment")
        .order_by("held_at", "pk")
    )


def _who(user: Any) -> str:
    return str(user.get_username() if hasattr(user, "get_username") else user)


def _require_reviewer(user: Any, verb: str) -> None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        raise PaymentValidationError(
            f"To {verb} a held payment, pass the staff member who decides as user=...; "
            "review decisions are recorded against a person.",
            field="user",
        )


def _held(payment: Payment | str) -> tuple[Payment, FraudAssessment]:
    """Lock the payment and its assessment; refuse unless this attempt is held."""
    locked = ledger.locked_payment(payment)
    assessment = FraudAssessment.objects.select_for_update().filter(payment=locked).first()
    if (
        assessment is None
        or assessment.review_status != ReviewStatus.PENDING
        or assessment.attempt != locked.attempt
        or locked.status != PaymentStatus.PENDING
    ):
        state = assessment.review_status if assessment and assessment.review_status else "none"
        raise InvalidTransition(
            f"Payment {locked.pk} is {locked.status} and not held for a fraud review "
            f"(review: {state}); nothing was changed."
        )
    return locked, assessment


def _decide(assessment: FraudAssessment, status: str, user: Any, note: str) -> None:
    assessment.review_status = status
    assessment.reviewed_by = user
    assessment.reviewed_at = timezone.now()
    assessment.review_note = note
    assessment.save(
        update_fields=["review_status", "reviewed_by", "reviewed_at", "review_note", "updated_at"]
    )


def approve_review(
    *, payment: Payment | str, user: Any, note: str = "", process: bool = True
) -> Payment:
    """A staff member clears a held payment; by default it is then sent to the provider.

    The approval is committed before the provider call: if that call fails, the payment
    stays approved and ``process_payment`` sends it again without screening it again.
    """
    _require_reviewer(user, "approve")
    with transaction.atomic():
        locked, assessment = _held(payment)
        if locked.user_id is not None and locked.user_id == user.pk:
            raise PaymentValidationError(
                f"{_who(user)} is the customer of payment {locked.pk} and cannot approve it; "
                "ask another staff member.",
                code="four_eyes",
                field="user",
            )
        _decide(assessment, ReviewStatus.APPROVED, user, note)
        ledger.append(
            locked,
            kind=LedgerKind.FRAUD_REVIEW,
            key=f"attempt-{locked.attempt}:fraud_review",
            attempt=locked.attempt,
            provider_data={"review": "approved", "by": _who(user)},
            message=note or "approved after fraud review",
        )
        ledger.refresh(locked)
        AuditLogger().log(
            action="fraud_review_approved",
            obj=locked,
            actor=user,
            provider=locked.provider,
            amount=locked.money,
            details={"score": assessment.score, "reasons": assessment.reasons, "note": note},
        )
    if not process:
        return locked
    from .payments import process_payment

    return process_payment(payment=locked)


def reject_review(*, payment: Payment | str, user: Any, reason: str) -> Payment:
    """A staff member refuses a held payment: it fails with ``failure_code="fraud_rejected"``.

    ``reason`` is for staff (the assessment, the ledger, the audit log); the customer sees
    only that the payment was declined.
    """
    _require_reviewer(user, "reject")
    reason = (reason or "").strip()
    if not reason:
        raise PaymentValidationError(
            "Give a reason for rejecting the payment (staff only; the customer is not shown it).",
            field="reason",
        )
    with transaction.atomic():
        locked, assessment = _held(payment)
        _decide(assessment, ReviewStatus.REJECTED, user, reason)
        attempt = locked.attempt
        ledger.append(
            locked,
            kind=LedgerKind.FRAUD_REVIEW,
            key=f"attempt-{attempt}:fraud_review",
            attempt=attempt,
            provider_data={"review": "rejected", "by": _who(user)},
            message=reason,
        )
        old = locked.status
        result = PaymentResult(
            status=ProviderStatus.FAILED,
            failure=ProviderFailure(
                code="fraud_rejected", message=DECLINED_MESSAGE, provider_code="paydesk_review"
            ),
            raw={"source": "paydesk_review"},
        )
        ledger.record_result(locked, result, attempt=attempt, source="fraud_review")
        ledger.announce(locked, old, result=None)
        AuditLogger().log(
            action="fraud_review_rejected",
            obj=locked,
            actor=user,
            provider=locked.provider,
            amount=locked.money,
            details={"score": assessment.score, "reasons": assessment.reasons, "reason": reason},
        )
    return locked


# -- provider signals ----------------------------------------------------------------------


def record_provider_signals(payment: Payment, result: PaymentResult) -> None:
    """Keep what a provider said about fraud on the payment's assessment.

    Called by ``ledger.record_result`` for every provider result (API answer, webhook,
    sync), with the payment row locked; does nothing (and no query) when the result carries
    no fraud signal. Signals are stored by provider alias; a flag is never cleared by a
    later, quieter answer.
    """
    found = provider_signals.extract(result.raw)
    if found is None:
        return
    values, flagged = found
    assessment, _ = FraudAssessment.objects.get_or_create(
        payment=payment, defaults={"attempt": payment.attempt}
    )
    stored = dict(assessment.provider_signals or {})
    if stored.get(payment.provider) == values and (assessment.provider_flagged or not flagged):
        return
    stored[payment.provider] = values
    assessment.provider_signals = stored
    assessment.provider_flagged = assessment.provider_flagged or flagged
    assessment.save(update_fields=["provider_signals", "provider_flagged", "updated_at"])


# -- blocklist ----------------------------------------------------------------------------


def add_to_blocklist(
    *,
    kind: str,
    value: str,
    reason: str = "",
    user: Any = None,
    expires_at: Any = None,
) -> BlocklistEntry:
    """Block an email, email domain, IP network or card fingerprint (idempotent).

    An existing entry for the same value is reactivated with the new reason and expiry.
    """
    from django.core.exceptions import ValidationError

    if kind not in BlocklistKind.values:
        raise PaymentValidationError(
            f"kind must be one of {', '.join(BlocklistKind.values)}, not {kind!r}.", field="kind"
        )
    try:
        normalized = normalize_blocklist_value(kind, value)
    except ValidationError as exc:
        raise PaymentValidationError(" ".join(exc.messages), field="value") from exc
    if not normalized:
        raise PaymentValidationError("Give a value to block.", field="value")
    entry, _ = BlocklistEntry.objects.update_or_create(
        kind=kind,
        value=normalized,
        defaults={
            "reason": reason,
            "is_active": True,
            "expires_at": expires_at,
            "created_by": user if getattr(user, "pk", None) else None,
        },
    )
    AuditLogger().log(
        action="fraud_blocklist_added",
        object_type="blocklist_entry",
        object_id=str(entry.pk),
        actor=user,
        details={"kind": kind, "value": normalized, "reason": reason},
    )
    return entry
