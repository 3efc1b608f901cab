# The fake answers in Turkish, as iyzico does (its messages use the dotless i).
# ruff: noqa: RUF001
"""A fake iyzico API for ``httpx.MockTransport``: it checks what iyzico checks.

It is written from the protocol facts (shared ``docs/providers.md`` section 3), not from
paydesk's adapter: its ``IYZWSv2`` check, response signatures and webhook signatures are
computed here independently, so the adapter cannot pass by agreeing with itself.

What it implements
------------------
* ``IYZWSv2`` authentication exactly as iyzico verifies it: the ``apiKey`` must be the known
  one, ``randomKey`` must equal the ``x-iyzi-rnd`` header, and the signature must be
  ``HMAC-SHA256(secretKey, randomKey + path-without-query + raw body bytes)``. Anything else
  is answered like iyzico does: HTTP 200 with ``status: failure`` and ``errorCode`` 1000
  ("Geçersiz imza"), or 1001 for an unknown API key.
* Checkout Form initialize (both documented paths), retrieve (signed over ``paymentStatus,
  paymentId, currency, basketId, conversationId, paidPrice, price, token`` with prices
  without trailing zeros), ``/payment/auth`` with stored cards, ``/payment/detail``,
  ``/payment/cancel`` (same day, whole payment), ``/payment/refund`` (per item) and
  ``/v2/payment/refund`` (per payment) with iyzico's rule that refunds never exceed the
  paid price, the reporting API (refunds and cancels with their ``conversationId``) and
  ``GET /payment/test``. iyzico has no idempotency key and neither has the fake: the same
  call twice charges or refunds twice.
* ``pay(token, outcome)`` plays the customer on the hosted page: ``"success"`` (fraudStatus
  1), ``"review"`` (0), ``"rejected"`` (paid, then fraudStatus -1), ``"fraud"`` (6000),
  ``"blacklist"`` (6001), ``"insufficient"`` (10051), ``"declined"`` (10005).
* ``fail(path, ...)`` injects timeouts, connection errors and HTTP 5xx, before or after the
  request takes effect (a refund that went through but whose answer was lost).
* ``webhook(...)`` builds ``X-Iyz-Signature-V3`` deliveries in the hosted-page and direct
  formats, with the scheme of the official PHP sample.

Codes iyzico's documentation does not give (a payment that is not found, a cancel after the
bank's end of day, a refund above what is left) are answered with ``FAKE_*`` codes: the
adapter must not depend on their exact values.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx

API_KEY = "sandbox-fake-api-key"
SECRET_KEY = "sandbox-fake-secret-key"
CF_PATHS = (
    "/payment/iyzipos/checkoutform/initialize/ecom",
    "/payment/iyzipos/checkoutform/initialize/auth/ecom",
)
CURRENCIES = {"TRY", "USD", "EUR", "GBP", "IRR", "NOK", "RUB", "CHF"}
SUCCESS_CARDS = {  # providers.md 3.7 (docs.iyzico.com test cards)
    "5528790000000008",
    "5890040000000016",
    "4603450000000000",
    "5400360000000003",
    "374427000000003",
}
OUTCOMES: dict[str, dict[str, Any]] = {
    "success": {"status": "SUCCESS", "fraud": 1},
    "review": {"status": "SUCCESS", "fraud": 0},
    "rejected": {"status": "SUCCESS", "fraud": -1},
    "fraud": {
        "status": "FAILURE",
        "fraud": -1,
        "error": ("6000", "FRAUD", "Ödeme fraud kontrolünden geçemedi"),
    },
    "blacklist": {
        "status": "FAILURE",
        "fraud": -1,
        "error": ("6001", "FRAUD", "Kart kara listede"),
    },
    "insufficient": {
        "status": "FAILURE",
        "fraud": 1,
        "error": ("10051", "NOT_SUFFICIENT_FUNDS", "Kart limiti yetersiz, yetersiz bakiye"),
    },
    "declined": {
        "status": "FAILURE",
        "fraud": 1,
        "error": ("10005", "DO_NOT_HONOUR", "İşlem onaylanmadı"),
    },
}
UTC = dt.UTC
BUYER_FIELDS = (
    "id",
    "name",
    "surname",
    "identityNumber",
    "email",
    "registrationAddress",
    "city",
    "country",
    "ip",
)
ADDRESS_FIELDS = ("contactName", "city", "country", "address")
ITEM_FIELDS = ("id", "name", "category1", "itemType", "price")


# -- iyzico's own computations, written out independently -------------------------------------


def plain(value: Decimal) -> str:
    """A price as iyzico signs it: no trailing zeros, no exponent."""
    return format(value.normalize(), "f")


def response_signature(secret: str, values: list[str]) -> str:
    return hmac.new(secret.encode(), ":".join(values).encode(), hashlib.sha256).hexdigest()


def webhook_signature(secret: str, parts: list[str]) -> str:
    return hmac.new(secret.encode(), (secret + "".join(parts)).encode(), hashlib.sha256).hexdigest()


class _Num:
    """A JSON number written exactly as given (iyzico sends prices as numbers)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _number(value: Decimal, style: str = "short") -> _Num:
    if style == "long":  # /payment/detail style: 1.00000000
        return _Num(format(value.quantize(Decimal("0.00000001")), "f"))
    text = plain(value)  # CF retrieve style: 20.0, 20.5
    return _Num(text if "." in text else text + ".0")


def render(data: Mapping[str, Any]) -> bytes:
    marks: dict[str, str] = {}

    def default(obj: Any) -> Any:
        if isinstance(obj, _Num):
            key = f"@@num{len(marks)}@@"
            marks[key] = obj.text
            return key
        if isinstance(obj, Decimal):
            return default(_number(obj))
        raise TypeError(type(obj))

    text = json.dumps(data, default=default, ensure_ascii=False)
    text = re.sub(r'"(@@num\d+@@)"', lambda m: marks[m.group(1)], text)
    return text.encode("utf-8")


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


# -- the fake's records ------------------------------------------------------------------------


@dataclass
class Item:
    item_id: str
    transaction_id: str
    price: Decimal
    paid_price: Decimal
    refunds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def refunded(self) -> Decimal:
        return sum((r["refundPrice"] for r in self.refunds), Decimal(0))


@dataclass
class Payment:
    payment_id: str
    conversation_id: str
    basket_id: str
    currency: str
    price: Decimal
    paid_price: Decimal
    status: str  # SUCCESS / FAILURE
    fraud: int
    items: list[Item]
    created: dt.datetime
    token: str = ""
    installment: int = 1
    error: tuple[str, str, str] | None = None
    cancels: list[dict[str, Any]] = field(default_factory=list)
    settled: bool = False  # the bank's end of day has passed: no cancel any more

    @property
    def refunded(self) -> Decimal:
        return sum((i.refunded for i in self.items), Decimal(0)) + sum(
            (c["refundPrice"] for c in self.cancels), Decimal(0)
        )


@dataclass
class Form:
    token: str
    conversation_id: str
    basket_id: str
    currency: str
    price: Decimal
    paid_price: Decimal
    items: list[dict[str, Any]]
    callback_url: str
    path: str
    body: dict[str, Any]
    payment_id: str = ""


@dataclass
class Fault:
    path: str
    kind: str  # "timeout", "connect", or an HTTP status such as "500"
    times: int = 1
    after: bool = False  # apply the request first, then lose the answer


class FakeIyzico:
    def __init__(self, *, api_key: str = API_KEY, secret_key: str = SECRET_KEY) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.payments: dict[str, Payment] = {}
        self.forms: dict[str, Form] = {}
        self.cards: dict[tuple[str, str], tuple[str, str]] = {}  # -> (number, outcome)
        self.calls: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._ids = itertools.count(22480001)
        self._tx_ids = itertools.count(27160001)
        self._refund_ids = itertools.count(900001)

    # -- test controls ------------------------------------------------------------------

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def fail(
        self, path: str, kind: str = "timeout", *, times: int = 1, after: bool = False
    ) -> None:
        self.faults.append(Fault(path, kind, times, after))

    def paths(self, method: str | None = None) -> list[str]:
        return [c["path"] for c in self.calls if method is None or c["method"] == method]

    def store_card(self, number: str = "5528790000000008", outcome: str | None = None) -> str:
        """A stored card, as ``"<cardUserKey>:<cardToken>"``."""
        outcome = outcome or ("success" if number in SUCCESS_CARDS else "declined")
        key = (f"ucs-{secrets.token_hex(6)}=", f"ct-{secrets.token_hex(6)}=")
        self.cards[key] = (number, outcome)
        return f"{key[0]}:{key[1]}"

    def pay(self, token: str, outcome: str = "success", *, installment_fee: str = "0") -> str:
        """The customer finishes the hosted page; returns the new paymentId."""
        form = self.forms[token]
        fee = Decimal(installment_fee)
        payment = self._new_payment(
            conversation_id=form.conversation_id,
            basket_id=form.basket_id,
            currency=form.currency,
            price=form.price,
            paid_price=form.paid_price + fee,
            items=form.items,
            outcome=outcome,
            token=token,
        )
        form.payment_id = payment.payment_id
        return payment.payment_id

    def seed_paid_form(
        self, conversation_id: str, amount: str, currency: str, outcome: str = "success"
    ) -> Payment:
        """A checkout form some earlier request opened, already paid (for webhook tests)."""
        token = f"seeded-{secrets.token_hex(8)}"
        price = Decimal(amount)
        self.forms[token] = Form(
            token=token,
            conversation_id=conversation_id,
            basket_id=conversation_id,
            currency=currency,
            price=price,
            paid_price=price,
            items=[{"id": conversation_id, "price": amount}],
            callback_url="https://shop.example/callback/",
            path=CF_PATHS[0],
            body={},
        )
        return self.payments[self.pay(token, outcome)]

    def approve(self, payment_id: str) -> None:
        self.payments[payment_id].fraud = 1

    def reject(self, payment_id: str) -> None:
        self.payments[payment_id].fraud = -1

    def settle(self, payment_id: str) -> None:
        """The bank's end of day passes: the payment is from yesterday and cannot be
        cancelled any more, only refunded."""
        payment = self.payments[payment_id]
        payment.settled = True
        payment.created -= dt.timedelta(days=1)

    def payment_for(self, conversation_id: str) -> Payment:
        found = [p for p in self.payments.values() if p.conversation_id == conversation_id]
        assert found, f"no fake payment for {conversation_id}"
        return found[-1]

    def webhook(
        self,
        payment: Payment,
        *,
        fmt: str = "hpp",
        event_type: str | None = None,
        status: str | None = None,
        secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A ``X-Iyz-Signature-V3`` delivery about ``payment``, as iyzico sends it."""
        secret = secret or self.secret_key
        status = status or payment.status
        payload: dict[str, Any] = {
            "paymentConversationId": payment.conversation_id,
            "merchantId": "fake-merchant-1",
            "status": status,
            "iyziReferenceCode": f"ref-{payment.payment_id}",
            "iyziEventTime": int(time.time() * 1000),
            "iyziPaymentId": int(payment.payment_id),
        }
        if fmt == "hpp":
            payload["iyziEventType"] = event_type or "CHECKOUT_FORM_AUTH"
            payload["token"] = payment.token
            parts = [
                payload["iyziEventType"],
                str(payload["iyziPaymentId"]),
                payment.token,
                payment.conversation_id,
                status,
            ]
        else:
            payload["iyziEventType"] = event_type or "API_AUTH"
            payload["paymentId"] = int(payment.payment_id)
            parts = [payload["iyziEventType"], payment.payment_id, payment.conversation_id, status]
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Iyz-Signature-V3": webhook_signature(secret, parts),
        }
        return body, headers

    # -- internals ----------------------------------------------------------------------

    def _new_payment(
        self,
        *,
        conversation_id: str,
        basket_id: str,
        currency: str,
        price: Decimal,
        paid_price: Decimal,
        items: list[dict[str, Any]],
        outcome: str,
        token: str = "",
    ) -> Payment:
        spec = OUTCOMES[outcome]
        scale = paid_price / price if price else Decimal(1)
        records = [
            Item(
                item_id=str(i["id"]),
                transaction_id=str(next(self._tx_ids)),
                price=_dec(i["price"]),
                paid_price=(_dec(i["price"]) * scale).quantize(Decimal("0.01")),
            )
            for i in items
        ]
        payment = Payment(
            payment_id=str(next(self._ids)),
            conversation_id=conversation_id,
            basket_id=basket_id,
            currency=currency,
            price=price,
            paid_price=paid_price,
            status=spec["status"],
            fraud=spec["fraud"],
            items=records,
            created=dt.datetime.now(UTC),
            token=token,
            error=spec.get("error"),
        )
        self.payments[payment.payment_id] = payment
        return payment

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def _ok(self, request_body: Mapping[str, Any], **data: Any) -> dict[str, Any]:
        out = {
            "status": "success",
            "locale": request_body.get("locale", "tr"),
            "systemTime": self._now_ms(),
        }
        if request_body.get("conversationId") is not None:
            out["conversationId"] = request_body["conversationId"]
        out.update(data)
        return out

    def _fail(
        self, request_body: Mapping[str, Any], code: str, message: str, group: str | None = None
    ) -> dict[str, Any]:
        out = {
            "status": "failure",
            "errorCode": code,
            "errorMessage": message,
            "locale": request_body.get("locale", "tr"),
            "systemTime": self._now_ms(),
        }
        if group:
            out["errorGroup"] = group
        if request_body.get("conversationId") is not None:
            out["conversationId"] = request_body["conversationId"]
        return out

    def _check_auth(self, request: httpx.Request, body: bytes) -> dict[str, Any] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("IYZWSv2 "):
            return self._fail({}, "1000", "Geçersiz imza")
        try:
            decoded = base64.b64decode(header[len("IYZWSv2 ") :], validate=True).decode()
            fields = dict(part.split(":", 1) for part in decoded.split("&"))
        except ValueError:
            return self._fail({}, "1000", "Geçersiz imza")
        if fields.get("apiKey") != self.api_key:
            return self._fail({}, "1001", "api bilgileri bulunamadı")
        rnd = request.headers.get("x-iyzi-rnd", "")
        if fields.get("randomKey") != rnd or not rnd:
            return self._fail({}, "1000", "Geçersiz imza")
        expected = hmac.new(
            self.secret_key.encode(),
            rnd.encode() + request.url.path.encode() + body,
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, fields.get("signature", "")):
            return self._fail({}, "1000", "Geçersiz imza")
        return None

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.path == path and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    @staticmethod
    def _raise_or_respond(fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("fake iyzico: read timed out", request=request)
        if fault.kind == "connect":
            raise httpx.ConnectError("fake iyzico: connection refused", request=request)
        return httpx.Response(int(fault.kind), text="<html>upstream error</html>")

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        path = request.url.path
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.calls.append(
            {"method": request.method, "path": path, "body": parsed, "query": request.url.query}
        )
        fault = self._take_fault(path)
        if fault is not None and not fault.after:
            return self._raise_or_respond(fault, request)
        failure = self._check_auth(request, body)
        if failure is not None:
            return httpx.Response(200, content=render(failure))
        data = self._route(
            request.method, path, parsed if isinstance(parsed, dict) else {}, request
        )
        if fault is not None:  # applied; the answer is lost on the way back
            return self._raise_or_respond(fault, request)
        return httpx.Response(
            200, content=render(data), headers={"Content-Type": "application/json"}
        )

    def _route(
        self, method: str, path: str, body: dict[str, Any], request: httpx.Request
    ) -> dict[str, Any]:
        if method == "GET" and path == "/payment/test":
            return {"status": "success", "locale": "tr", "systemTime": self._now_ms()}
        if method == "GET" and path == "/v2/reporting/payment/details":
            query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
            return self._reporting(query)
        if method != "POST":
            return self._fail(body, "11", "Geçersiz istek")
        routes = {
            "/payment/iyzipos/checkoutform/auth/ecom/detail": self._cf_retrieve,
            "/payment/auth": self._auth,
            "/payment/detail": self._detail,
            "/payment/cancel": self._cancel,
            "/payment/refund": self._refund_item,
            "/v2/payment/refund": self._refund_v2,
        }
        if path in CF_PATHS:
            return self._cf_initialize(body, path)
        if path in routes:
            return routes[path](body)
        return self._fail(body, "11", f"Geçersiz istek: {path}")

    # -- validation shared by initialize and auth ----------------------------------------

    def _validate_order(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        for name in ("conversationId", "price", "paidPrice", "currency", "basketId"):
            if body.get(name) in (None, ""):
                return self._fail(body, "24", f"{name} gönderilmesi zorunludur")
        if body["currency"] not in CURRENCIES:
            return self._fail(body, "11", "Geçersiz para birimi")
        buyer = body.get("buyer") or {}
        for name in BUYER_FIELDS:
            if not buyer.get(name):
                return self._fail(body, "24", f"buyer.{name} gönderilmesi zorunludur")
        for name in ADDRESS_FIELDS:
            if not (body.get("billingAddress") or {}).get(name):
                return self._fail(body, "24", f"billingAddress.{name} gönderilmesi zorunludur")
        items = body.get("basketItems") or []
        if not items:
            return self._fail(body, "24", "basketItems gönderilmesi zorunludur")
        for item in items:
            for name in ITEM_FIELDS:
                if item.get(name) in (None, ""):
                    return self._fail(body, "24", f"basketItems.{name} gönderilmesi zorunludur")
            if item["itemType"] == "PHYSICAL":
                for name in ADDRESS_FIELDS:
                    if not (body.get("shippingAddress") or {}).get(name):
                        return self._fail(body, "24", "shippingAddress gönderilmesi zorunludur")
            if _dec(item["price"]) <= 0:
                return self._fail(body, "11", "Sepet tutarı 0'dan büyük olmalıdır")
        if sum(_dec(i["price"]) for i in items) != _dec(body["price"]):
            return self._fail(body, "11", "Sepetteki ürünlerin toplamı price ile eşit olmalıdır")
        return None

    def _cf_initialize(self, body: dict[str, Any], path: str) -> dict[str, Any]:
        problem = self._validate_order(body)
        if problem:
            return problem
        callback = str(body.get("callbackUrl") or "")
        if not callback.startswith(("http://", "https://")):
            return self._fail(body, "23", "Callback URL gönderilmesi zorunludur")
        token = secrets.token_hex(16)
        token = f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:]}"
        self.forms[token] = Form(
            token=token,
            conversation_id=str(body["conversationId"]),
            basket_id=str(body["basketId"]),
            currency=body["currency"],
            price=_dec(body["price"]),
            paid_price=_dec(body["paidPrice"]),
            items=list(body["basketItems"]),
            callback_url=callback,
            path=path,
            body=body,
        )
        return self._ok(
            body,
            token=token,
            checkoutFormContent=f'<script type="text/javascript">/* {token} */</script>',
            tokenExpireTime=1800,
            paymentPageUrl=f"https://sandbox-cpp.iyzipay.com?token={token}&lang=tr",
            payWithIyzicoPageUrl=f"https://sandbox-ode.iyzico.com/?token={token}&lang=tr",
            signature=response_signature(self.secret_key, [str(body["conversationId"]), token]),
        )

    def _payment_fields(self, payment: Payment, style: str) -> dict[str, Any]:
        return {
            "price": _number(payment.price, style),
            "paidPrice": _number(payment.paid_price, style),
            "installment": payment.installment,
            "paymentId": payment.payment_id,
            "fraudStatus": payment.fraud,
            "merchantCommissionRate": _number(Decimal(0), style),
            "iyziCommissionFee": _number(Decimal("0.25"), style),
            "cardType": "CREDIT_CARD",
            "cardAssociation": "MASTER_CARD",
            "cardFamily": "Bonus",
            "binNumber": "552879",
            "lastFourDigits": "0008",
            "basketId": payment.basket_id,
            "currency": payment.currency,
            "itemTransactions": [
                {
                    "itemId": item.item_id,
                    "paymentTransactionId": item.transaction_id,
                    "transactionStatus": 2,
                    "price": _number(item.price, style),
                    "paidPrice": _number(item.paid_price, style),
                }
                for item in payment.items
            ],
            "authCode": "123456",
            "phase": "AUTH",
            "hostReference": f"mock{payment.payment_id}",
        }

    def _cf_retrieve(self, body: dict[str, Any]) -> dict[str, Any]:
        form = self.forms.get(str(body.get("token")))
        if form is None:
            return self._fail(body, "FAKE_NOT_FOUND", "Token bulunamadı")
        if not form.payment_id:  # the customer is still on the page
            return self._ok(body, token=form.token, callbackUrl=form.callback_url)
        payment = self.payments[form.payment_id]
        data = self._ok(body, **self._payment_fields(payment, "short"))
        data.update(
            token=form.token,
            callbackUrl=form.callback_url,
            paymentStatus=payment.status,
            mdStatus=1,
        )
        if payment.error:
            data.update(
                errorCode=payment.error[0],
                errorGroup=payment.error[1],
                errorMessage=payment.error[2],
            )
        data["signature"] = response_signature(
            self.secret_key,
            [
                payment.status,
                payment.payment_id,
                payment.currency,
                payment.basket_id,
                str(body.get("conversationId", "")),
                plain(payment.paid_price),
                plain(payment.price),
                form.token,
            ],
        )
        return data

    def _signed_api(self, body: Mapping[str, Any], payment: Payment) -> dict[str, Any]:
        data = self._ok(body, **self._payment_fields(payment, "long"))
        if payment.status != "SUCCESS":
            data["paymentStatus"] = payment.status
            if payment.error:
                data.update(
                    errorCode=payment.error[0],
                    errorGroup=payment.error[1],
                    errorMessage=payment.error[2],
                )
        data["signature"] = response_signature(
            self.secret_key,
            [
                payment.payment_id,
                payment.currency,
                payment.basket_id,
                str(body.get("conversationId", "")),
                plain(payment.paid_price),
                plain(payment.price),
            ],
        )
        return data

    def _auth(self, body: dict[str, Any]) -> dict[str, Any]:
        problem = self._validate_order(body)
        if problem:
            return problem
        card = body.get("paymentCard") or {}
        stored = self.cards.get((card.get("cardUserKey"), card.get("cardToken")))
        if stored is None:
            return self._fail(body, "12", "Kart numarası geçersiz")
        outcome = stored[1]
        spec = OUTCOMES[outcome]
        if spec["status"] == "FAILURE":
            code, group, message = spec["error"]
            return self._fail(body, code, message, group)
        payment = self._new_payment(
            conversation_id=str(body["conversationId"]),
            basket_id=str(body["basketId"]),
            currency=body["currency"],
            price=_dec(body["price"]),
            paid_price=_dec(body["paidPrice"]),
            items=list(body["basketItems"]),
            outcome=outcome,
        )
        return self._signed_api(body, payment)

    def _find(self, body: Mapping[str, Any]) -> Payment | None:
        if body.get("paymentId"):
            return self.payments.get(str(body["paymentId"]))
        matches = [
            p
            for p in self.payments.values()
            if p.conversation_id == str(body.get("paymentConversationId"))
        ]
        succeeded = [p for p in matches if p.status == "SUCCESS"]
        return (succeeded or matches or [None])[-1]

    def _detail(self, body: dict[str, Any]) -> dict[str, Any]:
        payment = self._find(body)
        if payment is None:
            return self._fail(body, "FAKE_NOT_FOUND", "Ödeme bulunamadı")
        return self._signed_api(body, payment)

    def _cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        payment = self.payments.get(str(body.get("paymentId")))
        if payment is None or payment.status != "SUCCESS":
            return self._fail(body, "FAKE_NOT_FOUND", "Ödeme bulunamadı")
        if payment.cancels:
            return self._fail(body, "FAKE_ALREADY_CANCELLED", "Ödeme daha önce iptal edilmiş")
        if payment.settled or payment.refunded:
            return self._fail(
                body, "FAKE_CANNOT_CANCEL", "Gün sonu geçtiği için iptal edilemez, iade yapınız"
            )
        payment.cancels.append(
            {
                "refundId": next(self._refund_ids),
                "cancelConversationId": body.get("conversationId"),
                "refundPrice": payment.paid_price,
                "refundStatus": 1,
                "isAfterSettlement": False,
                "createdDate": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "currencyCode": payment.currency,
            }
        )
        return self._ok(
            body,
            paymentId=payment.payment_id,
            price=_number(payment.paid_price),
            currency=payment.currency,
            authCode="654321",
            hostReference=f"cancel{payment.payment_id}",
        )

    def _record_refund(self, item: Item, amount: Decimal, conversation_id: Any) -> None:
        item.refunds.append(
            {
                "refundTxId": next(self._refund_ids),
                "refundConversationId": conversation_id,
                "refundPrice": amount,
                "refundStatus": 1,
                "isAfterSettlement": False,
                "createdDate": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "currencyCode": "",
            }
        )

    def _refund_item(self, body: dict[str, Any]) -> dict[str, Any]:
        tx = str(body.get("paymentTransactionId"))
        for payment in self.payments.values():
            for item in payment.items:
                if item.transaction_id != tx:
                    continue
                if payment.status != "SUCCESS" or payment.cancels:
                    return self._fail(body, "FAKE_NOT_REFUNDABLE", "İade edilemez")
                amount = _dec(body.get("price", 0))
                if amount <= 0 or amount > item.paid_price - item.refunded:
                    return self._fail(
                        body, "FAKE_REFUND_EXCEEDS", "İade tutarı kalan tutardan büyük olamaz"
                    )
                self._record_refund(item, amount, body.get("conversationId"))
                return self._ok(
                    body,
                    paymentId=payment.payment_id,
                    paymentTransactionId=tx,
                    price=_number(amount),
                    currency=payment.currency,
                    hostReference=f"refund{tx}",
                )
        return self._fail(body, "FAKE_NOT_FOUND", "Ödeme kırılımı bulunamadı")

    def _refund_v2(self, body: dict[str, Any]) -> dict[str, Any]:
        payment = self.payments.get(str(body.get("paymentId")))
        if payment is None or payment.status != "SUCCESS" or payment.cancels:
            return self._fail(body, "FAKE_NOT_REFUNDABLE", "İade edilemez")
        amount = _dec(body.get("price", 0))
        if amount <= 0 or amount > payment.paid_price - payment.refunded:
            return self._fail(
                body, "FAKE_REFUND_EXCEEDS", "İade tutarı kalan tutardan büyük olamaz"
            )
        left = amount
        for item in payment.items:  # iyzico picks the items; the fake fills them in order
            part = min(left, item.paid_price - item.refunded)
            if part > 0:
                self._record_refund(item, part, body.get("conversationId"))
                left -= part
        return self._ok(
            body,
            paymentId=payment.payment_id,
            price=_number(amount),
            currency=payment.currency,
            hostReference=f"refund{payment.payment_id}",
        )

    def _reporting(self, query: Mapping[str, str]) -> dict[str, Any]:
        if "paymentId" in query:
            found = [p for p in self.payments.values() if p.payment_id == query["paymentId"]]
        else:
            found = [
                p
                for p in self.payments.values()
                if p.conversation_id == query.get("paymentConversationId")
            ]
        payments = []
        for p in found:
            refunded = p.refunded
            payments.append(
                {
                    "paymentId": int(p.payment_id),
                    "paymentStatus": 1 if p.status == "SUCCESS" else 0,
                    "paymentRefundStatus": (
                        "NOT_REFUNDED"
                        if not refunded
                        else "TOTALLY_REFUNDED"
                        if refunded >= p.paid_price
                        else "PARTIALLY_REFUNDED"
                    ),
                    "price": _Num(plain(p.price)),
                    "paidPrice": _Num(plain(p.paid_price)),
                    "installment": p.installment,
                    "paymentConversationId": p.conversation_id,
                    "fraudStatus": p.fraud,
                    "basketId": p.basket_id,
                    "currency": p.currency,
                    "createdDate": p.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "cancels": [
                        {**c, "refundPrice": _Num(plain(c["refundPrice"]))} for c in p.cancels
                    ],
                    "itemTransactions": [
                        {
                            "itemId": i.item_id,
                            "paymentTransactionId": int(i.transaction_id),
                            "transactionStatus": 2,
                            "price": _Num(plain(i.price)),
                            "paidPrice": _Num(plain(i.paid_price)),
                            "refunds": [
                                {
                                    **r,
                                    "refundPrice": _Num(plain(r["refundPrice"])),
                                    "currencyCode": p.currency,
                                }
                                for r in i.refunds
                            ],
                        }
                        for i in p.items
                    ],
                }
            )
        return {
            "status": "success",
            "locale": "tr",
            "systemTime": self._now_ms(),
            "payments": payments,
        }
