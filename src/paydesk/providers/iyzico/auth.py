"""iyzico's two HMAC schemes: the ``IYZWSv2`` request header and the response ``signature``.

This module owns one decision: the exact bytes each scheme signs. Both are pure functions of
their inputs, so the test suite checks them against the vectors in the shared protocol notes
and against the official ``iyzipay`` SDK's own code (``iyzipay/iyzipay_resource.py``).

``IYZWSv2`` (request authentication)::

    signature = hex(HMAC-SHA256(secretKey, randomKey + path_without_query + body))
    Authorization: IYZWSv2 base64("apiKey:<apiKey>&randomKey:<randomKey>&signature:<signature>")
    x-iyzi-rnd: <randomKey>

``body`` is exactly the bytes sent. The SDK sends ``json.dumps(request)`` and, for calls
without a body (``GET /payment/test``, the reporting API), ``json.dumps(None)`` = ``null``,
which it both signs and sends; paydesk does the same.

Response ``signature`` (response authentication)::

    signature = hex(HMAC-SHA256(secretKey, ":".join(fields)))

with the fields named per endpoint (see ``CF_RETRIEVE_FIELDS`` ...) and prices written
without trailing zeros (the SDK's ``strip_zero`` turns ``"1.0"`` into ``"1"``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any

__all__ = [
    "API_PAYMENT_FIELDS",
    "CF_INITIALIZE_FIELDS",
    "CF_RETRIEVE_FIELDS",
    "EMPTY_BODY",
    "RANDOM_KEY_SIZE",
    "authorization_header",
    "price_forms",
    "random_key",
    "request_signature",
    "response_signature",
    "response_signature_matches",
    "strip_zero",
]

#: The SDK's ``RANDOM_STRING_SIZE``.
RANDOM_KEY_SIZE = 8
_ALPHABET = string.ascii_letters + string.digits
#: What the SDK signs and sends for a call without a request body (``json.dumps(None)``).
EMPTY_BODY = b"null"

# Response signature field order, per endpoint (protocol notes 3.5).
CF_INITIALIZE_FIELDS = ("conversationId", "token")
CF_RETRIEVE_FIELDS = (
    "paymentStatus",
    "paymentId",
    "currency",
    "basketId",
    "conversationId",
    "paidPrice",
    "price",
    "token",
)
#: ``/payment/auth``, ``/payment/detail`` (and pre/post-auth).
API_PAYMENT_FIELDS = ("paymentId", "currency", "basketId", "conversationId", "paidPrice", "price")
_PRICE_FIELDS = frozenset({"paidPrice", "price"})


def random_key(size: int = RANDOM_KEY_SIZE) -> str:
    """A fresh ``x-iyzi-rnd`` value: ``size`` characters from ``[A-Za-z0-9]``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(size))


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def request_signature(secret_key: str, random: str, path: str, body: bytes) -> str:
    """The hex HMAC inside an ``IYZWSv2`` header, over ``random + path + body``."""
    message = random.encode("utf-8") + _path_only(path).encode("utf-8") + body
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def authorization_header(api_key: str, secret_key: str, random: str, path: str, body: bytes) -> str:
    """The ``Authorization`` header value for one request (``IYZWSv2 <base64>``)."""
    signature = request_signature(secret_key, random, path, body)
    token = f"apiKey:{api_key}&randomKey:{random}&signature:{signature}"
    return "IYZWSv2 " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def strip_zero(value: str) -> str:
    """The SDK's ``strip_zero``: ``"1.0"`` -> ``"1"``; anything else unchanged."""
    return value.replace(".0", "") if value.endswith(".0") else value


def _plain(value: Decimal) -> str:
    """A decimal without trailing zeros, never in exponent form (``20.50`` -> ``20.5``)."""
    text = format(value.normalize(), "f")
    return text


def price_forms(value: Any) -> set[str]:
    """Every way iyzico's signer may have written this price.

    The SDK signs ``strip_zero(str(price))`` of the parsed JSON value; iyzico's server
    writes prices without trailing zeros. For ordinary amounts both agree; the raw text is
    kept as a candidate too, so a price sent as ``"20.50"`` still verifies if that is what
    was signed. Parsing never goes through a float.
    """
    if value is None:
        return {""}
    if isinstance(value, bool):
        return {str(value)}
    text = value if isinstance(value, str) else str(value)
    forms = {strip_zero(text)}
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return forms
    if number.is_finite():
        forms.add(_plain(number))
    return forms


def response_signature(secret_key: str, values: Iterable[str]) -> str:
    """``hex(HMAC-SHA256(secretKey, ":".join(values)))``: the SDK's
    ``calculate_hmac_sha256_signature``."""
    message = ":".join(values).encode("utf-8")
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _field_forms(data: Mapping[str, Any], name: str) -> set[str]:
    value = data.get(name)
    if name in _PRICE_FIELDS:
        return price_forms(value)
    return {"" if value is None else str(value)}


def response_signature_matches(
    secret_key: str, data: Mapping[str, Any], fields: Sequence[str]
) -> bool:
    """Whether ``data["signature"]`` signs ``fields`` of ``data`` with ``secret_key``."""
    given = data.get("signature")
    if not isinstance(given, str) or not given:
        return False
    candidates = product(*(sorted(_field_forms(data, name)) for name in fields))
    return any(
        hmac.compare_digest(response_signature(secret_key, values), given.lower())
        for values in candidates
    )
