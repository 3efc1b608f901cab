"""The NOWPayments adapter: crypto payments priced in fiat, over an injected ``httpx`` client.

This module owns one decision: which NOWPayments calls stand behind each paydesk operation.
Each operation is written once as a generator that yields the ``Call`` objects it needs and
receives their ``Reply``; the shared drivers (``.._http``) run the same generator over an
``httpx.Client`` or an ``httpx.AsyncClient``, so the async twins are natively async.

=======================  =====================================================================
create_payment           ``POST /v1/invoice`` (hosted page; the default) or ``POST /v1/payment``
                         (direct: paydesk shows the deposit address)
confirm_payment          ``GET /v1/payment/{id}`` (id known, or ``NP_id`` on the return URL)
get_payment_status       ``GET /v1/payment/{id}``; without an id, the payments list searched
                         for ``order_id`` (needs ``EMAIL``/``PASSWORD`` for the list's JWT)
minimum_amount           ``GET /v1/min-amount``
estimate                 ``GET /v1/estimate``
health_check             ``GET /v1/merchant/coins`` (proves the API key)
create_refund            refused: NOWPayments' API has no refunds (see ``refund_instructions``)
=======================  =====================================================================

The ``payment_method_token`` chooses the flow (documented in docs/providers/nowpayments.md):
``""`` -> the configured default (``MODE_INVOICE``), ``"invoice"`` or ``"invoice:<coin>"`` ->
a hosted invoice, ``"<coin>"`` (e.g. ``"btc"``) -> a direct payment in that coin, and in
sandbox mode ``"<coin>:<case>"`` also sends NOWPayments' sandbox ``case`` (e.g. ``success``).

NOWPayments has no idempotency header. A repeated create with the same idempotency key in
this process returns the first payment (a bounded in-memory memo); before a *new attempt*
re-creates a payment, and when a status is asked for a payment whose create answer was lost,
the payments list is searched for ``order_id`` (the paydesk payment id) so a payment that
already exists is found instead of created twice.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from django.urls import reverse

from ...conf import paydesk_settings
from ...exceptions import (
    ConfigurationError,
    NotSupported,
    ProviderAuthenticationError,
    ProviderError,
    ProviderProcessingError,
    ProviderRequestError,
    ProviderUnavailable,
)
from ...money import Money
from ...security.signatures import NowPaymentsVerifier, get_header
from ...types import (
    Capability,
    ConfirmRequest,
    HealthResult,
    InboundWebhook,
    PaymentEvent,
    PaymentRequest,
    PaymentResult,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
    WebhookEffect,
)
from .._http import HttpTransport
from ..base import (
    TEST_WEBHOOK_DESCRIPTION,
    TEST_WEBHOOK_EVENT_TYPE,
    PaymentProvider,
    sample_webhook_body,
)
from . import wire
from .wire import Call, Reply

__all__ = ["NowPaymentsProvider"]

T = TypeVar("T")
Operation = Generator[Call, Reply, T]

_DEFAULTS: dict[str, Any] = {
    "MODE": "sandbox",
    "MODE_INVOICE": True,
    "PAY_CURRENCY": "",
    "TIMEOUT": 30,
    "LOOKUP_DAYS": 2,
    "LOOKUP_PAGES": 5,
    "JWT_TTL": 240,
}
_COIN = re.compile(r"[a-z0-9]{2,20}")
_MEMO_SIZE = 1024
# Order in which a lookup by order_id prefers a payment: money received first.
_PREFERENCE = {
    "finished": 0,
    "sending": 1,
    "confirmed": 1,
    "confirming": 1,
    "partially_paid": 1,
    "waiting": 2,
}
_DEAD = frozenset({"failed", "expired", "refunded", "cancelled"})


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


class _Transport(HttpTransport[Call, Reply]):
    """NOWPayments' side of a call: JSON with the ``x-api-key`` header."""

    def __init__(self, *, alias: str, base_url: str, api_key: str, **clients: Any) -> None:
        super().__init__(**clients)
        self.alias = alias
        self.base_url = base_url
        self.api_key = api_key

    def build(self, call: Call) -> httpx.Request:
        headers = {"x-api-key": self.api_key, "Accept": "application/json", "User-Agent": "paydesk"}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        headers.update(call.headers)
        return httpx.Request(
            call.method,
            self.base_url + call.path,
            params=dict(call.params) or None,
            content=wire.dumps(call.body) if call.body is not None else None,
            headers=headers,
        )

    def read(self, call: Call, response: httpx.Response) -> Reply:
        return Reply.read(response, wire.loads)

    def transport_error(self, call: Call, exc: httpx.HTTPError) -> ProviderUnavailable:
        unknown = (
            " The outcome is unknown: sync the payment before retrying."
            if call.method == "POST"
            else ""
        )
        return ProviderUnavailable(
            f"NOWPayments did not answer {call.method} /{call.path} "
            f"({type(exc).__name__}).{unknown}",
            provider=self.alias,
            provider_code=type(exc).__name__,
        )


class NowPaymentsProvider(PaymentProvider):
    """NOWPayments: the customer pays in crypto a price set in the merchant's fiat currency."""

    display_name = "NOWPayments"
    return_params = frozenset({"NP_id"})
    icon = "bitcoin"
    capabilities = frozenset({Capability.WEBHOOKS, Capability.SYNC, Capability.HOSTED_CHECKOUT})
    webhook_signature_header = "x-nowpayments-sig"
    webhook_signature_algorithm = "HMAC-SHA512 (sorted JSON)"
    webhook_secret_option = "IPN_SECRET"
    required_options = ("API_KEY",)
    default_webhook_ip_allowlist = wire.NOTIFIER_IPS
    refund_instructions = (
        "NOWPayments' API offers no refunds: return the money by hand, either by asking "
        "NOWPayments support to refund the payment from your dashboard (it then reports "
        "'refunded') or by sending a payout to the customer's own wallet address from the "
        "dashboard's Payouts section; note what you did in the payment's order."
    )

    def __init__(
        self,
        *,
        alias: str,
        options: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(alias=alias, options=options)
        mode = str(self._option("MODE")).strip().lower()
        if mode not in ("sandbox", "live"):
            raise ConfigurationError(
                f"NOWPayments OPTIONS['MODE'] = {mode!r}; use 'sandbox' or 'live' (or set "
                "OPTIONS['BASE_URL'])."
            )
        self.mode = mode
        default_base = wire.LIVE_BASE_URL if mode == "live" else wire.SANDBOX_BASE_URL
        self.base_url = str(self.options.get("BASE_URL") or default_base).rstrip("/") + "/"
        self.invoice_mode = _as_bool(self._option("MODE_INVOICE"))
        self.pay_currency = str(self._option("PAY_CURRENCY") or "").strip().lower()
        self.timeout = float(self._option("TIMEOUT"))
        self._http = _Transport(
            alias=alias,
            base_url=self.base_url,
            api_key=str(self.options.get("API_KEY") or ""),
            timeout=self.timeout,
            client=http_client or self.options.get("HTTP_CLIENT"),
            async_client=async_http_client or self.options.get("ASYNC_HTTP_CLIENT"),
        )
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._jwt: tuple[str, float] | None = None

    def _option(self, name: str) -> Any:
        value = self.options.get(name)
        return _DEFAULTS[name] if value is None else value

    # -- configuration -------------------------------------------------------------------

    def configuration_problems(self) -> list[str]:
        problems = super().configuration_problems()
        if not (self.options.get("IPN_SECRET") or self.options.get("IPN_SECRETS")):
            # Worded with WEBHOOK_SECRET so `manage.py check` reports it as paydesk.W002.
            problems.append(
                "OPTIONS['IPN_SECRET'] is not set (NOWPayments' WEBHOOK_SECRET, generated in "
                "the dashboard's payment settings)"
            )
        if not (
            paydesk_settings.PUBLIC_BASE_URL
            or self.options.get("PUBLIC_BASE_URL")
            or self.options.get("IPN_CALLBACK_URL")
        ):
            problems.append(
                "PAYDESK['PUBLIC_BASE_URL'] is not set, so no ipn_callback_url or return URL "
                "can be sent to NOWPayments"
            )
        return problems

    @property
    def can_lookup(self) -> bool:
        """Whether payments can be found by ``order_id`` (the list endpoint needs a JWT)."""
        return bool(self.options.get("EMAIL") and self.options.get("PASSWORD"))

    def _absolute(self, option: str, path: str, payment_id: str) -> str:
        configured = self.options.get(option)
        if configured:
            return str(configured).replace("{payment_id}", payment_id)
        base = self.options.get("PUBLIC_BASE_URL") or paydesk_settings.PUBLIC_BASE_URL
        if not base:
            raise ProviderRequestError(
                f"NOWPayments needs absolute URLs: set PAYDESK['PUBLIC_BASE_URL'] (or this "
                f"provider's OPTIONS['PUBLIC_BASE_URL'] or [{option!r}]), then retry the payment.",
                provider=self.alias,
                code="invalid_request",
                provider_code="paydesk_configuration",
            )
        return str(base).rstrip("/") + path

    def _ipn_url(self, payment_id: str) -> str:
        return self._absolute(
            "IPN_CALLBACK_URL", reverse("paydesk:webhook", args=[self.alias]), payment_id
        )

    def _return_url(self, option: str, payment_id: str) -> str:
        return self._absolute(
            option, reverse("paydesk:payment-return", args=[payment_id]), payment_id
        )

    # -- transport -----------------------------------------------------------------------

    def _async_client(self) -> httpx.AsyncClient:
        return self._http.async_client

    def _run(self, operation: Operation[T]) -> T:
        return self._http.run(operation)

    async def _arun(self, operation: Operation[T]) -> T:
        return await self._http.arun(operation)

    def _error(self, reply: Reply, action: str) -> ProviderError:
        data = reply.data if isinstance(reply.data, dict) else {}
        code = str(data.get("code") or "")
        message = str(data.get("message") or reply.text or f"HTTP {reply.status}")
        said = f"NOWPayments could not {action}: {message}"
        if reply.status in (401, 403):
            return ProviderAuthenticationError(
                f"{said}. Check OPTIONS['API_KEY'] (and EMAIL/PASSWORD for the payments list), "
                f"and that MODE ({self.mode}) matches the key: sandbox keys only work on "
                "api-sandbox.nowpayments.io.",
                provider=self.alias,
                provider_code=code or str(reply.status),
            )
        if reply.status == 429:
            return ProviderUnavailable(
                f"{said}. Rate limited; retry later.",
                provider=self.alias,
                code="rate_limited",
                provider_code=code or "429",
            )
        if reply.status >= 500:
            return ProviderUnavailable(
                f"{said}. NOWPayments is unavailable (HTTP {reply.status}); retry later.",
                provider=self.alias,
                provider_code=code or str(reply.status),
            )
        return ProviderRequestError(
            f"{said}.", provider=self.alias, provider_code=code or str(reply.status)
        )

    def _ok(self, reply: Reply, action: str) -> dict[str, Any]:
        if not 200 <= reply.status < 300:
            raise self._error(reply, action)
        if not isinstance(reply.data, dict):
            raise ProviderProcessingError(
                f"NOWPayments answered {action} with something that is not a JSON object.",
                provider=self.alias,
                provider_code=str(reply.status),
                retryable=True,
            )
        return reply.data

    # -- memo (same key in this process -> same payment) ---------------------------------

    def _recall(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._memo.get(key)
            if entry is not None:
                self._memo.move_to_end(key)
            return entry

    def _remember(self, key: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self._memo[key] = entry
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)

    # -- shared steps --------------------------------------------------------------------

    def _bearer(self) -> Operation[dict[str, str]]:
        with self._lock:
            cached = self._jwt
        if cached is not None and cached[1] > self._clock():
            return {"Authorization": f"Bearer {cached[0]}"}
        reply = yield Call(
            "POST",
            "auth",
            body={"email": self.options.get("EMAIL"), "password": self.options.get("PASSWORD")},
        )
        token = str(
            self._ok(reply, "sign in for the payments list (EMAIL/PASSWORD)").get("token") or ""
        )
        if not token:
            raise ProviderAuthenticationError(
                "NOWPayments returned no token for OPTIONS['EMAIL']/['PASSWORD'].",
                provider=self.alias,
            )
        with self._lock:
            self._jwt = (token, self._clock() + float(self._option("JWT_TTL")))
        return {"Authorization": f"Bearer {token}"}

    def _find_by_order(self, order_id: str) -> Operation[dict[str, Any] | None]:
        """The most advanced NOWPayments payment whose ``order_id`` is ``order_id``."""
        headers = yield from self._bearer()
        since = dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC) - dt.timedelta(
            days=int(self._option("LOOKUP_DAYS"))
        )
        found: list[dict[str, Any]] = []
        for page in range(int(self._option("LOOKUP_PAGES"))):
            reply = yield Call(
                "GET",
                "payment/",
                params={
                    "limit": "100",
                    "page": str(page),
                    "sortBy": "created_at",
                    "orderBy": "desc",
                    "dateFrom": since.date().isoformat(),
                },
                headers=headers,
            )
            data = self._ok(reply, "list payments")
            items = data.get("data") or []
            found.extend(
                item
                for item in items
                if isinstance(item, dict) and str(item.get("order_id")) == order_id
            )
            if page + 1 >= int(data.get("pagesCount") or 0) or not items:
                break
        if not found:
            return None
        ranked = sorted(
            enumerate(found),
            key=lambda pair: (_PREFERENCE.get(str(pair[1].get("payment_status")), 3), pair[0]),
        )
        return ranked[0][1]

    def _get_payment(self, payment_id: str) -> Operation[dict[str, Any] | None]:
        reply = yield Call("GET", f"payment/{payment_id}")
        if reply.status == 404:
            return None
        return self._ok(reply, f"read payment {payment_id}")

    def _status_from(self, data: dict[str, Any] | None) -> PaymentResult:
        if data is None:
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        return wire.result_from_payment(data)

    # -- create ----------------------------------------------------------------------------

    def _plan(self, token: str) -> tuple[str, str, str]:
        """``(kind, pay_currency, sandbox_case)`` for a payment method token."""
        token = token.strip()
        head, _, tail = token.partition(":")
        head = head.strip().lower()
        if not token:
            kind, coin, case = (
                ("invoice" if self.invoice_mode else "payment"),
                self.pay_currency,
                "",
            )
        elif head == "invoice":
            kind, coin, case = "invoice", tail.strip().lower() or self.pay_currency, ""
        else:
            kind, coin, case = "payment", head, tail.strip()
        if coin and not _COIN.fullmatch(coin):
            raise ProviderRequestError(
                f"{token!r} is not a NOWPayments payment method: use '', 'invoice', "
                "'invoice:<coin>' or a coin code such as 'btc' (see the provider's docs).",
                provider=self.alias,
                provider_code="unknown_token",
            )
        if kind == "payment" and not coin:
            raise ProviderRequestError(
                "A direct NOWPayments payment needs the coin the customer pays with: pass it "
                "as the payment method token (e.g. 'btc') or set OPTIONS['PAY_CURRENCY'].",
                provider=self.alias,
                provider_code="pay_currency_missing",
            )
        if case and self.mode != "sandbox":
            raise ProviderRequestError(
                f"The token {token!r} names a sandbox case, which live mode does not have; "
                "pass the coin alone.",
                provider=self.alias,
                provider_code="sandbox_case_in_live_mode",
            )
        return kind, coin, case

    def _body(self, request: PaymentRequest, kind: str, coin: str, case: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "price_amount": request.amount.amount,  # a JSON number with the Decimal's digits
            "price_currency": request.amount.currency.lower(),
            "order_id": request.payment_id,
            "order_description": (request.description or f"Payment {request.payment_id}")[:255],
            "ipn_callback_url": self._ipn_url(request.payment_id),
        }
        if coin:
            body["pay_currency"] = coin
        if kind == "invoice":
            body["success_url"] = self._return_url("SUCCESS_URL", request.payment_id)
            body["cancel_url"] = self._return_url("CANCEL_URL", request.payment_id)
        if case:
            body["case"] = case
        for option, name in (
            ("FIXED_RATE", "is_fixed_rate"),
            ("FEE_PAID_BY_USER", "is_fee_paid_by_user"),
        ):
            if self.options.get(option) is not None:
                body[name] = _as_bool(self.options[option])
        return body

    def _create(self, request: PaymentRequest) -> Operation[PaymentResult]:
        kind, coin, case = self._plan(request.payment_method_token)
        remembered = self._recall(request.idempotency_key)
        if remembered is not None:
            if remembered["kind"] == "invoice":
                return wire.result_from_invoice(remembered["data"])
            data = yield from self._get_payment(remembered["id"])
            if data is not None:
                return wire.result_from_payment(data)
        if request.attempt > 1 and self.can_lookup:
            # Guard before re-creating: an earlier attempt's payment that is still alive (or
            # already paid) for this order is the answer, not a second payment.
            existing = yield from self._find_by_order(request.payment_id)
            if (
                existing is not None
                and str(existing.get("payment_status")) not in _DEAD
                and wire.decimal(existing.get("price_amount")) == request.amount.amount
            ):
                self._remember(
                    request.idempotency_key, {"kind": "payment", "id": str(existing["payment_id"])}
                )
                return wire.result_from_payment(existing)
        body = self._body(request, kind, coin, case)
        reply = yield Call("POST", kind, body=body)
        data = self._ok(reply, f"create the {kind}")
        if kind == "invoice":
            if not data.get("invoice_url"):
                raise ProviderProcessingError(
                    "NOWPayments created an invoice without an invoice_url.",
                    provider=self.alias,
                    provider_code="invoice_url_missing",
                )
            self._remember(request.idempotency_key, {"kind": "invoice", "data": data})
            return wire.result_from_invoice(data)
        if not data.get("payment_id"):
            raise ProviderProcessingError(
                "NOWPayments created a payment without a payment_id.",
                provider=self.alias,
                provider_code="payment_id_missing",
            )
        self._remember(request.idempotency_key, {"kind": "payment", "id": str(data["payment_id"])})
        return wire.result_from_payment(data)

    def _status(
        self, payment_id: str, provider_payment_id: str, key: str
    ) -> Operation[PaymentResult]:
        ppid = provider_payment_id
        if not ppid:
            remembered = self._recall(key)
            if remembered is not None and remembered["kind"] == "payment":
                ppid = remembered["id"]
        if ppid:
            data = yield from self._get_payment(ppid)
            return self._status_from(data)
        if self.can_lookup:
            found = yield from self._find_by_order(payment_id)
            return self._status_from(found)
        return PaymentResult(status=ProviderStatus.NOT_FOUND)

    def _confirm(self, request: ConfirmRequest) -> Operation[PaymentResult]:
        np_id = str(request.params.get("NP_id") or "").strip()
        if not request.provider_payment_id and np_id.isdigit():
            # NOWPayments appends NP_id to the success URL; it is the customer's claim, so it
            # counts only if that payment is really for this order.
            data = yield from self._get_payment(np_id)
            if data is not None and str(data.get("order_id")) == request.payment_id:
                return wire.result_from_payment(data)
        create_key = request.idempotency_key.removesuffix(":confirm") + ":create"
        return (
            yield from self._status(request.payment_id, request.provider_payment_id, create_key)
        )

    # -- operations ----------------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return self._run(self._create(request))

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        return await self._arun(self._create(request))

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        return self._run(self._confirm(request))

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return await self._arun(self._confirm(request))

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        return self._run(
            self._status(request.payment_id, request.provider_payment_id, request.idempotency_key)
        )

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        return await self._arun(
            self._status(request.payment_id, request.provider_payment_id, request.idempotency_key)
        )

    def create_refund(self, request: RefundRequest) -> RefundResult:
        raise NotSupported(
            f"Provider {self.alias!r} (NOWPayments) cannot refund through its API. "
            f"{self.refund_instructions}"
        )

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        return self.create_refund(request)

    # -- lookups -------------------------------------------------------------------------

    def _min_amount(self, currency_from: str, currency_to: str | None) -> Operation[Decimal]:
        source = currency_from.strip().lower()
        reply = yield Call(
            "GET",
            "min-amount",
            params={
                "currency_from": source,
                "currency_to": (currency_to or source).strip().lower(),
            },
        )
        value = wire.decimal(self._ok(reply, "read the minimum amount").get("min_amount"))
        if value is None:
            raise ProviderProcessingError(
                "NOWPayments answered min-amount without a min_amount.", provider=self.alias
            )
        return value

    def _estimate(
        self, amount: Money | Decimal | str | int, currency_from: str | None, currency_to: str
    ) -> Operation[Decimal]:
        if isinstance(amount, Money):
            value, source = amount.amount, currency_from or amount.currency
        else:
            if isinstance(amount, float | bool):
                raise TypeError("estimate() takes a Decimal, str or int amount, never a float")
            value, source = Decimal(str(amount)), currency_from or ""
        if not source:
            raise ValueError("estimate() needs currency_from unless the amount is a Money")
        reply = yield Call(
            "GET",
            "estimate",
            params={
                "amount": format(value, "f"),
                "currency_from": source.lower(),
                "currency_to": currency_to.lower(),
            },
        )
        estimated = wire.decimal(self._ok(reply, "estimate the price").get("estimated_amount"))
        if estimated is None:
            raise ProviderProcessingError(
                "NOWPayments answered estimate without an estimated_amount.", provider=self.alias
            )
        return estimated

    def minimum_amount(self, currency_from: str, currency_to: str | None = None) -> Decimal:
        """The smallest ``currency_from`` amount NOWPayments accepts (``currency_to``: what you
        receive, by default the same coin), exact."""
        return self._run(self._min_amount(currency_from, currency_to))

    async def minimum_amount_async(
        self, currency_from: str, currency_to: str | None = None
    ) -> Decimal:
        return await self._arun(self._min_amount(currency_from, currency_to))

    def estimate(
        self,
        amount: Money | Decimal | str | int,
        currency_to: str,
        *,
        currency_from: str | None = None,
    ) -> Decimal:
        """How much ``currency_to`` NOWPayments estimates for ``amount`` (e.g. a fiat price in
        BTC: ``estimate(Money("19.99", "USD"), "btc")``), exact."""
        return self._run(self._estimate(amount, currency_from, currency_to))

    async def estimate_async(
        self,
        amount: Money | Decimal | str | int,
        currency_to: str,
        *,
        currency_from: str | None = None,
    ) -> Decimal:
        return await self._arun(self._estimate(amount, currency_from, currency_to))

    def health_check(self) -> HealthResult:
        problems = super().configuration_problems()
        if problems:
            return HealthResult(ok=False, detail="; ".join(problems))
        started = time.monotonic()
        try:
            reply = self._http.send(Call("GET", "merchant/coins"))
            self._ok(reply, "list the merchant's coins")
        except ProviderError as exc:
            return HealthResult(ok=False, detail=exc.message)
        elapsed = (time.monotonic() - started) * 1000
        return HealthResult(
            ok=True, detail=f"{self.mode} API key accepted", response_time_ms=elapsed
        )

    # -- webhooks (IPN) ------------------------------------------------------------------

    def _verifier(self) -> NowPaymentsVerifier:
        # ConfigurationError without a secret: the pipeline answers 503 and NOWPayments retries.
        secrets = self.options.get("IPN_SECRETS") or self.options.get("IPN_SECRET") or ""
        return NowPaymentsVerifier(secrets)

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
        """Check ``x-nowpayments-sig``; the body must be a JSON object (it is what is signed)."""
        self._verifier().verify_request(body, headers)
        payload = wire.loads(body)
        signature = get_header(headers, self.webhook_signature_header) or ""
        if "payment_id" in payload and "payment_status" in payload:
            return InboundWebhook(
                event_id=wire.event_id(payload),
                event_type=f"payment.{payload['payment_status']}",
                payload=payload,
                signature=signature,
            )
        # Payout (withdrawal) IPNs and anything else: stored and ignored.
        ident = payload.get("id") or payload.get("batch_withdrawal_id") or ""
        status = payload.get("status") or payload.get("payment_status") or ""
        return InboundWebhook(
            event_id=f"other:{ident}:{status}:{payload.get('updated_at', '')}",
            event_type=f"other.{status}".rstrip("."),
            payload=payload,
            signature=signature,
        )

    def test_webhook_unavailable(self) -> str:
        if self.options.get("IPN_SECRETS") or self.options.get("IPN_SECRET"):
            return ""
        return (
            "no IPN secret is configured to sign with: set OPTIONS['IPN_SECRET'] to the one "
            "generated in NOWPayments' dashboard (Settings, Payments, Instant payment "
            "notifications)."
        )

    def build_test_webhook(self, *, event_id: str) -> tuple[dict[str, str], bytes]:
        """An IPN that names no payment (``status`` is paydesk's test type): stored as
        ``other.paydesk.test_webhook`` and ignored, like a payout IPN."""
        body = sample_webhook_body(
            {
                "id": event_id,
                "status": TEST_WEBHOOK_EVENT_TYPE,
                "description": TEST_WEBHOOK_DESCRIPTION,
                "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            }
        )
        return self.sign_webhook(body), body

    def sign_webhook(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """``x-nowpayments-sig`` over ``body`` (the scheme signs no timestamp)."""
        problem = self.test_webhook_unavailable()
        if problem:
            raise NotSupported(problem)
        signature = self._verifier().sign(body)
        return {"Content-Type": "application/json", self.webhook_signature_header: signature}

    def parse_webhook(self, event: InboundWebhook) -> list[WebhookEffect]:
        """A payment IPN becomes a ``PaymentEvent``; ``waiting`` (the state paydesk recorded
        when it created the payment) and non-payment IPNs change nothing."""
        payload = event.payload
        if not isinstance(payload, dict) or not event.event_type.startswith("payment."):
            return []
        if str(payload.get("payment_status")) == "waiting":
            return []
        result = wire.result_from_payment(payload)
        return [
            PaymentEvent(
                result=result,
                payment_id=str(payload.get("order_id") or ""),
                provider_payment_id=result.provider_payment_id,
            )
        ]
