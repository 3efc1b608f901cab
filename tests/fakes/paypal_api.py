"""A fake PayPal REST API for ``httpx.MockTransport``: OAuth2, Orders v2, Payments v2, webhooks.

It follows the wire format in /work/shared/docs/providers.md section 2 (PayPal's SDK models
and docs): JSON bodies, amounts as decimal strings (no decimals for HUF/JPY/TWD, ISO 4217
exponents otherwise), ``links`` with ``approve``/``payer-action``, order/capture/
authorization/refund statuses, error bodies ``{name, message, debug_id, details[{issue,
description}], links}``, and ``PayPal-Request-Id`` replay (the same id on the same endpoint
returns the first successful answer, with no second effect).

Use it as::

    fake = FakePayPal()
    client = fake.client()                     # httpx.Client(transport=MockTransport(fake))
    ...create an order through the provider...
    fake.approve(order_id)                     # the buyer approves on PayPal's page
    fake.inject("timeout_after", path="/capture$")   # the next capture happens, then times out
    assert fake.count("capture") == 1          # the fake's own ledger: no double capture

Buyers (``payment_source.paypal.vault_id`` values) and outcomes:

* ``paypal_buyer_approved``: a vaulted, pre-approved buyer; the order completes at creation
  (captured for intent CAPTURE, authorized for AUTHORIZE), as PayPal does for vault ids.
* ``paypal_buyer_declined``: 422 ``INSTRUMENT_DECLINED`` at creation.
* ``paypal_buyer_action``: the order needs the buyer (``PAYER_ACTION_REQUIRED``).
* no vault id: the order waits for approval (``PAYER_ACTION_REQUIRED`` with a ``payer-action``
  link when ``payment_source.paypal`` is sent, else ``CREATED`` with an ``approve`` link);
  ``approve(order, outcome)`` then picks what capturing it does: ``approve`` (completes),
  ``instrument_declined`` / ``payer_action_required`` (422 on capture), ``capture_pending``
  or ``capture_declined`` (a 201 whose capture status is PENDING or DECLINED).
* any other vault id: 400 ``INVALID_REQUEST`` / ``INVALID_PARAMETER_VALUE``.

Faults (``inject`` for a scripted sequence, ``fail_share`` for a seeded random share):
``"timeout"`` (``httpx.ReadTimeout`` before anything happens), ``"timeout_after"`` (the
request takes effect, then ``ReadTimeout``), ``"reset"`` (``httpx.ConnectError``),
``"reset_after"`` (effect, then ``httpx.ReadError``), ``"500"``, ``"503"`` and ``"429"``
(with ``Retry-After``).

Refunds: ``refund_status`` ("COMPLETED" or "PENDING") is what new refunds start as;
``settle_refund`` moves one on later, ``refund_in_dashboard`` makes one outside paydesk (no
``custom_id``). ``GET`` an order lists its captures' refunds under
``purchase_units[].payments.refunds``, as Orders v2's payment collection documents.

``PayPalWebhookKit`` makes a test root CA and a PayPal-named leaf certificate, serves the
leaf through the fake at a PayPal certificate URL, and signs deliveries the way PayPal does
(``transmission_id|transmission_time|webhook_id|crc32(body)``, RSA-SHA256).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import itertools
import json
import random
import re
import secrets
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from paydesk.money import currency_exponent

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "paypal"

VAULT_APPROVED = "paypal_buyer_approved"
VAULT_DECLINED = "paypal_buyer_declined"
VAULT_ACTION = "paypal_buyer_action"
REDIRECT = "paypal"  # payment_method_token for the plain approval redirect

CLIENT_ID = "fake-paypal-client-id"
CLIENT_SECRET = "fake-paypal-client-secret"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_HOST = "api.sandbox.paypal.com"
CERT_PATH = "/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
CERT_URL = f"https://{CERT_HOST}{CERT_PATH}"

_NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXY0123456789"
FAULTS = frozenset({"timeout", "timeout_after", "reset", "reset_after", "500", "503", "429"})


def _id(length: int = 17) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: str) -> Decimal:
    return Decimal(value)


def _fmt(value: Decimal, currency: str) -> str:
    places = 0 if currency in _NO_DECIMALS else currency_exponent(currency)
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}"


class PayPalError(Exception):
    """Raised inside the fake to answer with PayPal's error body."""

    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        issue: str = "",
        description: str = "",
        field_: str = "",
    ) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message
        self.issue, self.description, self.field = issue, description, field_


def _unprocessable(issue: str, description: str) -> PayPalError:
    return PayPalError(
        422,
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed "
        "business validation.",
        issue,
        description,
    )


def _invalid(issue: str, description: str, field_: str = "") -> PayPalError:
    return PayPalError(
        400,
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
        issue,
        description,
        field_,
    )


def _not_found(what: str) -> PayPalError:
    return PayPalError(
        404,
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        "INVALID_RESOURCE_ID",
        f"Specified resource ID does not exist. Please check the resource ID ({what}).",
    )


@dataclass
class Recorded:
    """One request the fake saw (``body`` is parsed JSON, or the form dict for the token)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int | None = None
    fault: str = ""
    replayed: bool = False


@dataclass
class _Matcher:
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return not self.path or re.search(self.path, path) is not None


@dataclass
class _Order:
    id: str
    intent: str
    unit: dict[str, Any]
    status: str
    paypal_source: dict[str, Any] | None
    create_time: str = field(default_factory=_now)
    update_time: str = field(default_factory=_now)
    outcome: str = "approve"
    payer: dict[str, Any] | None = None
    authorizations: list[str] = field(default_factory=list)
    captures: list[str] = field(default_factory=list)


class FakePayPal:
    """The fake API; an instance is the ``httpx.MockTransport`` handler."""

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        token_ttl: int = 32400,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = token_ttl
        self.clock = clock
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.requests: list[Recorded] = []
        self.orders: dict[str, _Order] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.captures: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        #: The fake's own books: every authorization, capture, refund and void it performed.
        self.ledger: list[dict[str, Any]] = []
        self.replays: dict[tuple[str, str, str], tuple[int, Any]] = {}
        self.certs: dict[str, bytes] = {}
        self.deliveries: dict[str, dict[str, Any]] = {}
        self.refund_status = "COMPLETED"
        self.retry_after = "1"
        self._script: list[tuple[_Matcher, str]] = []
        self._share = 0.0
        self._share_kinds: tuple[str, ...] = ()
        self._share_matcher = _Matcher()
        self._rng = random.Random(seed)
        self._latency = 0.0

    # -- clients ---------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self), **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), **kwargs)

    # -- test controls ---------------------------------------------------------------------

    def inject(self, *faults: str, path: str | None = None, method: str | None = None) -> None:
        """Script faults: each is used once by the next request matching ``path``/``method``."""
        for fault in faults:
            if str(fault) not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; use one of {sorted(FAULTS)}")
            with self.lock:
                self._script.append((_Matcher(path, method), str(fault)))

    def fail_share(
        self,
        share: float,
        kinds: Iterable[str] = ("timeout", "timeout_after", "reset", "500", "429"),
        *,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Fail a random (seeded) ``share`` of the matching requests with one of ``kinds``."""
        self._share, self._share_kinds = share, tuple(str(k) for k in kinds)
        self._share_matcher = _Matcher(path, method)

    def heal(self) -> None:
        with self.lock:
            self._script.clear()
            self._share = 0.0

    def slow(self, seconds: float) -> None:
        """Every request waits ``seconds`` (outside the lock), to widen race windows."""
        self._latency = seconds

    def expire_tokens(self) -> None:
        """Forget every access token (as PayPal does when one expires or is revoked)."""
        with self.lock:
            self.tokens.clear()

    def approve(self, order: str, outcome: str = "approve") -> str:
        """The buyer approves ``order`` (an id or its approval URL) on PayPal's page.

        Returns the URL PayPal sends the buyer back to (the order's ``return_url`` with
        ``token`` and ``PayerID``), for a test client to follow.
        """
        outcomes = (
            "approve",
            "instrument_declined",
            "payer_action_required",
            "capture_pending",
            "capture_declined",
        )
        if outcome not in outcomes:
            raise ValueError(f"unknown buyer outcome {outcome!r}; use one of {outcomes}")
        order_id = parse_qs(urlsplit(order).query).get("token", [order])[0]
        with self.lock:
            record = self.orders[order_id]
            if record.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
                raise AssertionError(f"order {order_id} is {record.status}, not approvable")
            record.status = "APPROVED"
            record.outcome = outcome
            record.payer = {
                "name": {"given_name": "John", "surname": "Doe"},
                "email_address": "sb-buyer@personal.example.com",
                "payer_id": "QYR5Z8XDVJNXQ",
                "address": {"country_code": "US"},
            }
            record.update_time = _now()
            context = (record.paypal_source or {}).get("experience_context") or {}
            back = str(context.get("return_url") or "https://example.com/return")
        separator = "&" if "?" in back else "?"
        return f"{back}{separator}token={order_id}&PayerID=QYR5Z8XDVJNXQ"

    def refund_in_dashboard(self, order_id: str, value: str | None = None) -> dict[str, Any]:
        """The merchant refunds the order's capture in PayPal's dashboard, outside paydesk
        (no ``custom_id``, no request id); ``value`` ``None`` refunds all that is left."""
        with self.lock:
            capture_id = self.orders[order_id].captures[0]
            currency = self.captures[capture_id]["amount"]["currency_code"]
            body = {} if value is None else {"amount": {"currency_code": currency, "value": value}}
            return self._refund_capture(body, {}, id=capture_id)[1]

    def settle_refund(self, refund_id: str, status: str = "COMPLETED") -> dict[str, Any]:
        """A PENDING refund reaches ``status`` (COMPLETED, FAILED or CANCELLED) at PayPal."""
        if status not in ("COMPLETED", "FAILED", "CANCELLED"):
            raise ValueError(f"unknown refund status {status!r}")
        with self.lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            refund["update_time"] = _now()
            for entry in self.ledger:
                if entry["kind"] == "refund" and entry["id"] == refund_id:
                    entry["status"] = status
            for capture in self.captures.values():
                if refund_id in capture["_refunds"]:
                    refunded = self._refunded_of(capture)
                    captured = _dec(capture["amount"]["value"])
                    capture["status"] = (
                        "REFUNDED"
                        if refunded >= captured
                        else "PARTIALLY_REFUNDED"
                        if refunded
                        else "COMPLETED"
                    )
            return copy.deepcopy(refund)

    def record_delivery(self, headers: Mapping[str, str], body: bytes, webhook_id: str) -> None:
        """Remember a signed delivery, so the online verify API can vouch for it."""
        lowered = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.deliveries[lowered["paypal-transmission-id"]] = {
                "headers": lowered,
                "body": body,
                "webhook_id": webhook_id,
            }

    # -- the fake's books ------------------------------------------------------------------

    def count(self, kind: str, *, status: str | None = None) -> int:
        return sum(
            1
            for entry in self.ledger
            if entry["kind"] == kind and (status is None or entry["status"] == status)
        )

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if _Matcher(path, method).matches(r.method, r.path)]

    def order(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            return self._order_json(self.orders[order_id])

    # -- transport -------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self._latency:
            time.sleep(self._latency)
        with self.lock:
            method, path = request.method, request.url.path
            recorded = Recorded(method, path, dict(request.headers), self._body(request))
            self.requests.append(recorded)
            fault = self._next_fault(method, path)
            recorded.fault = fault
            if fault == "timeout":
                raise httpx.ReadTimeout("timed out (injected)", request=request)
            if fault == "reset":
                raise httpx.ConnectError("connection reset (injected)", request=request)
            if fault in ("500", "503"):
                response = self._error_response(
                    PayPalError(
                        int(fault),
                        "INTERNAL_SERVER_ERROR" if fault == "500" else "SERVICE_UNAVAILABLE",
                        "An internal server error occurred.",
                    )
                )
            elif fault == "429":
                response = self._error_response(
                    PayPalError(
                        429,
                        "RATE_LIMIT_REACHED",
                        "Too many requests. Blocked due to rate limiting.",
                    ),
                    headers={"Retry-After": self.retry_after},
                )
            else:
                response = self._handle(request, recorded)
            recorded.status = response.status_code
            if fault == "timeout_after":
                raise httpx.ReadTimeout("timed out after the request took effect", request=request)
            if fault == "reset_after":
                raise httpx.ReadError("connection reset by peer (injected)", request=request)
            return response

    def _next_fault(self, method: str, path: str) -> str:
        for index, (matcher, fault) in enumerate(self._script):
            if matcher.matches(method, path):
                del self._script[index]
                return fault
        if (
            self._share
            and self._share_matcher.matches(method, path)
            and self._rng.random() < self._share
        ):
            return self._rng.choice(self._share_kinds)
        return ""

    @staticmethod
    def _body(request: httpx.Request) -> Any:
        content = request.content
        if not content:
            return None
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return {k: v[0] for k, v in parse_qs(content.decode()).items()}
        try:
            return json.loads(content)
        except ValueError:
            return content.decode(errors="replace")

    def _debug_id(self) -> str:
        return secrets.token_hex(7)[:13]

    def _error_response(
        self, error: PayPalError, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        debug_id = self._debug_id()
        body: dict[str, Any] = {"name": error.name, "message": error.message, "debug_id": debug_id}
        if error.issue:
            detail: dict[str, Any] = {"issue": error.issue, "description": error.description}
            if error.field:
                detail.update(field=error.field, location="body")
            body["details"] = [detail]
            body["links"] = [
                {
                    "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{error.issue}",
                    "rel": "information_link",
                    "method": "GET",
                }
            ]
        return httpx.Response(
            error.status,
            json=body,
            headers={"PayPal-Debug-Id": debug_id, **dict(headers or {})},
        )

    def _json(self, status: int, body: Any) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"PayPal-Debug-Id": self._debug_id()})

    # -- routing ---------------------------------------------------------------------------

    _ROUTES: tuple[tuple[str, str, str], ...] = (
        ("POST", r"^/v2/checkout/orders$", "_create_order"),
        ("GET", r"^/v2/checkout/orders/(?P<id>[^/]+)$", "_get_order"),
        ("POST", r"^/v2/checkout/orders/(?P<id>[^/]+)/capture$", "_capture_order"),
        ("POST", r"^/v2/checkout/orders/(?P<id>[^/]+)/authorize$", "_authorize_order"),
        ("GET", r"^/v2/payments/authorizations/(?P<id>[^/]+)$", "_get_authorization"),
        (
            "POST",
            r"^/v2/payments/authorizations/(?P<id>[^/]+)/capture$",
            "_capture_authorization",
        ),
        ("POST", r"^/v2/payments/authorizations/(?P<id>[^/]+)/void$", "_void_authorization"),
        ("GET", r"^/v2/payments/captures/(?P<id>[^/]+)$", "_get_capture"),
        ("POST", r"^/v2/payments/captures/(?P<id>[^/]+)/refund$", "_refund_capture"),
        ("GET", r"^/v2/payments/refunds/(?P<id>[^/]+)$", "_get_refund"),
        ("POST", r"^/v1/notifications/verify-webhook-signature$", "_verify_webhook"),
    )

    def _handle(self, request: httpx.Request, recorded: Recorded) -> httpx.Response:
        method, path = request.method, request.url.path
        if method == "POST" and path == "/v1/oauth2/token":
            return self._token(request, recorded.body)
        if method == "GET" and path in self.certs:
            return httpx.Response(
                200, content=self.certs[path], headers={"Content-Type": "application/x-pem-file"}
            )
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not token or self.tokens.get(token, 0) <= self.clock():
            return httpx.Response(
                401,
                json={
                    "error": "invalid_token",
                    "error_description": "Token signature verification failed",
                },
            )
        for route_method, pattern, handler in self._ROUTES:
            match = re.match(pattern, path)
            if route_method != method or match is None:
                continue
            request_id = request.headers.get("paypal-request-id", "")
            key = (method, path, request_id)
            if method == "POST" and request_id and key in self.replays:
                status, body = self.replays[key]
                recorded.replayed = True
                return self._json(status, copy.deepcopy(body))
            try:
                status, body = getattr(self, handler)(
                    recorded.body or {}, request.headers, **match.groupdict()
                )
            except PayPalError as error:
                return self._error_response(error)
            if method == "POST" and request_id and 200 <= status < 300:
                self.replays[key] = (status, copy.deepcopy(body))
            if body is None:
                return httpx.Response(status, headers={"PayPal-Debug-Id": self._debug_id()})
            return self._json(status, body)
        return self._error_response(
            PayPalError(404, "NOT_FOUND", f"No route for {method} {path} in the fake.")
        )

    # -- OAuth -----------------------------------------------------------------------------

    def _token(self, request: httpx.Request, form: Any) -> httpx.Response:
        self.token_requests += 1
        auth = request.headers.get("authorization", "")
        try:
            decoded = base64.b64decode(auth.removeprefix("Basic ")).decode()
        except ValueError:
            decoded = ""
        if decoded != f"{self.client_id}:{self.client_secret}":
            return httpx.Response(
                401,
                json={
                    "error": "invalid_client",
                    "error_description": "Client Authentication failed",
                },
            )
        if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
            return httpx.Response(
                400,
                json={
                    "error": "unsupported_grant_type",
                    "error_description": "Grant Type is NULL",
                },
            )
        token = "A21AA" + secrets.token_urlsafe(40)
        self.tokens[token] = self.clock() + self.token_ttl
        return httpx.Response(
            200,
            json={
                "scope": "https://uri.paypal.com/services/payments/payment "
                "https://uri.paypal.com/services/payments/refund",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": self.token_ttl,
                "nonce": f"{_now()}{secrets.token_hex(8)}",
            },
        )

    # -- amounts ---------------------------------------------------------------------------

    @staticmethod
    def _amount(amount: Any, where: str) -> tuple[Decimal, str]:
        if not isinstance(amount, dict) or "value" not in amount or "currency_code" not in amount:
            raise _invalid("MISSING_REQUIRED_PARAMETER", "A required field is missing.", where)
        currency, value = str(amount["currency_code"]), str(amount["value"])
        if not re.fullmatch(r"\d{1,10}(\.\d+)?", value):
            raise _invalid(
                "INVALID_PARAMETER_SYNTAX",
                "The value of a field does not conform to the expected format.",
                f"{where}/value",
            )
        try:
            exponent = 0 if currency in _NO_DECIMALS else currency_exponent(currency)
        except ValueError:
            raise _unprocessable(
                "CURRENCY_NOT_SUPPORTED", "Currency code is not supported."
            ) from None
        decimals = len(value.partition(".")[2])
        if decimals > exponent:
            raise _unprocessable(
                "DECIMAL_PRECISION",
                "If the currency supports decimals, only two decimal place precision is "
                "supported." + (" (no decimals for this currency)" if exponent == 0 else ""),
            )
        number = _dec(value)
        if number <= 0:
            raise _unprocessable("CANNOT_BE_ZERO_OR_NEGATIVE", "Must be greater than zero.")
        return number, currency

    # -- rendering -------------------------------------------------------------------------

    def _links(self, kind: str, ident: str, extra: Iterable[tuple[str, str, str]] = ()) -> list:
        base = "https://api.sandbox.paypal.com"
        links = [{"href": f"{base}/v2/{kind}/{ident}", "rel": "self", "method": "GET"}]
        links += [{"href": href, "rel": rel, "method": method} for href, rel, method in extra]
        return links

    def _order_json(self, order: _Order) -> dict[str, Any]:
        unit = copy.deepcopy(order.unit)
        payments: dict[str, list[dict[str, Any]]] = {}
        if order.authorizations:
            payments["authorizations"] = [
                copy.deepcopy(self.authorizations[a]) for a in order.authorizations
            ]
        if order.captures:
            payments["captures"] = [copy.deepcopy(self.captures[c]) for c in order.captures]
            refunds = [
                copy.deepcopy(self.refunds[r])
                for c in order.captures
                for r in self.captures[c]["_refunds"]
            ]
            if refunds:
                payments["refunds"] = refunds
        for items in payments.values():
            for item in items:
                item.pop("_refunds", None)
        if payments:
            unit["payments"] = payments
        extra: list[tuple[str, str, str]] = []
        checkout = f"https://www.sandbox.paypal.com/checkoutnow?token={order.id}"
        if order.status == "CREATED":
            extra.append((checkout, "approve", "GET"))
        if order.status == "PAYER_ACTION_REQUIRED":
            extra.append((checkout, "payer-action", "GET"))
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            base = f"https://api.sandbox.paypal.com/v2/checkout/orders/{order.id}"
            extra.append((base, "update", "PATCH"))
            action = "capture" if order.intent == "CAPTURE" else "authorize"
            extra.append((f"{base}/{action}", action, "POST"))
        body: dict[str, Any] = {
            "id": order.id,
            "intent": order.intent,
            "status": order.status,
            "purchase_units": [unit],
            "create_time": order.create_time,
            "update_time": order.update_time,
            "links": self._links("checkout/orders", order.id, extra),
        }
        if order.paypal_source is not None:
            source = {k: v for k, v in order.paypal_source.items() if k != "experience_context"}
            body["payment_source"] = {"paypal": source}
        if order.payer:
            body["payer"] = copy.deepcopy(order.payer)
        return body

    # -- orders ----------------------------------------------------------------------------

    def _create_order(self, body: dict[str, Any], headers: Any) -> tuple[int, Any]:
        intent = body.get("intent")
        if intent not in ("CAPTURE", "AUTHORIZE"):
            raise _invalid("INVALID_PARAMETER_VALUE", "intent is invalid.", "/intent")
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1:
            raise _invalid(
                "INVALID_ARRAY_MAX_ITEMS",
                "The fake takes exactly one purchase unit.",
                "/purchase_units",
            )
        unit = dict(units[0])
        self._amount(unit.get("amount"), "/purchase_units/@reference_id=='default'/amount")
        unit.setdefault("reference_id", "default")
        unit["payee"] = {
            "email_address": "sb-merchant@business.example.com",
            "merchant_id": "7KNGBPH2U58GQ",
        }
        source = (body.get("payment_source") or {}).get("paypal")
        vault_id = (source or {}).get("vault_id")
        if vault_id and vault_id not in (VAULT_APPROVED, VAULT_DECLINED, VAULT_ACTION):
            raise _invalid(
                "INVALID_PARAMETER_VALUE",
                "The value of a field is invalid.",
                "/payment_source/paypal/vault_id",
            )
        if vault_id == VAULT_DECLINED:
            raise _unprocessable(
                "INSTRUMENT_DECLINED",
                "The instrument presented was either declined by the processor or bank, or it "
                "can't be used for this payment.",
            )
        if source is None:
            status = "CREATED"
        elif vault_id == VAULT_APPROVED:
            status = "APPROVED"
        else:
            status = "PAYER_ACTION_REQUIRED"
        order = _Order(id=_id(), intent=str(intent), unit=unit, status=status, paypal_source=source)
        self.orders[order.id] = order
        if vault_id == VAULT_APPROVED:
            order.payer = {"email_address": "vaulted-buyer@example.com", "payer_id": "VAULTPAYER1"}
            self._complete(order)
        return 201, self._order_json(order)

    def _find_order(self, ident: str) -> _Order:
        order = self.orders.get(ident)
        if order is None:
            raise _not_found(f"order {ident}")
        return order

    def _get_order(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        return 200, self._order_json(self._find_order(id))

    def _check_completable(self, order: _Order, action: str) -> None:
        if order.status == "COMPLETED":
            issue = "ORDER_ALREADY_CAPTURED" if action == "capture" else "ORDER_ALREADY_AUTHORIZED"
            raise _unprocessable(issue, f"Order already {action}d.")
        if order.status != "APPROVED":
            raise _unprocessable(
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment. Please redirect the payer to "
                "the 'rel':'approve' url returned as part of the HATEOAS links within the Create "
                "Order call or provide a valid payment_source in the request.",
            )
        expected = "CAPTURE" if action == "capture" else "AUTHORIZE"
        if order.intent != expected:
            raise _unprocessable(
                "ACTION_DOES_NOT_MATCH_INTENT",
                f"Order was created with an intent of '{order.intent}'.",
            )
        if order.outcome == "instrument_declined":
            raise _unprocessable(
                "INSTRUMENT_DECLINED",
                "The instrument presented was either declined by the processor or bank, or it "
                "can't be used for this payment.",
            )
        if order.outcome == "payer_action_required":
            raise _unprocessable(
                "PAYER_ACTION_REQUIRED",
                "Payer needs to perform the following action before proceeding with payment.",
            )

    def _complete(self, order: _Order) -> None:
        amount = dict(order.unit["amount"])
        custom_id = order.unit.get("custom_id")
        if order.intent == "CAPTURE":
            status = {"capture_pending": "PENDING", "capture_declined": "DECLINED"}.get(
                order.outcome, "COMPLETED"
            )
            capture = self._new_capture(order, amount, status, authorization_id=None)
            if custom_id:
                capture["custom_id"] = custom_id
        else:
            auth_id = _id()
            self.authorizations[auth_id] = {
                "id": auth_id,
                "status": "CREATED",
                "amount": amount,
                "custom_id": custom_id,
                "expiration_time": (dt.datetime.now(dt.UTC) + dt.timedelta(days=29)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "supplementary_data": {"related_ids": {"order_id": order.id}},
                "create_time": _now(),
                "update_time": _now(),
                "links": self._links(
                    "payments/authorizations",
                    auth_id,
                    [
                        (
                            f"https://api.sandbox.paypal.com/v2/checkout/orders/{order.id}",
                            "up",
                            "GET",
                        )
                    ],
                ),
            }
            order.authorizations.append(auth_id)
            self.ledger.append(
                {
                    "kind": "authorization",
                    "id": auth_id,
                    "order_id": order.id,
                    "amount": amount["value"],
                    "currency": amount["currency_code"],
                    "status": "CREATED",
                }
            )
        order.status = "COMPLETED"
        order.update_time = _now()

    def _new_capture(
        self,
        order: _Order,
        amount: dict[str, str],
        status: str,
        *,
        authorization_id: str | None,
        final_capture: bool = True,
    ) -> dict[str, Any]:
        capture_id = _id()
        related = {"order_id": order.id}
        if authorization_id:
            related["authorization_id"] = authorization_id
        up = (
            f"https://api.sandbox.paypal.com/v2/payments/authorizations/{authorization_id}"
            if authorization_id
            else f"https://api.sandbox.paypal.com/v2/checkout/orders/{order.id}"
        )
        capture: dict[str, Any] = {
            "id": capture_id,
            "status": status,
            "amount": dict(amount),
            "final_capture": final_capture,
            "seller_protection": {"status": "ELIGIBLE"},
            "supplementary_data": {"related_ids": related},
            "create_time": _now(),
            "update_time": _now(),
            "links": self._links(
                "payments/captures",
                capture_id,
                [
                    (
                        f"https://api.sandbox.paypal.com/v2/payments/captures/{capture_id}/refund",
                        "refund",
                        "POST",
                    ),
                    (up, "up", "GET"),
                ],
            ),
            "_refunds": [],
        }
        if status == "PENDING":
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        if status == "DECLINED":
            capture["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
        self.captures[capture_id] = capture
        order.captures.append(capture_id)
        self.ledger.append(
            {
                "kind": "capture",
                "id": capture_id,
                "order_id": order.id,
                "amount": amount["value"],
                "currency": amount["currency_code"],
                "status": status,
            }
        )
        return capture

    def _capture_order(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        order = self._find_order(id)
        self._check_completable(order, "capture")
        self._complete(order)
        return 201, self._order_json(order)

    def _authorize_order(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        order = self._find_order(id)
        self._check_completable(order, "authorize")
        self._complete(order)
        return 201, self._order_json(order)

    # -- authorizations --------------------------------------------------------------------

    def _find_authorization(self, ident: str) -> dict[str, Any]:
        authorization = self.authorizations.get(ident)
        if authorization is None:
            raise _not_found(f"authorization {ident}")
        return authorization

    def _get_authorization(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._find_authorization(id))

    def _captured_of(self, authorization_id: str) -> Decimal:
        return sum(
            (
                _dec(c["amount"]["value"])
                for c in self.captures.values()
                if c["supplementary_data"]["related_ids"].get("authorization_id")
                == authorization_id
                and c["status"] in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED", "PENDING")
            ),
            Decimal(0),
        )

    def _capture_authorization(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        authorization = self._find_authorization(id)
        status = authorization["status"]
        if status == "VOIDED":
            raise _unprocessable(
                "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured."
            )
        if status == "CAPTURED":
            raise _unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has already been captured."
            )
        auth_amount = authorization["amount"]
        amount = body.get("amount") or {
            "currency_code": auth_amount["currency_code"],
            "value": _fmt(
                _dec(auth_amount["value"]) - self._captured_of(id), auth_amount["currency_code"]
            ),
        }
        value, currency = self._amount(amount, "/amount")
        if currency != auth_amount["currency_code"]:
            raise _unprocessable(
                "CURRENCY_MISMATCH", "Currency of capture must match authorization."
            )
        if value + self._captured_of(id) > _dec(auth_amount["value"]):
            raise _unprocessable(
                "MAX_CAPTURE_AMOUNT_EXCEEDED",
                "Capture amount exceeds allowable limit. Please contact customer service.",
            )
        order = self.orders[authorization["supplementary_data"]["related_ids"]["order_id"]]
        final = bool(body.get("final_capture", False))
        capture = self._new_capture(
            order, dict(amount), "COMPLETED", authorization_id=id, final_capture=final
        )
        if body.get("invoice_id"):
            capture["invoice_id"] = body["invoice_id"]
        fully = self._captured_of(id) >= _dec(auth_amount["value"])
        authorization["status"] = "CAPTURED" if final or fully else "PARTIALLY_CAPTURED"
        authorization["update_time"] = _now()
        shown = copy.deepcopy(capture)
        shown.pop("_refunds", None)
        return 201, shown

    def _void_authorization(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        authorization = self._find_authorization(id)
        if authorization["status"] == "VOIDED":
            raise _unprocessable("PREVIOUSLY_VOIDED", "Authorization has been previously voided.")
        if authorization["status"] not in ("CREATED", "PENDING"):
            raise _unprocessable(
                "CANNOT_BE_VOIDED",
                "A reauthorization cannot be voided. Please void the original parent "
                "authorization.",
            )
        authorization["status"] = "VOIDED"
        authorization["update_time"] = _now()
        self.ledger.append(
            {
                "kind": "void",
                "id": id,
                "order_id": authorization["supplementary_data"]["related_ids"]["order_id"],
                "amount": authorization["amount"]["value"],
                "currency": authorization["amount"]["currency_code"],
                "status": "VOIDED",
            }
        )
        if "return=representation" in headers.get("prefer", ""):
            return 200, copy.deepcopy(authorization)
        return 204, None

    # -- captures and refunds --------------------------------------------------------------

    def _find_capture(self, ident: str) -> dict[str, Any]:
        capture = self.captures.get(ident)
        if capture is None:
            raise _not_found(f"capture {ident}")
        return capture

    def _get_capture(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        shown = copy.deepcopy(self._find_capture(id))
        shown.pop("_refunds", None)
        return 200, shown

    def _refunded_of(self, capture: dict[str, Any]) -> Decimal:
        return sum(
            (
                _dec(self.refunds[r]["amount"]["value"])
                for r in capture["_refunds"]
                if self.refunds[r]["status"] in ("COMPLETED", "PENDING")
            ),
            Decimal(0),
        )

    def _refund_capture(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        capture = self._find_capture(id)
        if capture["status"] == "REFUNDED":
            raise _unprocessable(
                "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded."
            )
        if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise _unprocessable(
                "TRANSACTION_REFUSED", "The request was refused (the capture is not completed)."
            )
        captured = _dec(capture["amount"]["value"])
        currency = capture["amount"]["currency_code"]
        remaining = captured - self._refunded_of(capture)
        amount = body.get("amount") or {
            "currency_code": currency,
            "value": _fmt(remaining, currency),
        }
        value, refund_currency = self._amount(amount, "/amount")
        if refund_currency != currency:
            raise _unprocessable(
                "REFUND_CAPTURE_CURRENCY_MISMATCH",
                "Refund must be in the same currency as the capture.",
            )
        if value > remaining:
            raise _unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has "
                "not yet been refunded.",
            )
        refund_id = _id()
        refund: dict[str, Any] = {
            "id": refund_id,
            "status": self.refund_status,
            "amount": dict(amount),
            "seller_payable_breakdown": {
                "gross_amount": dict(amount),
                "net_amount": dict(amount),
            },
            "create_time": _now(),
            "update_time": _now(),
            "links": self._links(
                "payments/refunds",
                refund_id,
                [
                    (
                        f"https://api.sandbox.paypal.com/v2/payments/captures/{id}",
                        "up",
                        "GET",
                    )
                ],
            ),
        }
        for key in ("custom_id", "invoice_id", "note_to_payer"):
            if body.get(key):
                refund[key] = body[key]
        self.refunds[refund_id] = refund
        capture["_refunds"].append(refund_id)
        capture["status"] = (
            "REFUNDED" if self._refunded_of(capture) >= captured else "PARTIALLY_REFUNDED"
        )
        capture["update_time"] = _now()
        self.ledger.append(
            {
                "kind": "refund",
                "id": refund_id,
                "capture_id": id,
                "order_id": capture["supplementary_data"]["related_ids"]["order_id"],
                "amount": amount["value"],
                "currency": refund_currency,
                "status": self.refund_status,
            }
        )
        return 201, copy.deepcopy(refund)

    def _get_refund(self, body: Any, headers: Any, id: str) -> tuple[int, Any]:
        refund = self.refunds.get(id)
        if refund is None:
            raise _not_found(f"refund {id}")
        return 200, copy.deepcopy(refund)

    # -- webhooks --------------------------------------------------------------------------

    def _verify_webhook(self, body: dict[str, Any], headers: Any) -> tuple[int, Any]:
        required = (
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
            "webhook_event",
        )
        missing = [name for name in required if not body.get(name)]
        if missing:
            raise _invalid("MISSING_REQUIRED_PARAMETER", "A required field is missing.", missing[0])
        sent = self.deliveries.get(body["transmission_id"])
        ok = (
            sent is not None
            and sent["webhook_id"] == body["webhook_id"]
            and sent["headers"]["paypal-transmission-sig"] == body["transmission_sig"]
            and sent["headers"]["paypal-transmission-time"] == body["transmission_time"]
            and sent["headers"]["paypal-cert-url"] == body["cert_url"]
            and json.loads(sent["body"]) == body["webhook_event"]
        )
        return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}


# -- webhooks: a test PKI and PayPal's signing scheme --------------------------------------------


@dataclass(frozen=True)
class _Pki:
    root_pem: bytes
    leaf_pem: bytes
    leaf_key: Any
    untrusted_pem: bytes
    untrusted_key: Any
    expired_pem: bytes
    expired_key: Any
    foreign_pem: bytes  # chains to the trusted root but is issued to a non-PayPal name
    foreign_key: Any


@functools.cache
def _pki() -> _Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def key() -> Any:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paydesk tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    def cert(
        subject: str,
        subject_key: Any,
        issuer: x509.Name | None,
        issuer_key: Any,
        *,
        ca: bool,
        start: dt.datetime,
        end: dt.datetime,
        dns: str | None = None,
    ) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer or name(subject))
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if dns:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def pem(certificate: Any) -> bytes:
        return bytes(certificate.public_bytes(serialization.Encoding.PEM))

    year = dt.timedelta(days=365)
    root_key, other_root_key = key(), key()
    root = cert(
        "paydesk Test Root CA", root_key, None, root_key, ca=True, start=now - year, end=now + year
    )
    other_root = cert(
        "Look-alike Root CA",
        other_root_key,
        None,
        other_root_key,
        ca=True,
        start=now - year,
        end=now + year,
    )
    leaf_name = "messageverificationcerts.sandbox.paypal.com"
    leaf_key, untrusted_key, expired_key, foreign_key = key(), key(), key(), key()
    leaf = cert(
        leaf_name,
        leaf_key,
        root.subject,
        root_key,
        ca=False,
        start=now - dt.timedelta(days=1),
        end=now + year,
        dns=leaf_name,
    )
    untrusted = cert(
        leaf_name,
        untrusted_key,
        other_root.subject,
        other_root_key,
        ca=False,
        start=now - dt.timedelta(days=1),
        end=now + year,
        dns=leaf_name,
    )
    expired = cert(
        leaf_name,
        expired_key,
        root.subject,
        root_key,
        ca=False,
        start=now - year,
        end=now - dt.timedelta(days=1),
        dns=leaf_name,
    )
    foreign = cert(
        "webhooks.attacker.example",
        foreign_key,
        root.subject,
        root_key,
        ca=False,
        start=now - dt.timedelta(days=1),
        end=now + year,
        dns="webhooks.attacker.example",
    )
    return _Pki(
        root_pem=pem(root),
        leaf_pem=pem(leaf),
        leaf_key=leaf_key,
        untrusted_pem=pem(untrusted) + pem(other_root),
        untrusted_key=untrusted_key,
        expired_pem=pem(expired),
        expired_key=expired_key,
        foreign_pem=pem(foreign),
        foreign_key=foreign_key,
    )


def load_fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


class PayPalWebhookKit:
    """Signs deliveries as PayPal does, with certificates a test can trust or not.

    ``chain`` picks the signing certificate: ``"good"`` (a PayPal-named leaf issued by the
    root in ``root_pem``), ``"untrusted"`` (same name, another root), ``"expired"`` (issued
    by the trusted root, expired yesterday) or ``"foreign"`` (trusted root, non-PayPal name).
    """

    _PATHS = {
        "good": CERT_PATH,
        "untrusted": "/v1/notifications/certs/CERT-untrusted-0000",
        "expired": "/v1/notifications/certs/CERT-expired-0000",
        "foreign": "/v1/notifications/certs/CERT-foreign-0000",
    }

    def __init__(self, *, webhook_id: str = WEBHOOK_ID, fake: FakePayPal | None = None) -> None:
        self.webhook_id = webhook_id
        self.pki = _pki()
        self.fake = fake
        self._ids = itertools.count(1)
        if fake is not None:
            self.serve(fake)

    @property
    def root_pem(self) -> str:
        return self.pki.root_pem.decode()

    def serve(self, fake: FakePayPal) -> None:
        """Serve every test certificate from ``fake`` (under PayPal's certificate host)."""
        fake.certs.update(
            {
                self._PATHS["good"]: self.pki.leaf_pem,
                self._PATHS["untrusted"]: self.pki.untrusted_pem,
                self._PATHS["expired"]: self.pki.expired_pem,
                self._PATHS["foreign"]: self.pki.foreign_pem,
            }
        )
        self.fake = fake

    def cert_url(self, chain: str = "good") -> str:
        return f"https://{CERT_HOST}{self._PATHS[chain]}"

    def sign(
        self,
        body: bytes,
        *,
        timestamp: float | None = None,
        webhook_id: str | None = None,
        chain: str = "good",
        cert_url: str | None = None,
        transmission_id: str | None = None,
        algorithm: str = "SHA256withRSA",
    ) -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key = {
            "good": self.pki.leaf_key,
            "untrusted": self.pki.untrusted_key,
            "expired": self.pki.expired_key,
            "foreign": self.pki.foreign_key,
        }[chain]
        stamp = time.time() if timestamp is None else timestamp
        sent = dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tid = transmission_id or str(uuid.uuid4())
        crc = zlib.crc32(body) & 0xFFFFFFFF
        message = f"{tid}|{sent}|{webhook_id or self.webhook_id}|{crc}".encode()
        digest = hashes.SHA256() if algorithm == "SHA256withRSA" else hashes.SHA1()
        signature = key.sign(message, padding.PKCS1v15(), digest)
        headers = {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": tid,
            "PAYPAL-TRANSMISSION-TIME": sent,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": cert_url or self.cert_url(chain),
            "PAYPAL-AUTH-ALGO": algorithm,
        }
        if self.fake is not None:
            self.fake.record_delivery(headers, body, webhook_id or self.webhook_id)
        return headers

    # -- events ----------------------------------------------------------------------------

    def event(self, event_type: str, resource: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """A webhook event envelope around ``resource`` (PayPal's shape)."""
        resource_type = {
            "CHECKOUT": "checkout-order",
            "PAYMENT.CAPTURE": "capture",
            "PAYMENT.AUTHORIZATION": "authorization",
        }
        kind = next((v for k, v in resource_type.items() if event_type.startswith(k)), "other")
        if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
            kind = "refund"
        event_id = extra.pop("id", None) or f"WH-{next(self._ids):04d}-{_id(12)}"
        return {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _now(),
            "resource_type": kind,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"{event_type} (paydesk test)",
            "resource": copy.deepcopy(dict(resource)),
            "links": [
                {
                    "href": f"https://api.sandbox.paypal.com/v1/notifications/webhooks-events/{event_id}",
                    "rel": "self",
                    "method": "GET",
                }
            ],
            **extra,
        }

    def capture_event(
        self,
        event_type: str,
        *,
        order_id: str,
        payment_id: str = "",
        value: str,
        currency: str,
        capture_id: str | None = None,
    ) -> dict[str, Any]:
        resource = load_fixture("capture.json")
        resource["id"] = capture_id or _id()
        resource["amount"] = {"currency_code": currency, "value": value}
        resource["supplementary_data"]["related_ids"]["order_id"] = order_id
        resource["status"] = {
            "PAYMENT.CAPTURE.COMPLETED": "COMPLETED",
            "PAYMENT.CAPTURE.PENDING": "PENDING",
            "PAYMENT.CAPTURE.DENIED": "DECLINED",
            "PAYMENT.CAPTURE.DECLINED": "DECLINED",
        }[event_type]
        if payment_id:
            resource["custom_id"] = payment_id
        else:
            resource.pop("custom_id", None)
        return self.event(event_type, resource)

    def delivery(self, event: Mapping[str, Any], **sign: Any) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event, separators=(",", ":")).encode()
        return body, self.sign(body, **sign)


# -- wiring the provider to the fake ------------------------------------------------------------


def provider_options(
    fake: FakePayPal, kit: PayPalWebhookKit | None = None, **options: Any
) -> dict[str, Any]:
    """OPTIONS for a PayPalProvider that talks to ``fake`` and trusts ``kit``'s test root."""
    base: dict[str, Any] = {
        "CLIENT_ID": fake.client_id,
        "CLIENT_SECRET": fake.client_secret,
        "MODE": "sandbox",
        "HTTP_CLIENT": fake.client(),
        "RETRY_BACKOFF": 0,
    }
    if kit is not None:
        base.update(WEBHOOK_ID=kit.webhook_id, WEBHOOK_TRUSTED_ROOTS=kit.root_pem)
    base.update(options)
    return base


def paydesk_settings(
    fake: FakePayPal,
    kit: PayPalWebhookKit | None = None,
    *,
    alias: str = "paypal",
    options: Mapping[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A ``PAYDESK`` dict with ``alias`` on the fake PayPal, webhooks processed inline."""
    return {
        "DEFAULT_PROVIDER": alias,
        "PUBLIC_BASE_URL": "https://shop.example.com",
        "PROVIDERS": {
            alias: {
                "BACKEND": "paydesk.providers.paypal.PayPalProvider",
                "OPTIONS": provider_options(fake, kit, **dict(options or {})),
            },
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "off"},
            },
        },
        "WEBHOOKS": {"PROCESS": "inline"},
        "SECURITY": {"ENABLE_RATE_LIMITING": False},
        **top,
    }
