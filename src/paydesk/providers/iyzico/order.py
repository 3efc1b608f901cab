"""The buyer, addresses and basket iyzico needs with every payment.

This module owns one decision: where that data comes from. iyzico refuses a payment
without a buyer (``id``, ``name``, ``surname``, ``email``, ``identityNumber``,
``registrationAddress``, ``city``, ``country``, ``ip``), a billing address and basket items
whose prices add up to ``price`` exactly. paydesk knows only the amount and the
``Customer``, so:

* by default it sends one ``VIRTUAL`` basket item for the whole amount and a buyer built
  from the ``Customer``, filling what it does not know from ``OPTIONS["BUYER_DEFAULTS"]``
  (placeholders otherwise: iyzico's fraud checks work better with real data);
* ``OPTIONS["BUYER_DATA_HOOK"]`` names ``callable(payment_request) -> dict`` in the host
  project returning any of ``buyer`` (merged over the default buyer), ``billingAddress``,
  ``shippingAddress`` and ``basketItems`` (replacing the defaults). A basket with a
  ``PHYSICAL`` item needs a shipping address; without one the billing address is used.

Basket item prices may be ``Decimal``, ``str`` or ``Money``; they are sent as major-unit
strings with the currency's ISO decimals, and must add up to the payment amount.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.module_loading import import_string

from ...exceptions import ConfigurationError, MoneyError, error_for_code
from ...money import ISO_RULES, Money
from ...types import PaymentRequest

__all__ = ["PLACEHOLDERS", "build_order", "load_hook"]

#: Used when neither the Customer, the hook nor BUYER_DEFAULTS says. "11111111111" is the
#: identity number commonly sent for buyers without a Turkish ID (unverified convention).
PLACEHOLDERS: dict[str, str] = {
    "identityNumber": "11111111111",
    "city": "Istanbul",
    "country": "Turkey",
    "address": "Not provided",
    "ip": "127.0.0.1",
    "name": "Customer",
    "surname": "Customer",
    "email": "customer@example.invalid",
}
ITEM_TYPES = frozenset({"PHYSICAL", "VIRTUAL"})


def load_hook(path: object) -> Callable[[PaymentRequest], Mapping[str, Any]] | None:
    if not path:
        return None
    if callable(path):
        return path
    if not isinstance(path, str):
        raise ConfigurationError(
            f'iyzico OPTIONS["BUYER_DATA_HOOK"] must be a dotted path, got {path!r}.'
        )
    try:
        hook = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f'iyzico OPTIONS["BUYER_DATA_HOOK"] = {path!r} cannot be imported: {exc}'
        ) from exc
    if not callable(hook):
        raise ConfigurationError(f'iyzico OPTIONS["BUYER_DATA_HOOK"] = {path!r} is not callable.')
    return hook


def _split_name(name: str) -> tuple[str, str]:
    parts = name.split()
    if len(parts) >= 2:
        return " ".join(parts[:-1]), parts[-1]
    if parts:
        return parts[0], parts[0]
    return "", ""


def _price(value: Any, currency: str, alias: str) -> str:
    try:
        money = value if isinstance(value, Money) else Money(Decimal(str(value)), currency)
        if money.currency != currency:
            raise MoneyError(f"{money} is not in {currency}")
        return ISO_RULES.to_decimal_string(money)
    except (InvalidOperation, MoneyError, ValueError) as exc:
        raise error_for_code(
            "invalid_request",
            f"BUYER_DATA_HOOK gave the basket item price {value!r}, which is not an amount "
            f"in {currency}: {exc}",
            provider=alias,
        ) from exc


def build_order(
    request: PaymentRequest,
    *,
    alias: str,
    defaults: Mapping[str, Any],
    hook: Callable[[PaymentRequest], Mapping[str, Any]] | None,
    item_type: str,
    category: str,
) -> dict[str, Any]:
    """``buyer``, ``billingAddress``, ``basketItems`` (and ``shippingAddress`` when needed)."""
    base = {**PLACEHOLDERS, **{k: str(v) for k, v in dict(defaults or {}).items() if v}}
    customer = request.customer
    first, last = _split_name(customer.name)
    name = first or base["name"]
    surname = last or base["surname"]
    buyer = {
        "id": request.metadata.get("user_ref") or request.payment_id,
        "name": name,
        "surname": surname,
        "email": customer.email or base["email"],
        "identityNumber": base["identityNumber"],
        "registrationAddress": base.get("registrationAddress") or base["address"],
        "city": base["city"],
        "country": customer.country or base["country"],
        "ip": customer.ip_address or base["ip"],
    }
    if customer.phone:
        buyer["gsmNumber"] = customer.phone
    address = {
        "contactName": f"{name} {surname}",
        "city": buyer["city"],
        "country": buyer["country"],
        "address": buyer["registrationAddress"],
    }
    currency = request.amount.currency
    items: list[dict[str, Any]] = [
        {
            "id": request.payment_id,
            "name": (request.description or f"Payment {request.payment_id}")[:255],
            "category1": category,
            "itemType": item_type,
            "price": request.amount.amount,
        }
    ]
    order: dict[str, Any] = {"buyer": buyer, "billingAddress": address}
    extra = dict(hook(request) or {}) if hook else {}
    unknown = set(extra) - {"buyer", "billingAddress", "shippingAddress", "basketItems"}
    if unknown:
        raise error_for_code(
            "invalid_request",
            f"BUYER_DATA_HOOK returned unknown keys {sorted(unknown)}; it may return buyer, "
            "billingAddress, shippingAddress and basketItems.",
            provider=alias,
        )
    order["buyer"] = {**buyer, **dict(extra.get("buyer") or {})}
    if extra.get("billingAddress"):
        order["billingAddress"] = dict(extra["billingAddress"])
    if extra.get("shippingAddress"):
        order["shippingAddress"] = dict(extra["shippingAddress"])
    if extra.get("basketItems"):
        items = [dict(item) for item in extra["basketItems"]]

    total = Decimal(0)
    for item in items:
        missing = [
            key for key in ("id", "name", "category1", "itemType", "price") if not item.get(key)
        ]
        if missing:
            raise error_for_code(
                "invalid_request",
                f"A basket item lacks {', '.join(missing)}; iyzico requires id, name, "
                "category1, itemType and a price above zero for every item.",
                provider=alias,
            )
        if item["itemType"] not in ITEM_TYPES:
            raise error_for_code(
                "invalid_request",
                f"Basket item {item['id']!r} has itemType {item['itemType']!r}; use PHYSICAL "
                "or VIRTUAL.",
                provider=alias,
            )
        item["id"] = str(item["id"])
        item["price"] = _price(item["price"], currency, alias)
        if Decimal(item["price"]) <= 0:
            raise error_for_code(
                "invalid_request",
                f"Basket item {item['id']!r} costs {item['price']}; iyzico refuses items "
                "that cost nothing (leave them out).",
                provider=alias,
            )
        total += Decimal(item["price"])
    if total != request.amount.amount:
        raise error_for_code(
            "invalid_request",
            f"The basket items add up to {total} {currency} but the payment is "
            f"{request.amount}; iyzico requires price to equal the sum of the basket item "
            "prices. Fix BUYER_DATA_HOOK.",
            provider=alias,
        )
    order["basketItems"] = items
    if "shippingAddress" not in order and any(i["itemType"] == "PHYSICAL" for i in items):
        order["shippingAddress"] = dict(order["billingAddress"])
    return order
