"""A fake NOWPayments API for ``httpx.MockTransport``.

It speaks the wire format of ../shared/docs/providers.md section 4: ``x-api-key`` on every
call but ``GET /v1/status``, JSON bodies, ``POST /v1/payment`` / ``POST /v1/invoice``,
``GET /v1/payment/{id}``, the payments list, ``GET /v1/min-amount``, ``GET /v1/estimate``,
and IPNs signed with HMAC-SHA512 over the body's keys sorted, printed the way JavaScript's
``JSON.stringify`` prints them.

What it does, and why:

* **Authentication** exactly as paydesk's client must present it: a missing or wrong
  ``x-api-key`` gets 403 ``INVALID_API_KEY``. The payments list additionally needs
  ``Authorization: Bearer <JWT>`` from ``POST /v1/auth`` (email + password); that the list
  needs the JWT is from memory of NOWPayments' Postman docs, not from providers.md (guess).
* **Amounts**: ``price_amount`` must be a JSON *number* (it is parsed as ``Decimal`` here, so
  a float rendering such as ``19.989999999999998`` would show up as a wrong price). Crypto
  amounts go out as numbers with up to 8 decimals, exactly.
* **No idempotency**, as the real API: two ``POST /v1/payment`` calls create two payments.
  The fake's own books (``payments``, ``invoices``) let a test prove that paydesk's guard
  (lookup by ``order_id`` before re-creating) kept it to one.
* **Sandbox cases**: NOWPayments' sandbox takes ``case`` on ``POST /v1/payment``; only
  ``success`` is documented. This fake understands ``success`` -> ``finished``,
  ``failed`` -> ``failed``, ``partially_paid``, ``expired`` and ``confirming``, and applies
  them at once (the real sandbox moves through the statuses over time; the fake compresses
  that, which is what lets the provider contract's "captured at once" tests run).
  Without a case a payment stays ``waiting`` until the test moves it with :meth:`advance`.
* **Faults**: :meth:`fail_next` injects a timeout or an HTTP 5xx before or after the work
  is done (``after=True``: the payment exists but the client never hears of it).
* **Error bodies**: ``{"status": false, "statusCode": ..., "code": ..., "message": ...}``
  (the shape seen in NOWPayments' answers; codes such as ``AMOUNT_MINIMAL_ERROR`` are from
  memory, guess).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx

API_KEY = "np_test_api_key_0000"
IPN_SECRET = "np_test_ipn_secret"
EMAIL = "merchant@example.com"
PASSWORD = "np-password"
SANDBOX_HOST = "api-sandbox.nowpayments.io"
LIVE_HOST = "api.nowpayments.io"

FIATS = frozenset({"usd", "eur", "gbp", "try", "krw", "jpy"})
#: Coin -> how many coins one USD buys (a fixed table: the fake's "market").
RATES = {
    "btc": Decimal("0.00001600"),
    "eth": Decimal("0.00030000"),
    "trx": Decimal("8.50000000"),
    "usdttrc20": Decimal("1.00000000"),
    "xrp": Decimal("1.60000000"),
}
#: Coin -> smallest amount accepted (in the coin).
MIN_AMOUNTS = {
    "btc": Decimal("0.00001234"),
    "eth": Decimal("0.00050000"),
    "trx": Decimal("5.00000000"),
    "usdttrc20": Decimal("1.00000000"),
    "xrp": Decimal("2.00000000"),
}
FIAT_TO_USD = {
    "usd": Decimal(1),
    "eur": Decimal("1.1"),
    "gbp": Decimal("1.25"),
    "try": Decimal("0.03"),
    "krw": Decimal("0.00075"),
    "jpy": Decimal("0.0067"),
}
CASES = {
    "success": "finished",
    "failed": "failed",
    "partially_paid": "partially_paid",
    "expired": "expired",
    "confirming": "confirming",
}
EIGHT = Decimal("0.00000001")


def _num(value: Decimal) -> str:
    """A JSON number as JavaScript prints plain decimals: no exponent, no trailing zeros."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def encode(value: Any, *, top: list[str] | None = None) -> str:
    """Compact JSON, keys as inserted.

    With ``top`` (JavaScript's ``JSON.stringify(obj, keys)`` replacer array), every object
    prints only the key names in ``top`` that it has, in that order, at every depth.
    """
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, Decimal):
        return _num(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        keys = [k for k in top if k in value] if top is not None else list(value)
        items = (f"{json.dumps(k, ensure_ascii=False)}:{encode(value[k], top=top)}" for k in keys)
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v, top=top) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def sorted_recursive(value: Any) -> str:
    """Keys sorted at every depth (the "sortObject" form many integrations use)."""
    if isinstance(value, Mapping):
        return (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=False)}:{sorted_recursive(value[k])}"
                for k in sorted(value)
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(sorted_recursive(v) for v in value) + "]"
    return encode(value)


def sign(payload: Mapping[str, Any], secret: str = IPN_SECRET, *, form: str = "flat") -> str:
    """``x-nowpayments-sig`` as NOWPayments computes it: hex HMAC-SHA512 of the sorted JSON.

    ``form="flat"`` is the documented JavaScript reference ``JSON.stringify(params,
    Object.keys(params).sort())``; ``"recursive"`` sorts nested objects too.
    """
    text = encode(payload, top=sorted(payload)) if form == "flat" else sorted_recursive(payload)
    return hmac.new(secret.strip().encode(), text.encode(), hashlib.sha512).hexdigest()


@dataclass
class Fault:
    method: str
    path: str  # a path prefix, e.g. "/v1/payment"
    kind: str  # "timeout", "connect" or an HTTP status such as "500"
    after: bool  # do the work first (the client never hears of it)


class FakeNowPayments:
    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        ipn_secret: str = IPN_SECRET,
        host: str = SANDBOX_HOST,
        email: str = EMAIL,
        password: str = PASSWORD,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.api_key = api_key
        self.ipn_secret = ipn_secret
        self.host = host
        self.email = email
        self.password = password
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.payments: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.faults: list[Fault] = []
        self.tokens: set[str] = set()
        self._ids = itertools.count(5_077_125_051)
        self._invoice_ids = itertools.count(4_522_625_843)

    # -- wiring ------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def fail_next(
        self, method: str, path: str, kind: str = "timeout", *, after: bool = False
    ) -> None:
        self.faults.append(Fault(method.upper(), path, kind, after))

    # -- helpers for tests ---------------------------------------------------------------

    def _now(self) -> str:
        return self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def advance(
        self, payment_id: str | int, status: str, *, actually_paid: str | None = None
    ) -> dict[str, Any]:
        """Move a payment on (what the blockchain and NOWPayments do over time)."""
        payment = self.payments[str(payment_id)]
        payment["payment_status"] = status
        if actually_paid is not None:
            payment["actually_paid"] = Decimal(actually_paid)
        elif status in ("confirming", "confirmed", "sending", "finished"):
            payment["actually_paid"] = payment["pay_amount"]
        if status == "finished":
            payment["outcome_amount"] = (payment["pay_amount"] * Decimal("0.995")).quantize(EIGHT)
            payment["payin_hash"] = "0x" + hashlib.sha256(str(payment_id).encode()).hexdigest()
        payment["updated_at"] = self._now()
        return payment

    def pay_invoice(self, invoice_id: str, pay_currency: str) -> dict[str, Any]:
        """The customer picks a coin on the hosted invoice page: NOWPayments creates a payment."""
        invoice = self.invoices[str(invoice_id)]
        return self._new_payment(
            price=invoice["price_amount"],
            price_currency=invoice["price_currency"],
            pay_currency=pay_currency,
            order_id=invoice["order_id"],
            description=invoice["order_description"],
            ipn_url=invoice["ipn_callback_url"],
            invoice_id=int(invoice["id"]),
        )

    def ipn_payload(self, payment_id: str | int, **overrides: Any) -> dict[str, Any]:
        payload = self._public(self.payments[str(payment_id)])
        payload.update(overrides)
        return payload

    def ipn(
        self,
        payment_id: str | int,
        *,
        form: str = "flat",
        secret: str | None = None,
        **overrides: Any,
    ) -> tuple[bytes, dict[str, str]]:
        """The IPN NOWPayments POSTs for a payment's current state: body and headers."""
        payload = self.ipn_payload(payment_id, **overrides)
        body = encode(payload).encode()
        signature = sign(payload, secret or self.ipn_secret, form=form)
        return body, {"Content-Type": "application/json", "x-nowpayments-sig": signature}

    def payments_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return [p for p in self.payments.values() if p["order_id"] == order_id]

    # -- HTTP ----------------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str) -> httpx.Response:
        body = {"status": False, "statusCode": status, "code": code, "message": message}
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )

    def _json(self, data: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(
            status, content=encode(data).encode(), headers={"Content-Type": "application/json"}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = next(
            (
                f
                for f in self.faults
                if f.method == request.method and request.url.path.startswith(f.path)
            ),
            None,
        )
        if fault is not None:
            self.faults.remove(fault)
            if not fault.after:
                return self._fault(fault, request)
            self._route(request)
            return self._fault(fault, request)
        return self._route(request)

    def _fault(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("fake NOWPayments timed out", request=request)
        if fault.kind == "connect":
            raise httpx.ConnectError("fake NOWPayments refused the connection", request=request)
        return httpx.Response(int(fault.kind), text="<html>Bad gateway</html>")

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.host:
            raise httpx.ConnectError(
                f"fake NOWPayments serves {self.host}, not {request.url.host}", request=request
            )
        path = request.url.path
        method = request.method
        if not path.startswith("/v1/"):
            return self._error(404, "NOT_FOUND", "Not found")
        path = path[4:]
        if method == "GET" and path == "status":
            return self._json({"message": "OK"})
        if request.headers.get("x-api-key") != self.api_key:
            return self._error(403, "INVALID_API_KEY", "Invalid api key")
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if method == "POST" and path == "auth":
            return self._auth(request)
        if method == "GET" and path == "merchant/coins":
            return self._json({"selectedCurrencies": sorted(RATES)})
        if method == "GET" and path == "min-amount":
            return self._min_amount(query)
        if method == "GET" and path == "estimate":
            return self._estimate(query)
        if method == "POST" and path == "payment":
            return self._create_payment(request)
        if method == "POST" and path == "invoice":
            return self._create_invoice(request)
        if method == "GET" and path == "payment/":
            return self._list(request, query)
        if method == "GET" and path.startswith("payment/"):
            payment = self.payments.get(path.removeprefix("payment/"))
            if payment is None:
                return self._error(404, "PAYMENT_NOT_FOUND", "Payment not found")
            return self._json(self._public(payment))
        return self._error(404, "NOT_FOUND", f"Cannot {method} /v1/{path}")

    def _body(self, request: httpx.Request) -> dict[str, Any] | None:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return None
        try:
            body = json.loads(request.content, parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _auth(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request) or {}
        if body.get("email") != self.email or body.get("password") != self.password:
            return self._error(401, "INVALID_CREDENTIALS", "Invalid email or password")
        token = "eyJ" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return self._json({"token": token})

    def _min_amount(self, query: dict[str, str]) -> httpx.Response:
        source = query.get("currency_from", "")
        target = query.get("currency_to", "")
        if source not in MIN_AMOUNTS or target not in MIN_AMOUNTS:
            return self._error(
                400, "INVALID_REQUEST_PARAMS", "currency_from/currency_to is invalid"
            )
        return self._json(
            {"currency_from": source, "currency_to": target, "min_amount": MIN_AMOUNTS[source]}
        )

    def _coins_for(self, amount: Decimal, fiat: str, coin: str) -> Decimal:
        return (amount * FIAT_TO_USD[fiat] * RATES[coin]).quantize(EIGHT)

    def _estimate(self, query: dict[str, str]) -> httpx.Response:
        try:
            amount = Decimal(query["amount"])
        except (KeyError, ArithmeticError):
            return self._error(400, "INVALID_REQUEST_PARAMS", "amount is required")
        source, target = query.get("currency_from", ""), query.get("currency_to", "")
        if source not in FIAT_TO_USD or target not in RATES:
            return self._error(400, "INVALID_REQUEST_PARAMS", "currency is not supported")
        return self._json(
            {
                "currency_from": source,
                "amount_from": amount,
                "currency_to": target,
                "estimated_amount": self._coins_for(amount, source, target),
            }
        )

    def _validate_price(self, body: dict[str, Any]) -> httpx.Response | None:
        price = body.get("price_amount")
        if not isinstance(price, Decimal) or price <= 0:
            return self._error(
                400, "INVALID_REQUEST_PARAMS", '"price_amount" must be a positive number'
            )
        if str(body.get("price_currency", "")).lower() not in FIATS:
            return self._error(400, "INVALID_REQUEST_PARAMS", '"price_currency" is not supported')
        if not body.get("order_id"):
            return self._error(400, "INVALID_REQUEST_PARAMS", '"order_id" is required by this fake')
        return None

    def _create_payment(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if body is None:
            return self._error(400, "INVALID_REQUEST_PARAMS", "body must be a JSON object")
        refused = self._validate_price(body)
        if refused is not None:
            return refused
        coin = str(body.get("pay_currency", "")).lower()
        if coin not in RATES:
            return self._error(
                400, "INVALID_REQUEST_PARAMS", f'"pay_currency" {coin!r} is not supported'
            )
        case = body.get("case")
        if case is not None and (self.host != SANDBOX_HOST or case not in CASES):
            return self._error(400, "INVALID_REQUEST_PARAMS", f'"case" {case!r} is not allowed')
        fiat = str(body["price_currency"]).lower()
        if self._coins_for(body["price_amount"], fiat, coin) < MIN_AMOUNTS[coin]:
            return self._error(400, "AMOUNT_MINIMAL_ERROR", "amountTo is too small")
        payment = self._new_payment(
            price=body["price_amount"],
            price_currency=fiat,
            pay_currency=coin,
            order_id=str(body["order_id"]),
            description=str(body.get("order_description") or ""),
            ipn_url=str(body.get("ipn_callback_url") or ""),
        )
        if case is not None:
            self.advance(
                payment["payment_id"],
                CASES[case],
                actually_paid=(
                    str((payment["pay_amount"] / 2).quantize(EIGHT))
                    if case == "partially_paid"
                    else None
                ),
            )
        # The create answer: payment_id as a string, as in NOWPayments' documented example.
        answer = {
            k: v
            for k, v in self._public(payment).items()
            if k
            not in (
                "actually_paid",
                "outcome_amount",
                "outcome_currency",
                "payin_hash",
                "payout_hash",
                "invoice_id",
            )
        }
        answer["payment_id"] = str(payment["payment_id"])
        return self._json(answer, status=201)

    def _new_payment(
        self,
        *,
        price: Decimal,
        price_currency: str,
        pay_currency: str,
        order_id: str,
        description: str,
        ipn_url: str,
        invoice_id: int | None = None,
    ) -> dict[str, Any]:
        payment_id = next(self._ids)
        now = self._now()
        payment: dict[str, Any] = {
            "payment_id": payment_id,
            "invoice_id": invoice_id,
            "payment_status": "waiting",
            "pay_address": "0x" + hashlib.sha256(f"addr{payment_id}".encode()).hexdigest()[:40],
            "payin_extra_id": None,
            "price_amount": price,
            "price_currency": price_currency,
            "pay_amount": self._coins_for(price, price_currency, pay_currency),
            "actually_paid": 0,
            "pay_currency": pay_currency,
            "order_id": order_id,
            "order_description": description,
            "ipn_callback_url": ipn_url,
            "purchase_id": str(payment_id + 1_000_000),
            "outcome_amount": None,
            "outcome_currency": pay_currency,
            "network": pay_currency,
            "payin_hash": None,
            "payout_hash": None,
            "created_at": now,
            "updated_at": now,
        }
        self.payments[str(payment_id)] = payment
        return payment

    def _public(self, payment: dict[str, Any]) -> dict[str, Any]:
        return dict(payment)

    def _create_invoice(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if body is None:
            return self._error(400, "INVALID_REQUEST_PARAMS", "body must be a JSON object")
        refused = self._validate_price(body)
        if refused is not None:
            return refused
        coin = body.get("pay_currency")
        if coin is not None and str(coin).lower() not in RATES:
            return self._error(
                400, "INVALID_REQUEST_PARAMS", f'"pay_currency" {coin!r} is not supported'
            )
        invoice_id = str(next(self._invoice_ids))
        now = self._now()
        web = "sandbox.nowpayments.io" if self.host == SANDBOX_HOST else "nowpayments.io"
        invoice = {
            "id": invoice_id,
            "token_id": secrets.token_hex(5),
            "order_id": str(body["order_id"]),
            "order_description": str(body.get("order_description") or ""),
            # Strings here, as in NOWPayments' documented invoice example.
            "price_amount": body["price_amount"],
            "price_currency": str(body["price_currency"]).lower(),
            "pay_currency": coin,
            "ipn_callback_url": str(body.get("ipn_callback_url") or ""),
            "invoice_url": f"https://{web}/payment/?iid={invoice_id}",
            "success_url": str(body.get("success_url") or ""),
            "cancel_url": str(body.get("cancel_url") or ""),
            "created_at": now,
            "updated_at": now,
        }
        self.invoices[invoice_id] = invoice
        answer = dict(invoice, price_amount=_num(invoice["price_amount"]))
        return self._json(answer)

    def _list(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return self._error(
                401, "AUTH_REQUIRED", "Authorization header is empty (Bearer JWTtoken is required)"
            )
        limit = int(query.get("limit", "10"))
        page = int(query.get("page", "0"))
        since = query.get("dateFrom", "")
        rows = [p for p in self.payments.values() if p["created_at"][:10] >= since]
        reverse = query.get("orderBy", "asc") == "desc"
        rows.sort(key=lambda p: (p["created_at"], p["payment_id"]), reverse=reverse)
        pages = max(1, -(-len(rows) // limit))
        chunk = rows[page * limit : (page + 1) * limit]
        return self._json(
            {
                "data": [self._public(p) for p in chunk],
                "limit": limit,
                "page": page,
                "pagesCount": pages,
                "total": len(rows),
            }
        )
