"""Webhook signature verification for every provider paydesk speaks to.

This module owns one decision: whether a webhook body was sent by the party holding the
secret (or, for PayPal, the private key behind a PayPal certificate). Each verifier is usable
on its own in a host project's view; none touches the database or the network except
PayPal's certificate download, which is injectable.

Rules every verifier here follows:

* Comparisons are constant-time (``hmac.compare_digest``), on bytes.
* Failures raise :class:`paydesk.exceptions.SignatureVerificationError` whose message says
  what to check next. No message ever contains the signature paydesk expected: that would
  turn an error page into a signing oracle.
* Secrets rotate: every constructor accepts one secret or several
  (``str | Sequence[str]``); a delivery is accepted if it verifies with ANY of them. Add the
  new secret next to the old one, switch the provider over, then drop the old one.
* The body is the raw request body, exactly as received (``request.body``). Never re-serialize
  parsed JSON before verifying: whitespace and key order are part of what was signed.

Verifiers: :class:`HMACVerifier` (any "HMAC of the body in a header" scheme),
:class:`StripeSignatureVerifier` and :class:`SandboxWebhookVerifier` (``t=...,v1=...``),
:class:`IyzicoWebhookVerifier` (``X-Iyz-Signature-V3``), :class:`NowPaymentsVerifier`
(``x-nowpayments-sig``) and :class:`PayPalWebhookVerifier` (certificate-based, offline).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import threading
import time
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from ..conf import paydesk_settings, resolve
from ..exceptions import ConfigurationError, SignatureVerificationError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "HMACVerifier",
    "IyzicoWebhookVerifier",
    "NowPaymentsVerifier",
    "PayPalWebhookVerifier",
    "SandboxWebhookVerifier",
    "StripeSignatureVerifier",
    "TimestampedSignatureVerifier",
    "get_header",
]

Body = bytes | bytearray | str
Headers = Mapping[str, str]

_DIGESTS: dict[str, Callable[[], Any]] = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


# --- shared helpers ------------------------------------------------------------------------


def get_header(headers: Headers, name: str) -> str | None:
    """``headers[name]``, matched case-insensitively; ``None`` when absent.

    Accepts ``request.headers`` (already case-insensitive), a plain dict of HTTP headers in
    any case, or ``request.META`` (where ``Stripe-Signature`` is ``HTTP_STRIPE_SIGNATURE``),
    so a view can pass whichever it has.
    """
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    meta_name = "HTTP_" + name.upper().replace("-", "_")
    for key, candidate in headers.items():
        if key.lower() == lowered or key == meta_name:
            return candidate
    return None


def _as_bytes(body: Body) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def _secrets(value: str | Sequence[str] | None, *, what: str) -> tuple[str, ...]:
    """Normalise one secret or several (rotation) to a non-empty tuple, refusing blanks."""
    items: tuple[Any, ...] = (value,) if isinstance(value, str) or value is None else tuple(value)
    if not items:
        raise ConfigurationError(f"No {what} configured; give at least one.")
    for item in items:
        if not isinstance(item, str) or not item.strip():
            # Never echo the value: it may be a real secret with a typo around it.
            raise ConfigurationError(
                f"A {what} is empty or not a string; check the provider's OPTIONS "
                "(an env() variable that is not set resolves to None)."
            )
    return items


def _hmac(secret: str, message: bytes, algorithm: str = "sha256") -> bytes:
    # hmac.digest: the one-shot form, OpenSSL's HMAC in one call without an HMAC object.
    return hmac.digest(secret.encode("utf-8"), message, _DIGESTS[algorithm])


def _matches(expected: bytes, candidate: bytes) -> bool:
    return hmac.compare_digest(expected, candidate)


def _hex_bytes(value: str) -> bytes | None:
    """Decode a hex signature from a header; ``None`` when it is not hex (never raises)."""
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        return None


def _check_timestamp(
    timestamp: int, *, tolerance: int | None, now: float | None, source: str
) -> None:
    """Refuse a timestamp more than ``tolerance`` seconds away from ``now`` in either direction."""
    if tolerance is None:
        return
    current = time.time() if now is None else now
    age = current - timestamp
    if age > tolerance:
        raise SignatureVerificationError(
            f"The {source} timestamp is {int(age)} s old, beyond the {tolerance} s tolerance: "
            "a replayed or long-delayed delivery, or this server's clock is wrong (check NTP). "
            "The provider will retry with a fresh timestamp."
        )
    if -age > tolerance:
        raise SignatureVerificationError(
            f"The {source} timestamp is {int(-age)} s in the future, beyond the {tolerance} s "
            "tolerance: this server's clock, or the sender's, is wrong (check NTP)."
        )


def _check_tolerance(tolerance: int | None) -> int | None:
    if tolerance is not None and (not isinstance(tolerance, int) or tolerance < 0):
        raise ConfigurationError(
            f"tolerance must be a number of seconds >= 0, or None to disable; got {tolerance!r}."
        )
    return tolerance


# --- generic HMAC ----------------------------------------------------------------------------


class HMACVerifier:
    """An HMAC of the raw body (optionally with a timestamp) carried in one header.

    Covers most "signed webhook" schemes: GitHub's ``X-Hub-Signature-256: sha256=<hex>``
    (``prefix="sha256="``), Shopify's base64 ``X-Shopify-Hmac-Sha256``, or a timestamped
    scheme where ``timestamp_header`` carries the Unix time and the signed string is
    ``signed_payload`` (default ``"{timestamp}.{body}"``; plain ``"{body}"`` without one).
    """

    def __init__(
        self,
        secret: str | Sequence[str],
        *,
        header: str,
        algorithm: Literal["sha256", "sha512"] = "sha256",
        encoding: Literal["hex", "base64"] = "hex",
        timestamp_header: str | None = None,
        tolerance: int | None = 300,
        signed_payload: str | None = None,
        prefix: str = "",
    ) -> None:
        if algorithm not in _DIGESTS:
            raise ConfigurationError(f"algorithm must be 'sha256' or 'sha512', not {algorithm!r}.")
        if encoding not in ("hex", "base64"):
            raise ConfigurationError(f"encoding must be 'hex' or 'base64', not {encoding!r}.")
        template = signed_payload or ("{timestamp}.{body}" if timestamp_header else "{body}")
        if template.count("{body}") != 1:
            raise ConfigurationError(
                f"signed_payload {template!r} must contain '{{body}}' exactly once."
            )
        if "{timestamp}" in template and not timestamp_header:
            raise ConfigurationError(
                "signed_payload uses {timestamp} but no timestamp_header was given."
            )
        self.secrets = _secrets(secret, what="HMAC secret")
        self.header = header
        self.algorithm = algorithm
        self.encoding = encoding
        self.timestamp_header = timestamp_header
        self.tolerance = _check_tolerance(tolerance)
        self.signed_payload = template
        self.prefix = prefix

    def _message(self, body: bytes, timestamp: int | None) -> bytes:
        before, after = self.signed_payload.split("{body}")
        stamp = "" if timestamp is None else str(timestamp)
        return (
            before.replace("{timestamp}", stamp).encode()
            + body
            + after.replace("{timestamp}", stamp).encode()
        )

    def _encode(self, digest: bytes) -> str:
        if self.encoding == "hex":
            return digest.hex()
        return base64.b64encode(digest).decode("ascii")

    def _decode(self, value: str) -> bytes | None:
        if self.encoding == "hex":
            return _hex_bytes(value)
        try:
            return base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None

    def sign(self, body: Body, timestamp: int | None = None) -> str:
        """The header value a sender holding the first (current) secret would send."""
        if self.timestamp_header and timestamp is None:
            timestamp = int(time.time())
        digest = _hmac(self.secrets[0], self._message(_as_bytes(body), timestamp), self.algorithm)
        return self.prefix + self._encode(digest)

    def sign_headers(self, body: Body, timestamp: int | None = None) -> dict[str, str]:
        """Every header the sender sets: the signature, and the timestamp if the scheme has one."""
        if self.timestamp_header:
            timestamp = int(time.time()) if timestamp is None else timestamp
            return {
                self.header: self.sign(body, timestamp),
                self.timestamp_header: str(timestamp),
            }
        return {self.header: self.sign(body)}

    def verify(self, body: Body, headers: Headers, now: float | None = None) -> None:
        raw = get_header(headers, self.header)
        if not raw:
            raise SignatureVerificationError(
                f"The {self.header} header is missing: check that the sender signs its requests "
                "and that no proxy strips the header."
            )
        if self.prefix and not raw.startswith(self.prefix):
            raise SignatureVerificationError(
                f"The {self.header} header does not start with {self.prefix!r}: check the "
                "signature scheme the sender uses."
            )
        candidate = self._decode(raw[len(self.prefix) :])
        if candidate is None:
            raise SignatureVerificationError(
                f"The {self.header} header is not valid {self.encoding}: check the signature "
                "encoding configured for this sender."
            )
        timestamp: int | None = None
        if self.timestamp_header:
            stamp = get_header(headers, self.timestamp_header)
            try:
                timestamp = int((stamp or "").strip())
            except ValueError:
                raise SignatureVerificationError(
                    f"The {self.timestamp_header} header is missing or not a Unix timestamp."
                ) from None
        message = self._message(_as_bytes(body), timestamp)
        if not any(_matches(_hmac(s, message, self.algorithm), candidate) for s in self.secrets):
            raise SignatureVerificationError(
                f"The {self.header} signature does not match this body with any configured "
                "secret: check the secret, and that the raw request body is verified unmodified."
            )
        if timestamp is not None:
            _check_timestamp(
                timestamp, tolerance=self.tolerance, now=now, source=self.timestamp_header or ""
            )


# --- Stripe's t=...,v1=... scheme (Stripe and the paydesk sandbox) ------------------------


class TimestampedSignatureVerifier:
    """The ``t=<unix>,v1=<hex>[,v1=<hex>...]`` scheme Stripe uses, under any header name.

    The signed string is ``f"{t}.{raw body}"``, HMAC-SHA256, lowercase hex. A delivery is
    accepted when ANY ``v1`` value matches with ANY configured secret (the sender puts one
    ``v1`` per active secret during its rotation; paydesk accepts several secrets during
    yours). The timestamp is checked after the signature, as Stripe's SDK does; unlike the
    SDK, a timestamp more than ``tolerance`` seconds in the FUTURE is refused too (stricter:
    a correct sender's clock never runs that far ahead). ``tolerance=None`` disables the
    timestamp check (only for replaying stored deliveries in tests).
    """

    header: ClassVar[str] = "Stripe-Signature"
    label: ClassVar[str] = "Stripe"
    scheme: ClassVar[str] = "v1"

    def __init__(
        self,
        secrets: str | Sequence[str],
        tolerance: int | None = 300,
        *,
        header: str | None = None,
    ) -> None:
        self.secrets = _secrets(secrets, what=f"{self.label} webhook signing secret")
        self.tolerance = _check_tolerance(tolerance)
        self.header_name = header or self.header

    @staticmethod
    def _signed(body: Body, timestamp: int) -> bytes:
        return f"{timestamp}.".encode() + _as_bytes(body)

    def sign(self, body: Body, timestamp: int | None = None, secret: str | None = None) -> str:
        """A header value for ``body``: ``t=<timestamp>,v1=<hex>`` (a test signer)."""
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        key = self.secrets[0] if secret is None else secret
        signature = _hmac(key, self._signed(body, stamp)).hex()
        return f"t={stamp},{self.scheme}={signature}"

    def _parse(self, header_value: str) -> tuple[int, list[str]]:
        timestamp: int | None = None
        signatures: list[str] = []
        for item in header_value.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            if key == "t" and timestamp is None:
                try:
                    timestamp = int(value)
                except ValueError:
                    break
            elif key == self.scheme:
                signatures.append(value)
        if timestamp is None:
            raise SignatureVerificationError(
                f"The {self.header_name} header has no readable t=<timestamp>: check that the "
                "whole header value is passed, unmodified."
            )
        if not signatures:
            raise SignatureVerificationError(
                f"The {self.header_name} header has no {self.scheme}= signature: check that the "
                f"endpoint is set up for {self.label}'s {self.scheme} signatures."
            )
        return timestamp, signatures

    def verify(self, body: Body, header_value: str | None, now: float | None = None) -> None:
        if not header_value:
            raise SignatureVerificationError(
                f"The {self.header_name} header is missing: is this request really from "
                f"{self.label}, and does every proxy pass the header through?"
            )
        timestamp, signatures = self._parse(header_value)
        signed = self._signed(body, timestamp)
        expected = [_hmac(secret, signed).hex().encode() for secret in self.secrets]
        candidates = [s.encode("utf-8", "backslashreplace") for s in signatures]
        if not any(_matches(e, c) for e in expected for c in candidates):
            raise SignatureVerificationError(
                f"No {self.header_name} signature matches this body with any configured secret: "
                f"check that the signing secret is this endpoint's (each {self.label} endpoint "
                "has its own), and that the raw request body is verified, not re-serialized JSON."
            )
        _check_timestamp(
            timestamp, tolerance=self.tolerance, now=now, source=f"{self.header_name} t="
        )

    def verify_request(self, body: Body, headers: Headers, now: float | None = None) -> None:
        self.verify(body, get_header(headers, self.header_name), now=now)


class StripeSignatureVerifier(TimestampedSignatureVerifier):
    """Stripe's ``Stripe-Signature`` header; secrets are the endpoints' ``whsec_...`` values."""

    header = "Stripe-Signature"
    label = "Stripe"


class SandboxWebhookVerifier(TimestampedSignatureVerifier):
    """paydesk's sandbox provider: Stripe's scheme under ``Paydesk-Sandbox-Signature``."""

    header = "Paydesk-Sandbox-Signature"
    label = "sandbox"


# --- iyzico X-Iyz-Signature-V3 ------------------------------------------------------------


def _iyzico_secrets_from_settings() -> tuple[str, ...]:
    """Every configured iyzico provider's ``SECRET_KEY`` (read on each use, never cached)."""
    found: list[str] = []
    providers = paydesk_settings.get("PROVIDERS") or {}
    for config in providers.values():
        backend = str(config.get("BACKEND", "")) if isinstance(config, Mapping) else ""
        if "iyzico" not in backend.lower():
            continue
        value = resolve((config.get("OPTIONS") or {}).get("SECRET_KEY"))
        if isinstance(value, str) and value.strip():
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(v for v in value if isinstance(v, str) and v.strip())
    if not found:
        raise ConfigurationError(
            "IyzicoWebhookVerifier has no secret key: pass secret_key=..., or configure a "
            'provider whose BACKEND is iyzico\'s with OPTIONS["SECRET_KEY"] in '
            'settings.PAYDESK["PROVIDERS"] (is its env() variable set?).'
        )
    return tuple(found)


class IyzicoWebhookVerifier:
    """iyzico's ``X-Iyz-Signature-V3`` webhook signature.

    Lowercase hex HMAC-SHA256 keyed by the merchant's secret key, over (no separators):

    * hosted payment page payloads (they carry ``token``): ``secretKey + iyziEventType +
      iyziPaymentId + token + paymentConversationId + status``;
    * direct API / 3-D Secure payloads: ``secretKey + iyziEventType + paymentId +
      paymentConversationId + status``.

    The secret key is both the HMAC key and the start of the message; that is iyzico's
    design. Without ``secret_key`` the key comes from the iyzico provider(s) configured in
    ``settings.PAYDESK["PROVIDERS"]``, read when verifying. ``verify`` returns a bool for
    compatibility with iyzico's own samples; ``verify_or_raise`` raises like every other
    verifier in this module.
    """

    header: ClassVar[str] = "X-Iyz-Signature-V3"
    HPP_FIELDS: ClassVar[tuple[str, ...]] = (
        "iyziEventType",
        "iyziPaymentId",
        "token",
        "paymentConversationId",
        "status",
    )
    DIRECT_FIELDS: ClassVar[tuple[str, ...]] = (
        "iyziEventType",
        "paymentId",
        "paymentConversationId",
        "status",
    )

    def __init__(self, secret_key: str | Sequence[str] | None = None) -> None:
        self._secret_keys = (
            None if secret_key is None else _secrets(secret_key, what="iyzico secret key")
        )

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return self._secret_keys or _iyzico_secrets_from_settings()

    @staticmethod
    def _payload(body: Body | Mapping[str, Any]) -> Mapping[str, Any]:
        if isinstance(body, Mapping):
            return body
        try:
            payload = json.loads(_as_bytes(body))
        except ValueError:
            raise SignatureVerificationError(
                "The iyzico webhook body is not valid JSON: check that the raw request body "
                "is passed."
            ) from None
        if not isinstance(payload, dict):
            raise SignatureVerificationError("The iyzico webhook body is not a JSON object.")
        return payload

    @classmethod
    def signed_fields(cls, payload: Mapping[str, Any]) -> tuple[str, ...]:
        """The field names whose values are signed, in order, for this payload's format."""
        return cls.HPP_FIELDS if payload.get("token") not in (None, "") else cls.DIRECT_FIELDS

    @classmethod
    def _message_tail(cls, payload: Mapping[str, Any]) -> str:
        parts = []
        for field in cls.signed_fields(payload):
            value = payload.get(field)
            if value is None or isinstance(value, dict | list):
                raise SignatureVerificationError(
                    f"The iyzico webhook payload has no usable {field!r}, which the "
                    "X-Iyz-Signature-V3 signature covers: is this a V3 payment webhook?"
                )
            parts.append(str(value))
        return "".join(parts)

    def sign(self, body: Body | Mapping[str, Any], secret_key: str | None = None) -> str:
        """The ``X-Iyz-Signature-V3`` value iyzico would send for ``body`` (a test signer)."""
        key = secret_key or self.secret_keys[0]
        message = key + self._message_tail(self._payload(body))
        return _hmac(key, message.encode("utf-8")).hex()

    def verify_or_raise(self, body: Body | Mapping[str, Any], signature: str | None) -> None:
        keys = self.secret_keys  # a missing key is a ConfigurationError, not a mismatch
        if not signature:
            raise SignatureVerificationError(
                f"The {self.header} header is missing: ask iyzico support to enable V3 "
                "signatures for this merchant (V1/V2 are deprecated and not accepted)."
            )
        candidate = _hex_bytes(signature)
        tail = self._message_tail(self._payload(body))
        if candidate is None or not any(
            _matches(_hmac(key, (key + tail).encode("utf-8")), candidate) for key in keys
        ):
            raise SignatureVerificationError(
                f"The {self.header} signature does not match: check the merchant secret key "
                "(sandbox and live keys differ) and that the raw body is verified."
            )

    def verify(self, body: Body | Mapping[str, Any], signature: str | None) -> bool:
        """``True`` if ``signature`` is valid for ``body``; ``False`` otherwise (never raises
        on a mismatch or a malformed body; a missing secret key still raises
        ``ConfigurationError``)."""
        try:
            self.verify_or_raise(body, signature)
        except SignatureVerificationError:
            return False
        return True

    def verify_request(self, body: Body, headers: Headers) -> None:
        self.verify_or_raise(body, get_header(headers, self.header))


# --- NOWPayments x-nowpayments-sig ----------------------------------------------------------


class _RawNumber(str):
    """A JSON number kept as the exact text it had in the body."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON; JavaScript's JSON.parse refuses them, so do we.
    raise ValueError(f"{name} is not valid JSON")


def _js_number(text: str) -> str:
    """How JavaScript's ``JSON.stringify`` prints the double nearest to ``text``.

    ECMAScript Number::toString: the shortest digits that round-trip (Python's ``repr``
    finds the same ones), in plain notation for 1e-7 < |x| < 1e21, else exponential with an
    explicit sign (``5e-7``, ``1e+21``); ``1.0`` prints as ``1``; ``-0`` as ``0``.
    """
    value = float(text)
    if not math.isfinite(value):
        return "null"  # JSON.stringify(Infinity) is "null"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_tuple, exponent = Decimal(repr(abs(value))).as_tuple()[1:]
    digits = "".join(map(str, digits_tuple)).rstrip("0")
    exponent = int(exponent) + (len(digits_tuple) - len(digits))
    k = len(digits)
    n = exponent + k  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        out = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + out


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _js_string(value: str) -> str:
    # Python's escaping with ensure_ascii=False matches JSON.stringify's (quote, backslash,
    # \b \f \n \r \t, other controls as lowercase \u00xx) except for lone surrogates, which
    # JavaScript (ES2019+) escapes and Python would leave unencodable.
    text = json.dumps(value, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _utf16_key(key: str) -> bytes:
    # JavaScript's default sort compares UTF-16 code units, not code points.
    return key.encode("utf-16-be", "surrogatepass")


def _stringify(value: Any, *, number: Callable[[str], str], whitelist: Sequence[str] | None) -> str:
    """``JSON.stringify`` of a parsed body: compact, keys sorted, numbers via ``number``.

    With ``whitelist`` (JavaScript's replacer-array form), every object at every depth
    prints only the whitelisted keys it has, in whitelist order; without it, every object's
    keys are sorted (the "sort recursively" form).
    """
    if isinstance(value, dict):
        if whitelist is None:
            keys: Iterable[str] = sorted(value, key=_utf16_key)
        else:
            keys = [k for k in whitelist if k in value]
        items = (
            f"{_js_string(k)}:{_stringify(value[k], number=number, whitelist=whitelist)}"
            for k in keys
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return (
            "[" + ",".join(_stringify(v, number=number, whitelist=whitelist) for v in value) + "]"
        )
    if isinstance(value, _RawNumber):
        return number(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return _js_string(value)


class NowPaymentsVerifier:
    """NOWPayments' IPN signature: ``x-nowpayments-sig`` = hex HMAC-SHA512 of sorted JSON.

    The signed text is the body re-serialized with its keys sorted, compactly, the way
    NOWPayments' JavaScript reference does it (``JSON.stringify(params,
    Object.keys(params).sort())``). Re-serializing is what makes this scheme fragile, so
    the verifier accepts any of a few faithful renderings (a robustness choice; each is still
    an HMAC under your secret, so accepting several gives a forger nothing):

    * keys sorted at every depth, or JavaScript's top-level whitelist form (which prints a
      nested object with only the top-level key names it happens to share: a nested ``fee``
      object becomes ``{}``); for flat payloads the two are identical;
    * numbers printed as JavaScript prints them (``1.0`` → ``1``, ``0.00000123`` stays,
      ``5e-7`` stays, ``1e21`` → ``1e+21``), or exactly as written in the body.

    Strings are written without ASCII escaping, as JavaScript does; the IPN secret is
    trimmed, as the PHP reference does.
    """

    header: ClassVar[str] = "x-nowpayments-sig"

    def __init__(self, ipn_secret: str | Sequence[str]) -> None:
        secrets = _secrets(ipn_secret, what="NOWPayments IPN secret")
        self.secrets = tuple(s.strip(" \t\n\r\0\x0b") for s in secrets)

    @staticmethod
    def _parse(body: Body) -> dict[str, Any]:
        try:
            payload = json.loads(
                _as_bytes(body),
                parse_float=_RawNumber,
                parse_int=_RawNumber,
                parse_constant=_reject_constant,
            )
        except ValueError:
            raise SignatureVerificationError(
                "The NOWPayments IPN body is not valid JSON: check that the raw request body "
                "is passed."
            ) from None
        if not isinstance(payload, dict):
            raise SignatureVerificationError("The NOWPayments IPN body is not a JSON object.")
        return payload

    @classmethod
    def canonical_forms(cls, body: Body) -> list[str]:
        """Every rendering the signature is checked against, the preferred one first."""
        payload = cls._parse(body)
        whitelist = sorted(payload, key=_utf16_key)
        forms: list[str] = []
        for shape in (None, whitelist):
            for number in (_js_number, str):
                form = _stringify(payload, number=number, whitelist=shape)
                if form not in forms:
                    forms.append(form)
        return forms

    def sign(self, body: Body) -> str:
        """The ``x-nowpayments-sig`` for ``body`` (keys sorted at every depth; a test signer)."""
        form = self.canonical_forms(body)[0]
        return _hmac(self.secrets[0], form.encode("utf-8"), "sha512").hex()

    def verify(self, body: Body, signature: str | None) -> None:
        if not signature:
            raise SignatureVerificationError(
                f"The {self.header} header is missing: check that an IPN secret is generated "
                "in the NOWPayments dashboard (IPNs are unsigned without one)."
            )
        candidate = _hex_bytes(signature)
        forms = [form.encode("utf-8") for form in self.canonical_forms(body)]
        if candidate is None or not any(
            _matches(_hmac(secret, form, "sha512"), candidate)
            for secret in self.secrets
            for form in forms
        ):
            raise SignatureVerificationError(
                f"The {self.header} signature does not match: check the IPN secret (Settings → "
                "Payments → IPN in the NOWPayments dashboard) and that the raw body is verified."
            )

    def verify_request(self, body: Body, headers: Headers) -> None:
        self.verify(body, get_header(headers, self.header))


# --- PayPal: certificate-based, offline ------------------------------------------------------

CertFetcher = Callable[[str], bytes]

_PAYPAL_ALGORITHMS = {"sha256withrsa": "sha256", "sha1withrsa": "sha1"}
_MAX_CERT_BYTES = 256 * 1024


def _httpx_fetch(url: str) -> bytes:
    import httpx

    # No redirects: the URL was checked against the allowed hosts, a redirect would not be.
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        response = client.get(url)
        response.raise_for_status()
        if len(response.content) > _MAX_CERT_BYTES:
            raise ValueError(f"certificate download is larger than {_MAX_CERT_BYTES} bytes")
        return response.content


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for suffix in allowed:
        suffix = suffix.lower()
        if host == suffix.lstrip(".") or (suffix.startswith(".") and host.endswith(suffix)):
            return True
    return False


class PayPalWebhookVerifier:
    """PayPal webhook signatures, verified offline from PayPal's signing certificate.

    The signed string is ``transmission_id|transmission_time|webhook_id|crc32(raw body)``
    (CRC32 in decimal; ``webhook_id`` is your subscription's id from the dashboard, not the
    event id). The signature (``PAYPAL-TRANSMISSION-SIG``, base64) is RSA PKCS#1 v1.5 with
    SHA-256 (``SHA256withRSA``) or SHA-1 (``SHA1withRSA``), made with the key of the
    certificate at ``PAYPAL-CERT-URL``. Before that URL is fetched it must be ``https://`` on
    a host ending in one of ``allowed_cert_hosts``; the certificate must be in its validity
    period, name a subject ending in one of ``allowed_cert_subjects`` (CN or DNS SAN), and
    chain, through any intermediates served with it, to ``trusted_roots`` (default: the
    ``certifi`` bundle). Fetched certificates are cached per URL for the process lifetime.

    Chain building here checks issuer names, signatures, validity periods and that
    intermediates are CAs; it does not check revocation, name constraints or key usage.
    (PayPal's Python SDK, paypalrestsdk, does not check revocation either, and it fetches the
    certificate from whatever URL the delivery names; refusing foreign URLs is paydesk's.)
    To pin PayPal's issuing CAs instead of trusting every public CA, pass them as
    ``trusted_roots``.
    """

    HEADER_ID: ClassVar[str] = "PAYPAL-TRANSMISSION-ID"
    HEADER_TIME: ClassVar[str] = "PAYPAL-TRANSMISSION-TIME"
    HEADER_SIG: ClassVar[str] = "PAYPAL-TRANSMISSION-SIG"
    HEADER_CERT_URL: ClassVar[str] = "PAYPAL-CERT-URL"
    HEADER_ALGO: ClassVar[str] = "PAYPAL-AUTH-ALGO"
    MAX_CHAIN_DEPTH: ClassVar[int] = 4
    CACHE_SIZE: ClassVar[int] = 32

    def __init__(
        self,
        webhook_id: str | Sequence[str],
        *,
        trusted_roots: Sequence[x509.Certificate] | None = None,
        cert_fetcher: CertFetcher | None = None,
        allowed_cert_hosts: Sequence[str] = (".paypal.com",),
        allowed_cert_subjects: Sequence[str] = (".paypal.com",),
        now: Callable[[], float] | None = None,
    ) -> None:
        try:
            import cryptography  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "PayPalWebhookVerifier needs the cryptography package: "
                "pip install 'django-paydesk[paypal]'."
            ) from None
        self.webhook_ids = _secrets(webhook_id, what="PayPal webhook id")
        if trusted_roots is not None and not trusted_roots:
            raise ConfigurationError("trusted_roots is empty: nothing could ever be trusted.")
        self._roots = list(trusted_roots) if trusted_roots is not None else None
        self._fetch = cert_fetcher or _httpx_fetch
        self.allowed_cert_hosts = tuple(allowed_cert_hosts)
        self.allowed_cert_subjects = tuple(allowed_cert_subjects)
        self._clock = now or time.time
        self._cache: OrderedDict[str, list[x509.Certificate]] = OrderedDict()
        self._lock = threading.Lock()
        if self._roots is None:
            self._roots = self._certifi_roots()

    @staticmethod
    def _certifi_roots() -> list[x509.Certificate]:
        from cryptography import x509

        try:
            import certifi
        except ImportError:  # pragma: no cover - certifi comes with httpx
            raise ConfigurationError(
                "PayPalWebhookVerifier needs trusted_roots=[...] (certifi is not installed)."
            ) from None
        with open(certifi.where(), "rb") as bundle:
            pem = bundle.read()
        roots = []
        end = b"-----END CERTIFICATE-----"
        for block in pem.split(end)[:-1]:
            # One at a time: a root cryptography refuses (or warns about, such as a negative
            # serial number) is skipped instead of making the whole bundle unusable.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    roots.append(x509.load_pem_x509_certificate(block + end))
                except ValueError:
                    continue
        if not roots:
            raise ConfigurationError(
                f"No usable certificate in certifi's bundle {certifi.where()}; pass trusted_roots."
            )
        return roots

    @staticmethod
    def expected_message(
        *, transmission_id: str, transmission_time: str, webhook_id: str, body: Body
    ) -> bytes:
        crc = zlib.crc32(_as_bytes(body)) & 0xFFFFFFFF
        return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()

    def _check_cert_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            parts, host = None, ""
        if parts is None or parts.scheme != "https" or not host or parts.username is not None:
            raise SignatureVerificationError(
                f"{self.HEADER_CERT_URL} is not an https URL; refusing to fetch it (a forged "
                "delivery can point it anywhere)."
            )
        if not _host_allowed(host, self.allowed_cert_hosts):
            raise SignatureVerificationError(
                f"{self.HEADER_CERT_URL} points at {host!r}, not at a host ending in "
                f"{' or '.join(self.allowed_cert_hosts)}; refusing to fetch it."
            )

    def _certificates(self, url: str) -> list[x509.Certificate]:
        from cryptography import x509

        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                self._cache.move_to_end(url)
                return cached
        try:
            pem = self._fetch(url)
            certificates = x509.load_pem_x509_certificates(pem)
        except Exception as exc:
            raise SignatureVerificationError(
                f"Could not fetch or read the PayPal certificate ({type(exc).__name__}); "
                "answer non-2xx so PayPal retries, and check outbound HTTPS from this server."
            ) from exc
        with self._lock:
            self._cache[url] = certificates
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return certificates

    @staticmethod
    def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    @staticmethod
    def _in_validity(cert: x509.Certificate, at: datetime) -> bool:
        return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc

    @staticmethod
    def _is_ca(cert: x509.Certificate) -> bool:
        from cryptography import x509

        try:
            return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    def _subject_names(self, cert: x509.Certificate) -> list[str]:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names.extend(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            pass
        return names

    def _check_chain(self, chain: list[x509.Certificate], at: datetime) -> x509.Certificate:
        leaf, pool = chain[0], list(chain[1:])
        if not self._in_validity(leaf, at):
            raise SignatureVerificationError(
                "The PayPal signing certificate is expired or not yet valid: check this "
                "server's clock; PayPal rotates its certificate before expiry."
            )
        names = self._subject_names(leaf)
        if not any(_host_allowed(name, self.allowed_cert_subjects) for name in names):
            raise SignatureVerificationError(
                "The signing certificate is not issued to a PayPal host (CN/SAN must end in "
                f"{' or '.join(self.allowed_cert_subjects)}): refusing it."
            )
        roots = self._roots or []
        current = leaf
        for _ in range(self.MAX_CHAIN_DEPTH):
            if any(
                self._issued_by(current, root) and self._in_validity(root, at) for root in roots
            ):
                return leaf
            step = next(
                (
                    c
                    for c in pool
                    if self._is_ca(c) and self._in_validity(c, at) and self._issued_by(current, c)
                ),
                None,
            )
            if step is None:
                break
            pool.remove(step)
            current = step
        raise SignatureVerificationError(
            "The PayPal signing certificate does not chain to a trusted root: check "
            "trusted_roots (default: the certifi bundle) and update certifi."
        )

    def verify(self, body: Body, headers: Headers, now: float | None = None) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        values = {}
        for name in (
            self.HEADER_ID,
            self.HEADER_TIME,
            self.HEADER_SIG,
            self.HEADER_CERT_URL,
            self.HEADER_ALGO,
        ):
            value = get_header(headers, name)
            if not value:
                raise SignatureVerificationError(
                    f"The {name} header is missing: is this request really from PayPal, and "
                    "does every proxy pass PAYPAL-* headers through?"
                )
            values[name] = value.strip()
        algorithm = _PAYPAL_ALGORITHMS.get(values[self.HEADER_ALGO].lower())
        if algorithm is None:
            raise SignatureVerificationError(
                f"{self.HEADER_ALGO} {values[self.HEADER_ALGO]!r} is not supported "
                "(SHA256withRSA or SHA1withRSA)."
            )
        try:
            signature = base64.b64decode(values[self.HEADER_SIG], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureVerificationError(
                f"The {self.HEADER_SIG} header is not valid base64."
            ) from None
        url = values[self.HEADER_CERT_URL]
        self._check_cert_url(url)  # before any network access
        chain = self._certificates(url)
        if not chain:
            raise SignatureVerificationError("The PayPal certificate URL served no certificate.")
        at = datetime.fromtimestamp(self._clock() if now is None else now, tz=UTC)
        leaf = self._check_chain(chain, at)
        key = leaf.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureVerificationError("The PayPal signing certificate has no RSA key.")
        digest = hashes.SHA256() if algorithm == "sha256" else hashes.SHA1()  # noqa: S303
        for webhook_id in self.webhook_ids:
            message = self.expected_message(
                transmission_id=values[self.HEADER_ID],
                transmission_time=values[self.HEADER_TIME],
                webhook_id=webhook_id,
                body=body,
            )
            try:
                key.verify(signature, message, padding.PKCS1v15(), digest)
            except InvalidSignature:
                continue
            return
        raise SignatureVerificationError(
            "The PayPal transmission signature does not match: check the webhook id (the "
            "subscription id from the PayPal dashboard, not the event id; sandbox and live "
            "differ) and that the raw request body is verified unmodified."
        )

    def verify_request(self, body: Body, headers: Headers, now: float | None = None) -> None:
        self.verify(body, headers, now=now)
