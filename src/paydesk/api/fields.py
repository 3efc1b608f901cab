"""Serializer fields and bases shared by the API: exact amounts, currencies, metadata.

This module owns one decision: what the API accepts as input and how it writes amounts.

* Amounts are decimal **strings** in and out (``"19.99"``), never JSON numbers: a JSON float
  cannot hold 0.1 exactly, so ``19.99`` (a number) is refused with code
  ``float_not_allowed`` and ``1999`` (an integer) with ``invalid_amount``. Output has exactly
  the currency's ISO 4217 number of decimals (``"19.99"``, ``"500"`` for JPY).
* Serializers derived from :class:`StrictSerializer` refuse unknown fields (code
  ``unknown_field``), so a typo or a card number never passes silently.
* Metadata is a flat object of string keys to string values (Stripe's limits: 50 keys,
  keys up to 40 characters, values up to 500).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from ..models.fields import AMOUNT_DIGITS, AMOUNT_PLACES
from ..money import currency_exponent, is_supported_currency

__all__ = [
    "AmountField",
    "AmountOutField",
    "CurrencyField",
    "MetadataField",
    "StrictSerializer",
    "StringField",
    "format_amount",
]

#: What the amount columns hold before the decimal point (models.fields: 19 digits, 4 places).
MAX_WHOLE_DIGITS = AMOUNT_DIGITS - AMOUNT_PLACES
_DECIMAL = re.compile(r"^-?\d{1,20}(\.\d{1,20})?$")
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
#: Names that mean someone is about to send card data: refused with a pointer to tokenizing.
CARD_DATA_FIELDS = frozenset(
    {"number", "card_number", "cardnumber", "pan", "cvc", "cvv", "cvc2", "card", "exp"}
)
_CARD_HINT = (
    "Never send card data to this API: tokenize the card with the provider's SDK "
    "(Stripe.js, PayPal, ...) and send provider_token."
)


def format_amount(value: Decimal | None, currency: str) -> str | None:
    """``value`` with exactly ``currency``'s ISO 4217 number of decimals, as a string."""
    if value is None:
        return None
    try:
        exponent = currency_exponent(currency)
    except Exception:  # an unknown stored currency: show the stored value as is
        return f"{value:f}"
    return f"{value.quantize(Decimal(1).scaleb(-exponent)):f}"


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "pattern": r"^\d{1,20}(\.\d{1,20})?$",
        "example": "19.99",
        "description": "A decimal string, never a JSON number.",
    }
)
class AmountField(serializers.Field):
    """An input amount: a decimal string such as ``"19.99"``; numbers are refused."""

    default_error_messages = {
        "float_not_allowed": (
            'Send amounts as decimal strings such as "19.99", not JSON numbers: a JSON number '
            "is a float and cannot hold every amount exactly."
        ),
        "invalid_amount": 'Send amounts as decimal strings such as "19.99".',
        "not_positive": "The amount must be greater than zero.",
        "too_large": f"The amount is too large: at most {MAX_WHOLE_DIGITS} digits before the "
        "decimal point.",
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float):
            self.fail("float_not_allowed")
        if isinstance(data, bool) or not isinstance(data, str):
            self.fail("invalid_amount")
        text = data.strip()
        if not _DECIMAL.match(text):
            self.fail("invalid_amount")
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            self.fail("invalid_amount")
        if value <= 0:
            raise ValidationError(self.error_messages["not_positive"], code="invalid_amount")
        if value.adjusted() >= MAX_WHOLE_DIGITS:
            raise ValidationError(self.error_messages["too_large"], code="invalid_amount")
        return value

    def to_representation(self, value: Any) -> str:
        return f"{value:f}"


@extend_schema_field({"type": "string", "format": "decimal", "example": "19.99", "readOnly": True})
class AmountOutField(serializers.Field):
    """An output amount read from ``attr`` and formatted with the object's ``currency``."""

    def __init__(self, attr: str, **kwargs: Any) -> None:
        self.attr = attr
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, instance: Any) -> str | None:
        return format_amount(getattr(instance, self.attr), instance.currency)


@extend_schema_field({"type": "string", "pattern": "^[A-Z]{3}$", "example": "USD"})
class CurrencyField(serializers.CharField):
    """An ISO 4217 code, any case in, upper case out."""

    default_error_messages = {
        "unknown_currency": "Unknown currency {value!r}: use an ISO 4217 code such as USD.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data).upper()
        if not is_supported_currency(value):
            self.fail("unknown_currency", value=value)
        return value


class StringField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_LENGTH},
        "maxProperties": MAX_METADATA_KEYS,
        "example": {"order": "A-1001"},
    }
)
class MetadataField(serializers.DictField):
    """A flat ``{str: str}`` object for the caller's own references."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", StringField(max_length=MAX_METADATA_VALUE_LENGTH))
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, Mapping):
            if len(data) > MAX_METADATA_KEYS:
                raise ValidationError(
                    f"metadata holds at most {MAX_METADATA_KEYS} keys.", code="invalid"
                )
            for key in data:
                if (
                    not isinstance(key, str)
                    or not key
                    or len(key) > MAX_METADATA_KEY_LENGTH
                    or not key.isprintable()
                ):
                    raise ValidationError(
                        f"metadata keys are 1-{MAX_METADATA_KEY_LENGTH} printable characters.",
                        code="invalid",
                    )
        return dict(super().to_internal_value(data))


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not declare (code ``unknown_field``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [str(name) for name in data if name not in self.fields]
            if unknown:
                name = sorted(unknown)[0]
                if name.lower() in CARD_DATA_FIELDS:
                    message = _CARD_HINT
                else:
                    allowed = ", ".join(
                        sorted(n for n, f in self.fields.items() if not f.read_only)
                    )
                    message = f"Unknown field {name!r}; this endpoint accepts: {allowed}."
                raise ValidationError({name: [ErrorDetail(message, code="unknown_field")]})
        return super().to_internal_value(data)
