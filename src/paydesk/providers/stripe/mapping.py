"""Stripe's objects and errors in paydesk's vocabulary.

This module owns one decision: what each Stripe status, error body and decline code means
in paydesk's terms. Everything here is a pure function of plain dicts (a Stripe object's
``to_dict()``), so the mapping tables are tested without any HTTP at all.

PaymentIntent ``status`` -> ``ProviderStatus``:

========================  ===================================================================
``succeeded``             ``CAPTURED`` (``amount_received`` is what was captured)
``requires_capture``      ``AUTHORIZED`` (manual capture; ``amount_capturable`` is held)
``requires_action``       ``REQUIRES_ACTION``: ``NextAction("use_client_secret")`` for
                          Stripe.js, with ``redirect_to_url.url`` when Stripe gave one
``processing``            ``PROCESSING`` (asynchronous methods; a webhook settles it)
``requires_payment_method``  with ``last_payment_error``: ``FAILED``; without one (nothing
``requires_confirmation``    was tried yet): ``REQUIRES_ACTION`` with the client secret, so
                          the frontend collects a card with Stripe.js
``canceled``              ``CANCELLED``
========================  ===================================================================

Refund ``status``: ``succeeded`` -> ``completed``; ``pending`` / ``requires_action`` ->
``pending``; ``failed`` / ``canceled`` -> ``failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...exceptions import ProviderError, error_for_code
from ...money import STRIPE_RULES, Money
from ...types import NextAction, PaymentResult, ProviderFailure, ProviderStatus

__all__ = [
    "CANCELLATION_REASONS",
    "REFUND_REASONS",
    "failure_from_error",
    "intent_result",
    "money",
    "provider_error",
    "refund_failure",
    "refund_status",
    "taxonomy_code",
]

#: ``cancellation_reason`` values Stripe accepts on ``/cancel``; anything else is omitted.
CANCELLATION_REASONS = frozenset({"abandoned", "duplicate", "fraudulent", "requested_by_customer"})
#: ``reason`` values Stripe accepts on ``POST /v1/refunds``; anything else goes to metadata.
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

# Stripe's decline_code (or, for a few card errors, its code) -> paydesk's taxonomy.
_DECLINE_CODES = {
    "insufficient_funds": "insufficient_funds",
    "expired_card": "expired_card",
    "incorrect_cvc": "incorrect_cvc",
    "invalid_cvc": "incorrect_cvc",
    "incorrect_number": "incorrect_number",
    "invalid_number": "incorrect_number",
    "lost_card": "lost_card",
    "stolen_card": "stolen_card",
    "fraudulent": "fraudulent",
    "merchant_blacklist": "fraudulent",
    "processing_error": "processing_error",
}
_AUTHENTICATION_CODES = frozenset(
    {"authentication_required", "payment_intent_authentication_failure"}
)
# Fields of a PaymentIntent worth keeping in the ledger. The client secret is left out on
# purpose: it lets anyone holding it confirm the payment, so it lives only in next_action.
_KEPT_FIELDS = (
    "id",
    "object",
    "status",
    "amount",
    "amount_capturable",
    "amount_received",
    "currency",
    "capture_method",
    "latest_charge",
    "payment_method",
    "customer",
    "cancellation_reason",
    "livemode",
    "metadata",
)


def money(units: Any, currency: Any) -> Money:
    """A Stripe integer amount as exact ``Money`` (Stripe's zero/three-decimal rules)."""
    return STRIPE_RULES.from_minor_units(int(units), str(currency).upper())


def taxonomy_code(code: str | None, decline_code: str | None = None) -> str:
    """paydesk's code for a card error's ``code`` / ``decline_code`` (default card_declined)."""
    code, decline = code or "", decline_code or ""
    if code in _AUTHENTICATION_CODES or decline in _AUTHENTICATION_CODES:
        return "authentication_required"
    if decline in _DECLINE_CODES:
        return _DECLINE_CODES[decline]
    if code in _DECLINE_CODES:
        return _DECLINE_CODES[code]
    return "card_declined"


def failure_from_error(error: Mapping[str, Any] | None) -> ProviderFailure:
    """A ``ProviderFailure`` from a Stripe error object (``last_payment_error`` or a body)."""
    error = error or {}
    code = error.get("code") or ""
    decline = error.get("decline_code") or ""
    return ProviderFailure(
        code=taxonomy_code(code, decline),
        message=error.get("message") or "The payment was declined.",
        provider_code=decline or code or str(error.get("type") or ""),
    )


def _kept(intent: Mapping[str, Any]) -> dict[str, Any]:
    raw = {key: intent[key] for key in _KEPT_FIELDS if key in intent}
    error = intent.get("last_payment_error")
    if error:
        raw["last_payment_error"] = {
            key: error.get(key)
            for key in ("type", "code", "decline_code", "message")
            if error.get(key)
        }
    next_action = intent.get("next_action")
    if next_action:
        raw["next_action_type"] = next_action.get("type", "")
    return raw


def _next_action(intent: Mapping[str, Any]) -> NextAction:
    redirect = ((intent.get("next_action") or {}).get("redirect_to_url") or {}).get("url") or ""
    return NextAction(
        type="use_client_secret",
        client_secret=str(intent.get("client_secret") or ""),
        redirect_url=str(redirect),
    )


def intent_result(intent: Mapping[str, Any]) -> PaymentResult:
    """The ``PaymentResult`` a PaymentIntent (as a plain dict) stands for."""
    status = intent.get("status")
    ident = str(intent.get("id") or "")
    raw = _kept(intent)
    amount = money(intent["amount"], intent["currency"])
    if status == "succeeded":
        received = intent.get("amount_received")
        captured = money(received, intent["currency"]) if received else amount
        return PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id=ident,
            amount_authorized=amount,
            amount_captured=captured,
            raw=raw,
        )
    if status == "requires_capture":
        capturable = intent.get("amount_capturable")
        return PaymentResult(
            status=ProviderStatus.AUTHORIZED,
            provider_payment_id=ident,
            amount_authorized=money(capturable, intent["currency"]) if capturable else amount,
            raw=raw,
        )
    if status == "processing":
        return PaymentResult(status=ProviderStatus.PROCESSING, provider_payment_id=ident, raw=raw)
    if status == "canceled":
        return PaymentResult(status=ProviderStatus.CANCELLED, provider_payment_id=ident, raw=raw)
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id=ident,
            failure=failure_from_error(intent["last_payment_error"]),
            raw=raw,
        )
    if status in ("requires_action", "requires_payment_method", "requires_confirmation"):
        return PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            provider_payment_id=ident,
            next_action=_next_action(intent),
            raw=raw,
        )
    raise ValueError(f"Unknown Stripe PaymentIntent status {status!r} for {ident}.")


def refund_status(status: str | None) -> str:
    """paydesk's refund status for Stripe's refund ``status``."""
    if status == "succeeded":
        return "completed"
    if status in ("failed", "canceled"):
        return "failed"
    return "pending"  # pending, requires_action (and anything Stripe adds later)


_REFUND_FAILURES = {
    "insufficient_funds": "insufficient_funds",
    "expired_or_canceled_card": "expired_card",
    "lost_or_stolen_card": "lost_card",
}


def refund_failure(refund: Mapping[str, Any]) -> ProviderFailure | None:
    status = refund.get("status")
    if status not in ("failed", "canceled"):
        return None
    reason = str(refund.get("failure_reason") or "")
    if status == "canceled":
        return ProviderFailure(
            code="refund_canceled", message="The refund was canceled.", provider_code="canceled"
        )
    return ProviderFailure(
        code=_REFUND_FAILURES.get(reason, "refund_failed"),
        message=f"Stripe could not refund the payment ({reason or 'no reason given'}).",
        provider_code=reason,
    )


# -- errors ----------------------------------------------------------------------------------

_HINTS = {
    "provider_authentication": (
        " Check OPTIONS['SECRET_KEY'] of this provider (a restricted key needs write access to "
        "PaymentIntents, Refunds, Customers and PaymentMethods)."
    ),
    "rate_limited": " Stripe is rate limiting this account; retry later with the same key.",
    "provider_unavailable": (
        " The outcome is unknown; retry with the same idempotency key or sync the payment."
    ),
    "idempotency_error": (
        " The idempotency key was already used with different parameters; this is a bug in the "
        "caller, not a transient error."
    ),
}


def error_body(exc: Any) -> dict[str, Any]:
    """The ``error`` object of a ``stripe.StripeError``'s JSON body ({} when there is none)."""
    body = getattr(exc, "json_body", None)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return dict(body["error"])
    return {}


def provider_error(exc: Any, *, alias: str) -> ProviderError:
    """The paydesk ``ProviderError`` for a ``stripe.StripeError``."""
    import stripe

    error = error_body(exc)
    code = str(error.get("code") or getattr(exc, "code", None) or "")
    decline = str(error.get("decline_code") or "")
    status = getattr(exc, "http_status", None)
    retryable = False
    if isinstance(exc, stripe.CardError):
        taxonomy = taxonomy_code(code, decline)
    elif isinstance(exc, stripe.RateLimitError):
        taxonomy, retryable = "rate_limited", True
    elif isinstance(exc, stripe.APIConnectionError):
        taxonomy, retryable = "provider_unavailable", True
    elif isinstance(exc, stripe.IdempotencyError):
        taxonomy = "idempotency_error"
    elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        taxonomy = "provider_authentication"
    elif isinstance(exc, stripe.InvalidRequestError):
        taxonomy = "authentication_required" if code in _AUTHENTICATION_CODES else "invalid_request"
    elif status is None or status >= 500 or status == 409:
        # 5xx, 409 (a concurrent request with the same key) or no HTTP answer at all.
        taxonomy, retryable = "provider_unavailable", True
    else:
        taxonomy = "processing_error"
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    where = f" (HTTP {status})" if status else ""
    return error_for_code(
        taxonomy,
        f"Stripe{where}: {message}{_HINTS.get(taxonomy, '')}",
        provider=alias,
        provider_code=decline or code or str(error.get("type") or type(exc).__name__),
        request_id=getattr(exc, "request_id", None),
        retryable=retryable,
    )
