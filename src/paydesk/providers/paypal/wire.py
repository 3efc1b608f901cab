"""PayPal's wire format: request bodies out, paydesk's frozen dataclasses in.

This module owns one decision: how PayPal's Orders v2 / Payments v2 JSON maps onto paydesk's
vocabulary. Everything here is pure (no I/O, no settings), so the sync and async halves of
the adapter share it, and the tests can check it against PayPal's documented shapes.

The rules that matter most:

* Amounts are decimal strings in PayPal's own exponents (``PAYPAL_RULES``: HUF, JPY and
  TWD take no decimals), produced by ``paydesk.money`` so a fractional yen is refused
  before any call, never rounded.
* An order's ``COMPLETED`` status does not mean money moved: the capture's (or the
  authorization's) own status decides. A capture ``COMPLETED`` is captured money,
  ``PENDING`` is processing, ``DECLINED``/``FAILED`` is a failed payment.
* The ledger keeps a summary of each answer (ids, statuses, amounts, ``debug_id``), never
  the payer's name, e-mail or address that PayPal also returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from ...exceptions import ProviderError, error_for_code
from ...money import PAYPAL_RULES, Money, sum_money
from ...types import (
    NextAction,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundResult,
)

__all__ = [
    "API_BASES",
    "VAULT_FREE_TOKENS",
    "Call",
    "amount_body",
    "approval_link",
    "brief",
    "completion_request_id",
    "error_from_response",
    "money_of",
    "order_body",
    "order_result",
    "refund_result",
]

API_BASES = {
    "sandbox": "https://api-m.sandbox.paypal.com",
    "live": "https://api-m.paypal.com",
}

#: ``payment_method_token`` values that mean "send the buyer to PayPal to approve"; any other
#: token is a PayPal vault id (``payment_source.paypal.vault_id``), charged without a redirect.
VAULT_FREE_TOKENS = frozenset({"", "paypal"})

# Capture statuses that mean the money was taken (a refund later does not undo the capture).
_CAPTURED = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
_FAILED_CAPTURE = frozenset({"DECLINED", "FAILED"})

# PayPal issue codes (``details[].issue``) -> paydesk's taxonomy.
_ISSUE_CODES: dict[str, str] = {
    "INSTRUMENT_DECLINED": "card_declined",
    "TRANSACTION_REFUSED": "card_declined",
    "PAYER_CANNOT_PAY": "card_declined",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING": "card_declined",
    "CARD_EXPIRED": "expired_card",
    "PAYER_ACTION_REQUIRED": "authentication_required",
    # Our request is wrong for the resource's state or data: retrying it unchanged fails again.
    "ORDER_NOT_APPROVED": "invalid_request",
    "ORDER_ALREADY_CAPTURED": "invalid_request",
    "ORDER_ALREADY_AUTHORIZED": "invalid_request",
    "ORDER_ALREADY_COMPLETED": "invalid_request",
    "ORDER_EXPIRED": "invalid_request",
    "DUPLICATE_INVOICE_ID": "invalid_request",
    "AUTHORIZATION_ALREADY_CAPTURED": "invalid_request",
    "AUTHORIZATION_VOIDED": "invalid_request",
    "AUTHORIZATION_EXPIRED": "invalid_request",
    "PREVIOUSLY_VOIDED": "invalid_request",
    "CANNOT_BE_VOIDED": "invalid_request",
    "MAX_CAPTURE_AMOUNT_EXCEEDED": "invalid_request",
    "MAX_CAPTURE_COUNT_EXCEEDED": "invalid_request",
    "CAPTURE_FULLY_REFUNDED": "invalid_request",
    "REFUND_AMOUNT_EXCEEDED": "invalid_request",
    "REFUND_TIME_LIMIT_EXCEEDED": "invalid_request",
    "DECIMAL_PRECISION": "invalid_request",
    "CURRENCY_NOT_SUPPORTED": "invalid_request",
    "CURRENCY_MISMATCH": "invalid_request",
    "AMOUNT_MISMATCH": "invalid_request",
    "INVALID_PARAMETER_VALUE": "invalid_request",
    "INVALID_RESOURCE_ID": "invalid_request",
    "MISSING_REQUIRED_PARAMETER": "invalid_request",
    # The first request with this PayPal-Request-Id is still running: ask again shortly.
    "PREVIOUS_REQUEST_IN_PROGRESS": "provider_unavailable",
}

_NEXT_STEP = {
    "card_declined": "ask the buyer to choose another funding source or payment method",
    "expired_card": "ask the buyer to update the card in their PayPal wallet or pay another way",
    "authentication_required": "send the buyer back to PayPal to complete the requested action",
    "invalid_request": "check the request (amount, currency, order state) before retrying",
    "processing_error": "PayPal could not process it; try again later or contact PayPal with "
    "the debug_id",
    "provider_unavailable": "retry with the same PayPal-Request-Id (paydesk does so)",
    "provider_authentication": "check CLIENT_ID / CLIENT_SECRET and MODE (sandbox credentials "
    "do not work live, and the reverse)",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call an operation needs; the sync and async drivers both execute it."""

    method: str
    path: str
    body: Any = None
    #: ``PayPal-Request-Id``: set on every mutating call, so a retry is the same request.
    request_id: str = ""


# -- amounts ----------------------------------------------------------------------------------


def amount_body(money: Money) -> dict[str, str]:
    """``{"currency_code", "value"}`` with PayPal's decimals; ``AmountPrecisionError`` if not."""
    return {"currency_code": money.currency, "value": PAYPAL_RULES.to_decimal_string(money)}


def money_of(amount: Any) -> Money | None:
    """Money from a PayPal ``{"currency_code", "value"}`` object (``None`` when absent)."""
    if not isinstance(amount, Mapping) or "value" not in amount:
        return None
    value = str(amount["value"]).strip()
    # A reversal reports a negative amount; paydesk records the size of the movement.
    if value.startswith("-"):
        value = value[1:]
    return PAYPAL_RULES.from_decimal_string(value, str(amount["currency_code"]))


# -- requests ---------------------------------------------------------------------------------


def order_body(
    request: PaymentRequest,
    *,
    return_url: str,
    cancel_url: str,
    brand_name: str = "",
    shipping_preference: str = "NO_SHIPPING",
    locale: str = "",
) -> dict[str, Any]:
    """The ``POST /v2/checkout/orders`` body for ``request``."""
    unit: dict[str, Any] = {
        "reference_id": request.payment_id[:256],
        "custom_id": request.payment_id[:127],
        "amount": amount_body(request.amount),
    }
    if request.description:
        unit["description"] = request.description[:127]
    experience: dict[str, Any] = {
        "return_url": return_url,
        "cancel_url": cancel_url,
        "user_action": "PAY_NOW",
        "shipping_preference": shipping_preference,
    }
    if brand_name:
        experience["brand_name"] = brand_name[:127]
    if locale:
        experience["locale"] = locale
    paypal: dict[str, Any] = {"experience_context": experience}
    token = request.payment_method_token
    if token not in VAULT_FREE_TOKENS:
        paypal["vault_id"] = token
    if request.customer.email:
        paypal["email_address"] = request.customer.email[:254]
    return {
        "intent": "CAPTURE" if request.capture else "AUTHORIZE",
        "purchase_units": [unit],
        "payment_source": {"paypal": paypal},
    }


def completion_request_id(order_id: str, action: str) -> str:
    """``PayPal-Request-Id`` for capturing/authorizing an approved order.

    Derived from the order id alone, so the return view (``confirm_payment``), the
    ``CHECKOUT.ORDER.APPROVED`` webhook and any retry of either send the same id and PayPal
    completes the order once.
    """
    return f"paydesk:{order_id}:{action}"


# -- responses --------------------------------------------------------------------------------


def _first_unit(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = order.get("purchase_units") or []
    return units[0] if units and isinstance(units[0], Mapping) else {}


def payments_of(order: Mapping[str, Any]) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    payments = _first_unit(order).get("payments") or {}
    return payments if isinstance(payments, Mapping) else {}


def approval_link(resource: Mapping[str, Any]) -> str:
    """The link the buyer must visit: ``payer-action`` (current flow) or ``approve``."""
    links = {
        link.get("rel"): link.get("href", "")
        for link in resource.get("links") or []
        if isinstance(link, Mapping)
    }
    return str(links.get("payer-action") or links.get("approve") or "")


def brief(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.get("id", ""), "status": item.get("status", "")}
    if isinstance(item.get("amount"), Mapping):
        out["amount"] = dict(item["amount"])
    details = item.get("status_details")
    if isinstance(details, Mapping) and details.get("reason"):
        out["reason"] = details["reason"]
    return out


def summary(order: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of an order: ids, statuses and amounts, no payer data."""
    unit = _first_unit(order)
    payments = payments_of(order)
    out: dict[str, Any] = {
        "order_id": order.get("id", ""),
        "status": order.get("status", ""),
        "intent": order.get("intent", ""),
    }
    if isinstance(unit.get("amount"), Mapping):
        out["amount"] = {k: unit["amount"][k] for k in ("currency_code", "value")}
    for kind in ("authorizations", "captures", "refunds"):
        items = payments.get(kind) or []
        if items:
            out[kind] = [brief(item) for item in items if isinstance(item, Mapping)]
    return out


def _failure(status: str, reason: str = "") -> ProviderFailure:
    code = "card_declined" if status in ("DECLINED", "DENIED") else "processing_error"
    message = (
        "PayPal declined the payment: ask the buyer to pay with another funding source."
        if code == "card_declined"
        else "PayPal could not complete the payment; the buyer may try again."
    )
    if reason:
        message = f"{message} ({reason})"
    return ProviderFailure(code=code, message=message, provider_code=reason or status)


def capture_result(
    capture: Mapping[str, Any],
    *,
    order_id: str,
    authorized: Money | None = None,
    raw: Mapping[str, Any] | None = None,
) -> PaymentResult:
    """One capture's outcome (PayPal's capture status decides)."""
    status = str(capture.get("status", ""))
    details = capture.get("status_details") or {}
    reason = str(details.get("reason", "")) if isinstance(details, Mapping) else ""
    raw = dict(raw) if raw is not None else {"order_id": order_id, "capture": brief(capture)}
    amount = money_of(capture.get("amount"))
    if status in _CAPTURED:
        return PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id=order_id,
            amount_authorized=authorized,
            amount_captured=amount,
            raw=raw,
        )
    if status in _FAILED_CAPTURE:
        return PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id=order_id,
            failure=_failure(status, reason),
            raw=raw,
        )
    return PaymentResult(status=ProviderStatus.PROCESSING, provider_payment_id=order_id, raw=raw)


def authorization_result(
    authorization: Mapping[str, Any], *, order_id: str, raw: Mapping[str, Any] | None = None
) -> PaymentResult:
    status = str(authorization.get("status", ""))
    amount = money_of(authorization.get("amount"))
    raw = (
        dict(raw)
        if raw is not None
        else {"order_id": order_id, "authorization": brief(authorization)}
    )
    if status in ("CREATED", "PARTIALLY_CAPTURED"):
        return PaymentResult(
            status=ProviderStatus.AUTHORIZED,
            provider_payment_id=order_id,
            amount_authorized=amount,
            raw=raw,
        )
    if status == "CAPTURED":
        return PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id=order_id,
            amount_authorized=amount,
            amount_captured=amount,
            raw=raw,
        )
    if status == "VOIDED":
        return PaymentResult(status=ProviderStatus.CANCELLED, provider_payment_id=order_id, raw=raw)
    if status == "DENIED":
        return PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id=order_id,
            failure=_failure("DENIED"),
            raw=raw,
        )
    return PaymentResult(status=ProviderStatus.PROCESSING, provider_payment_id=order_id, raw=raw)


def order_result(order: Mapping[str, Any]) -> PaymentResult:
    """What an order says about the payment, decided by its captures and authorizations."""
    order_id = str(order.get("id", ""))
    raw = summary(order)
    payments = payments_of(order)
    captures = [c for c in payments.get("captures") or [] if isinstance(c, Mapping)]
    authorizations = [a for a in payments.get("authorizations") or [] if isinstance(a, Mapping)]
    unit_amount = money_of(_first_unit(order).get("amount"))
    authorized = money_of(authorizations[0].get("amount")) if authorizations else unit_amount
    if captures:
        done = [c for c in captures if c.get("status") in _CAPTURED]
        if done:
            amounts = [m for m in (money_of(c.get("amount")) for c in done) if m is not None]
            captured = sum_money(amounts, amounts[0].currency) if amounts else None
            return PaymentResult(
                status=ProviderStatus.CAPTURED,
                provider_payment_id=order_id,
                amount_authorized=authorized,
                amount_captured=captured,
                raw=raw,
            )
        if any(c.get("status") not in _FAILED_CAPTURE for c in captures):
            return PaymentResult(
                status=ProviderStatus.PROCESSING, provider_payment_id=order_id, raw=raw
            )
        return capture_result(captures[-1], order_id=order_id, raw=raw)
    if authorizations:
        return authorization_result(authorizations[-1], order_id=order_id, raw=raw)
    status = order.get("status")
    if status in ("CREATED", "PAYER_ACTION_REQUIRED"):
        link = approval_link(order)
        return PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            provider_payment_id=order_id,
            next_action=NextAction(type="redirect", redirect_url=link) if link else None,
            raw=raw,
        )
    if status == "VOIDED":
        return PaymentResult(status=ProviderStatus.CANCELLED, provider_payment_id=order_id, raw=raw)
    # APPROVED / SAVED (the buyer is done, paydesk has not completed it yet) and a COMPLETED
    # order without payment details: no money has been seen to move.
    return PaymentResult(status=ProviderStatus.PROCESSING, provider_payment_id=order_id, raw=raw)


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    status = str(refund.get("status", ""))
    raw = brief(refund)
    if status == "COMPLETED":
        return RefundResult(status="completed", provider_refund_id=str(refund["id"]), raw=raw)
    if status == "PENDING":
        return RefundResult(status="pending", provider_refund_id=str(refund["id"]), raw=raw)
    details = refund.get("status_details") or {}
    reason = str(details.get("reason", "")) if isinstance(details, Mapping) else ""
    return RefundResult(
        status="failed",
        provider_refund_id=str(refund.get("id", "")),
        failure=ProviderFailure(
            code="processing_error",
            message=f"PayPal did not complete the refund ({status or 'no status'}"
            + (f": {reason})" if reason else ")"),
            provider_code=reason or status,
        ),
        raw=raw,
    )


# -- errors -----------------------------------------------------------------------------------


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return {}
    return body if isinstance(body, Mapping) else {}


def error_from_response(response: httpx.Response, *, provider: str) -> ProviderError:
    """The paydesk error for a non-2xx PayPal answer (``request_id`` is PayPal's debug_id)."""
    status = response.status_code
    body = _json(response)
    name = str(body.get("name") or body.get("error") or "")
    details = body.get("details") or []
    first = details[0] if details and isinstance(details[0], Mapping) else {}
    issue = str(first.get("issue", ""))
    description = str(
        first.get("description")
        or body.get("message")
        or body.get("error_description")
        or response.reason_phrase
    )
    debug_id = str(body.get("debug_id") or response.headers.get("PayPal-Debug-Id") or "") or None
    provider_code = issue or name or str(status)
    if status in (401, 403):
        code = "provider_authentication"
    elif status == 429 or status >= 500:
        code = "provider_unavailable"
    elif issue in _ISSUE_CODES:
        code = _ISSUE_CODES[issue]
    elif status == 422:
        code = "processing_error"
    else:
        code = "invalid_request"
    if status == 429:
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            description = f"{description} (Retry-After: {retry_after} s)"
    message = f"PayPal {status} {provider_code}: {description.rstrip('.')}. {_NEXT_STEP[code]}."
    if debug_id:
        message = f"{message} (debug_id {debug_id})"
    return error_for_code(
        code,
        message,
        provider=provider,
        provider_code=provider_code,
        request_id=debug_id,
    )


def transport_error(exc: httpx.HTTPError, *, provider: str, what: str) -> ProviderError:
    """A timeout or broken connection: the outcome is unknown, the call may be retried."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed to connect"
    return error_for_code(
        "provider_unavailable",
        f"PayPal {what} {kind} ({type(exc).__name__}); the outcome is unknown. "
        f"{_NEXT_STEP['provider_unavailable']}.",
        provider=provider,
        provider_code=type(exc).__name__,
    )


def retry_after_seconds(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After", "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(Decimal(value))
    return None


_CAPTURE_PATH = re.compile(r"/v2/payments/captures/([A-Za-z0-9-]+)")


def capture_id_from_links(resource: Mapping[str, Any]) -> str:
    """The capture a refund belongs to, from its ``up`` link (never followed as a URL)."""
    for link in resource.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "up":
            match = _CAPTURE_PATH.search(str(link.get("href", "")))
            if match:
                return match.group(1)
    return ""
