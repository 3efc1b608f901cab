"""Shared field definitions, so every amount column has the same precision."""

from __future__ import annotations

import secrets
import string
from typing import Any

from django.db import models

# 19 digits with 4 places holds every ISO 4217 currency (the largest exponent is 4) up to
# 10^15 major units, beyond any single payment.
AMOUNT_DIGITS = 19
AMOUNT_PLACES = 4


def AmountField(**kwargs: Any) -> models.DecimalField:
    kwargs.setdefault("max_digits", AMOUNT_DIGITS)
    kwargs.setdefault("decimal_places", AMOUNT_PLACES)
    return models.DecimalField(**kwargs)


def CurrencyField(**kwargs: Any) -> models.CharField:
    kwargs.setdefault("max_length", 3)
    return models.CharField(**kwargs)


_ID_ALPHABET = string.ascii_letters + string.digits


def new_public_id(prefix: str) -> str:
    """A non-guessable public identifier such as ``pay_3kF9...`` (over 130 bits of randomness).

    Letters and digits only after the prefix: ids are pasted into URLs, shells and support
    tickets, and Django's admin treats ``_XX`` in a URL as an escape.
    """
    return f"{prefix}_{''.join(secrets.choice(_ID_ALPHABET) for _ in range(22))}"


def payment_id() -> str:
    return new_public_id("pay")


def refund_id() -> str:
    return new_public_id("re")


def method_id() -> str:
    return new_public_id("pm")
