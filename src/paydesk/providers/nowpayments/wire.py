"""NOWPayments' wire format: bodies out, answers in, statuses onto paydesk's vocabulary.

This module owns one decision: how a NOWPayments JSON document becomes a paydesk result, and
how paydesk's amounts become NOWPayments JSON, without a float anywhere.

* Outbound, ``price_amount`` is the payment's fiat amount as a JSON *number* written from
  the ``Decimal``'s own digits (``19.99``, never ``19.989999999999998``): :func:`dumps`.
* Inbound, every JSON number is read as its exact text (:func:`loads`), and the amount
  fields (``pay_amount``, ``actually_paid``, ``outcome_amount``, ...) are kept as decimal
  *strings* in ``raw`` (stored in the ledger's ``provider_data``), so crypto amounts such
  as ``0.00000123`` keep every digit.

Status mapping (:data:`STATUS_MAP`), documented in ``docs/providers/nowpayments.md``:

==================  ====================  =================================================
NOWPayments         paydesk               notes
==================  ====================  =================================================
waiting             requires_action       no funds yet: the customer must pay (next action
                                          ``crypto_transfer``; address etc. in ``raw``)
confirming          processing            funds seen on chain
confirmed           processing            enough confirmations
sending             processing            being sent to the merchant's wallet
partially_paid      processing            + a ledger note with ``actually_paid``
finished            captured              the fiat price is the captured amount
failed              failed                code ``card_declined`` (paydesk's generic decline),
                                          provider_code ``failed``
refunded            cancelled             + a ledger note: funds went back to the customer
expired             cancelled             no funds within the payment's window
cancelled           cancelled             a merchant-cancelled partially paid payment
(anything else)     processing            + a ledger note naming the unknown status
==================  ====================  =================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ...exceptions import MoneyError
from ...money import Money, is_supported_currency
from ...types import NextAction, PaymentResult, ProviderFailure, ProviderStatus
from .._http import JsonReply

__all__ = [
    "AMOUNT_FIELDS",
    "LIVE_BASE_URL",
    "NOTIFIER_IPS",
    "SANDBOX_BASE_URL",
    "STATUS_MAP",
    "Call",
    "dumps",
    "event_id",
    "loads",
    "normalize",
    "result_from_payment",
]

LIVE_BASE_URL = "https://api.nowpayments.io/v1/"
SANDBOX_BASE_URL = "https://api-sandbox.nowpayments.io/v1/"

#: The IPN senders NOWPayments' help center lists; the default webhook IP allowlist.
NOTIFIER_IPS = ("51.89.194.21", "51.75.77.69", "138.201.172.58", "65.21.158.36")

#: Fields holding amounts; kept as exact decimal strings in ``raw``.
AMOUNT_FIELDS = frozenset(
    {
        "price_amount",
        "pay_amount",
        "actually_paid",
        "actually_paid_at_fiat",
        "outcome_amount",
        "amount_received",
        "min_amount",
        "fiat_equivalent",
        "amount_from",
        "estimated_amount",
    }
)

STATUS_MAP: dict[str, ProviderStatus] = {
    "waiting": ProviderStatus.REQUIRES_ACTION,
    "confirming": ProviderStatus.PROCESSING,
    "confirmed": ProviderStatus.PROCESSING,
    "sending": ProviderStatus.PROCESSING,
    "partially_paid": ProviderStatus.PROCESSING,
    "finished": ProviderStatus.CAPTURED,
    "failed": ProviderStatus.FAILED,
    "refunded": ProviderStatus.CANCELLED,
    "expired": ProviderStatus.CANCELLED,
    "cancelled": ProviderStatus.CANCELLED,
}

#: The next action of a direct (non-invoice) payment: show ``raw["pay_address"]``,
#: ``raw["pay_amount"]``, ``raw["pay_currency"]``, ``raw["network"]`` and, for memo/tag
#: coins, ``raw["payin_extra_id"]`` to the customer.
CRYPTO_TRANSFER = "crypto_transfer"


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call an operation needs; the provider's driver sends it."""

    method: str
    path: str  # relative to the base URL, e.g. "payment/123"
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. the JWT for the list


#: NOWPayments' answer to a call, whatever its HTTP status (``data``: the parsed JSON, numbers
#: as exact strings, or ``None``).
Reply = JsonReply


# -- JSON ---------------------------------------------------------------------------------------


def _encode(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send the non-finite amount {value}")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("NOWPayments bodies never carry floats; pass a Decimal")
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{_encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def dumps(value: Any) -> bytes:
    """Compact JSON in which a ``Decimal`` is a JSON number written with its own digits."""
    return _encode(value).encode("utf-8")


def loads(content: bytes | str) -> Any:
    """Parse JSON, every non-integer number kept as its exact source text (a ``str``)."""
    return json.loads(content, parse_float=str)


def _amount_text(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    return value


def normalize(data: Any) -> Any:
    """A JSON-safe copy of ``data`` with every amount field as a decimal string."""
    if isinstance(data, Mapping):
        return {
            str(k): (_amount_text(v) if k in AMOUNT_FIELDS else normalize(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [normalize(v) for v in data]
    return data


def decimal(value: Any) -> Decimal | None:
    """An amount from NOWPayments (number text, int or string) as a ``Decimal``; never float."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, float):  # pragma: no cover - loads() never produces floats
        raise TypeError("amounts are parsed as text, not floats")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def event_id(payload: Mapping[str, Any]) -> str:
    """``"{payment_id}:{payment_status}:{updated_at}"``: one delivery per status change.

    NOWPayments sends no event id; a repeated IPN for the same state of the same payment
    is the same event (deduplicated), while each status change is a new one.
    """
    return (
        f"{payload.get('payment_id')}:{payload.get('payment_status')}:{payload.get('updated_at')}"
    )


# -- results --------------------------------------------------------------------------------------


def _price(payload: Mapping[str, Any]) -> Money | None:
    amount = decimal(payload.get("price_amount"))
    currency = str(payload.get("price_currency") or "").upper()
    if amount is None or not is_supported_currency(currency):
        return None
    try:
        return Money(amount, currency)
    except MoneyError:
        return None  # more decimals than ISO allows: let the service use the payment's own


def _crypto(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return "" if value is None else str(value)


def result_from_payment(payload: Mapping[str, Any]) -> PaymentResult:
    """A paydesk result for a NOWPayments payment object (API answer or IPN body)."""
    raw = normalize(payload)
    status_name = str(payload.get("payment_status") or "")
    status = STATUS_MAP.get(status_name, ProviderStatus.PROCESSING)
    ppid = str(payload.get("payment_id") or "")
    pay_currency = _crypto(payload, "pay_currency").upper()
    note = ""
    if status_name not in STATUS_MAP:
        note = (
            f"NOWPayments reported the unknown status {status_name!r}; paydesk keeps the "
            "payment processing. Check the payment in the NOWPayments dashboard."
        )
    if status == ProviderStatus.REQUIRES_ACTION:
        return PaymentResult(
            status=status,
            provider_payment_id=ppid,
            next_action=NextAction(type=CRYPTO_TRANSFER),
            raw=raw,
        )
    if status == ProviderStatus.CAPTURED:
        price = _price(payload)
        return PaymentResult(
            status=status,
            provider_payment_id=ppid,
            amount_authorized=price,
            amount_captured=price,
            raw=raw,
        )
    if status == ProviderStatus.FAILED:
        return PaymentResult(
            status=status,
            provider_payment_id=ppid,
            failure=ProviderFailure(
                code="card_declined",
                message=(
                    "NOWPayments marked the crypto payment failed. Ask the customer to pay "
                    "again (retry the payment); any funds that arrived are returned from the "
                    "NOWPayments dashboard."
                ),
                provider_code="failed",
            ),
            raw=raw,
        )
    if status_name == "partially_paid":
        note = (
            f"NOWPayments: partially paid, {_crypto(payload, 'actually_paid') or '0'} "
            f"{pay_currency} received of {_crypto(payload, 'pay_amount')} {pay_currency} "
            f"asked (price {_crypto(payload, 'price_amount')} "
            f"{_crypto(payload, 'price_currency').upper()}). Ask the customer to send the rest, "
            "or return the funds from the NOWPayments dashboard."
        )
    elif status_name == "refunded":
        note = (
            "NOWPayments refunded this payment: the funds went back to the customer and "
            "nothing was settled to you. If paydesk shows the payment completed, the refund "
            "was made outside paydesk; check the NOWPayments dashboard."
        )
    return PaymentResult(status=status, provider_payment_id=ppid, raw=raw, note=note)


def result_from_invoice(payload: Mapping[str, Any]) -> PaymentResult:
    """An invoice: the customer picks a coin and pays on NOWPayments' hosted page.

    ``provider_payment_id`` stays empty: NOWPayments creates the *payment* (whose id paydesk
    then records) only once the customer chooses a coin; its IPN carries ``order_id``.
    """
    raw = normalize(payload)
    raw["invoice_id"] = str(payload.get("id") or "")
    return PaymentResult(
        status=ProviderStatus.REQUIRES_ACTION,
        next_action=NextAction(type="redirect", redirect_url=str(payload.get("invoice_url") or "")),
        raw=raw,
    )
