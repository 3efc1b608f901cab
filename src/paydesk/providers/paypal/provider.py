"""The PayPal adapter: Orders v2 and Payments v2 over an injected ``httpx`` client.

This module owns one decision: the order of PayPal calls behind each paydesk operation, and
how each call is sent (token, ``PayPal-Request-Id``, retries). Each operation is written once
as a generator that yields the ``Call`` objects it needs and receives their JSON; the shared
drivers (``.._http``) execute the same generator over an ``httpx.Client`` or an
``httpx.AsyncClient``, so the async twins are natively async without a second copy of the
logic. The retry policy of one request is written once the same way (``_retrying``).

Operations and their calls:

=======================  ==========================================================================
create_payment           ``POST /v2/checkout/orders`` (intent CAPTURE or AUTHORIZE)
confirm_payment          ``GET`` the order; if the buyer approved it, ``POST .../capture`` or
                         ``.../authorize`` (``PayPal-Request-Id`` derived from the order id)
capture_payment          ``GET`` the order, ``POST /v2/payments/authorizations/{id}/capture``
cancel_payment           ``GET`` the order; ``POST /v2/payments/authorizations/{id}/void`` for an
                         authorization, a local cancellation for an order never completed
get_payment_status       ``GET /v2/checkout/orders/{id}``
create_refund            ``GET`` the order, ``POST /v2/payments/captures/{id}/refund``
get_refund_status        ``GET /v2/payments/refunds/{id}`` when paydesk has the refund id; else
                         ``GET`` the order and match its refunds' ``custom_id`` (reconciliation)
list_payment_refunds     ``GET`` the order: ``purchase_units[].payments.refunds`` (reconciliation)
=======================  ==========================================================================

``provider_payment_id`` is always the PayPal *order* id; the authorization and capture ids
are read from the order when a later call needs them (one extra ``GET``, and nothing
paydesk stores can go stale).

The two reconciliation reads are read-only. Payments v2 has no endpoint that lists a
capture's refunds (a capture only links to its ``refund`` action) and no lookup of a refund
by ``PayPal-Request-Id``; what Orders v2 documents instead is the order's payment collection,
``purchase_units[].payments.refunds``: every refund of the order's captures, including those
made in PayPal's dashboard. Each refund paydesk makes carries paydesk's refund id as its
``custom_id``, so a refund whose answer was lost is found there (and one PayPal never
received is ``not_found``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ...conf import paydesk_settings
from ...exceptions import (
    ConfigurationError,
    ProviderAuthenticationError,
    ProviderError,
    ProviderProcessingError,
    ProviderRequestError,
)
from ...money import PAYPAL_RULES
from ...types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    HealthResult,
    InboundWebhook,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderRefund,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
    WebhookEffect,
)
from .._http import PerLoop, PerLoopAsyncClients, adrive, drive
from ..base import PaymentProvider
from . import webhooks, wire
from .wire import Call

__all__ = ["PayPalProvider"]

T = TypeVar("T")
Operation = Generator[Call, Any, T]

_DEFAULTS: dict[str, Any] = {
    "MODE": "sandbox",
    "TIMEOUT": 30,
    "MAX_RETRIES": 2,
    "RETRY_BACKOFF": 0.5,
    "RETRY_MAX_DELAY": 10,
    "TOKEN_REFRESH_MARGIN": 60,
    "WEBHOOK_VERIFICATION": "offline",
    "WEBHOOK_TOLERANCE": 300,
    "CAPTURE_ON_APPROVAL": True,
    "SHIPPING_PREFERENCE": "NO_SHIPPING",
}
_MAX_CERT_BYTES = 256 * 1024
_UNSETTLED_KEPT = 1024  # create bodies kept for a same-id replay while the outcome is unknown


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # on the provider's monotonic clock


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


class PayPalProvider(PaymentProvider):
    """PayPal Checkout (Orders v2) with capture, authorization, refunds and webhooks."""

    display_name = "PayPal"
    icon = "paypal"
    capabilities = frozenset(
        {
            Capability.CAPTURE,
            Capability.PARTIAL_CAPTURE,
            Capability.CANCEL,
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.MULTIPLE_REFUNDS,
            Capability.WEBHOOKS,
            Capability.SYNC,
            Capability.HOSTED_CHECKOUT,
        }
    )
    currency_rules = PAYPAL_RULES
    webhook_signature_header = "PAYPAL-TRANSMISSION-SIG"
    webhook_signature_algorithm = "SHA256withRSA"
    required_options = ("CLIENT_ID", "CLIENT_SECRET")

    def __init__(
        self,
        *,
        alias: str,
        options: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        cert_fetcher: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(alias=alias, options=options)
        mode = str(self._option("MODE")).strip().lower()
        if mode not in wire.API_BASES:
            raise ConfigurationError(
                f"PayPal OPTIONS['MODE'] = {mode!r}; use 'sandbox' or 'live' "
                "(or set OPTIONS['BASE_URL'])."
            )
        self.mode = mode
        self.base_url = str(self.options.get("BASE_URL") or wire.API_BASES[mode]).rstrip("/")
        verification = str(self._option("WEBHOOK_VERIFICATION")).strip().lower()
        if verification not in ("offline", "online"):
            raise ConfigurationError(
                f"PayPal OPTIONS['WEBHOOK_VERIFICATION'] = {verification!r}; use 'offline' "
                "(certificate check, no API call) or 'online' (PayPal's verify API)."
            )
        self.webhook_verification = verification
        self._http_client = http_client or self.options.get("HTTP_CLIENT")
        self._owns_http_client = self._http_client is None
        self._async_http_client = async_http_client or self.options.get("ASYNC_HTTP_CLIENT")
        self._owned_async = PerLoopAsyncClients(lambda: httpx.AsyncClient(timeout=self._timeout()))
        self._cert_fetcher = cert_fetcher or self.options.get("WEBHOOK_CERT_FETCHER")
        self._clock = clock or time.monotonic
        self.wall_clock = wall_clock or time.time
        self._sleep = sleep or time.sleep
        self._async_sleep = async_sleep or asyncio.sleep
        self._token: _Token | None = None
        self._lock = threading.Lock()  # guards the lazy sync client and the verifier
        self._token_lock = threading.Lock()
        self._async_token_locks = PerLoop(asyncio.Lock)  # an asyncio.Lock is bound to its loop
        self._verifier: Any = None
        self._unsettled: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: Token requests this instance made (for health pages and tests).
        self.token_fetches = 0

    # -- configuration -------------------------------------------------------------------

    def _option(self, name: str) -> Any:
        value = self.options.get(name)
        return _DEFAULTS.get(name) if value is None else value

    def _number(self, name: str) -> float:
        value = self._option(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"PayPal OPTIONS[{name!r}] = {value!r} must be a number."
            ) from None
        if number < 0:
            raise ConfigurationError(f"PayPal OPTIONS[{name!r}] must not be negative.")
        return number

    def configuration_problems(self) -> list[str]:
        problems = super().configuration_problems()
        if not self.options.get("WEBHOOK_ID"):
            problems.append("OPTIONS['WEBHOOK_ID'] is not set")
        return problems

    @property
    def capture_on_approval(self) -> bool:
        return _as_bool(self._option("CAPTURE_ON_APPROVAL"))

    def webhook_ids(self) -> list[str]:
        configured = self.options.get("WEBHOOK_ID")
        if not configured:
            return []
        return [configured] if isinstance(configured, str) else [str(v) for v in configured]

    def webhook_tolerance(self) -> int | None:
        value = self.options.get("WEBHOOK_TOLERANCE", _DEFAULTS["WEBHOOK_TOLERANCE"])
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        return int(self._number("WEBHOOK_TOLERANCE"))

    def trusted_roots(self) -> list[Any] | None:
        """``WEBHOOK_TRUSTED_ROOTS`` (PEM text, a PEM file path, or a list of either)."""
        configured = self.options.get("WEBHOOK_TRUSTED_ROOTS")
        if not configured:
            return None
        from cryptography import x509

        items = [configured] if isinstance(configured, str | bytes) else list(configured)
        roots: list[Any] = []
        for item in items:
            if isinstance(item, x509.Certificate):
                roots.append(item)
                continue
            pem = item.encode() if isinstance(item, str) else bytes(item)
            if b"-----BEGIN" not in pem:
                try:
                    pem = Path(pem.decode()).read_bytes()
                except OSError as exc:
                    raise ConfigurationError(
                        f"PayPal OPTIONS['WEBHOOK_TRUSTED_ROOTS']: cannot read {item!r} ({exc}); "
                        "give PEM text or the path of a PEM file."
                    ) from exc
            try:
                roots.extend(x509.load_pem_x509_certificates(pem))
            except ValueError as exc:
                raise ConfigurationError(
                    f"PayPal OPTIONS['WEBHOOK_TRUSTED_ROOTS'] holds no readable PEM certificate "
                    f"({exc})."
                ) from exc
        return roots

    # -- clients -------------------------------------------------------------------------

    def _timeout(self) -> httpx.Timeout:
        seconds = self._number("TIMEOUT")
        return httpx.Timeout(seconds, connect=min(seconds, 10.0))

    @property
    def http_client(self) -> httpx.Client:
        client = self._http_client
        if client is None:
            with self._lock:
                if self._http_client is None:
                    self._http_client = httpx.Client(timeout=self._timeout())
                client = self._http_client
        return client

    def async_http_client(self) -> httpx.AsyncClient:
        """The injected ``httpx.AsyncClient``, or one per running event loop."""
        if self._async_http_client is not None:
            return self._async_http_client
        return self._owned_async.get()

    def close(self) -> None:
        """Close the sync client if this instance built it (an injected one is yours)."""
        with self._lock:
            client, owned = self._http_client, self._owns_http_client
            if owned:
                self._http_client = None
        if client is not None and owned:
            client.close()

    async def aclose(self) -> None:
        """Close the async client this instance built for the running event loop."""
        client = self._owned_async.pop()
        if client is not None:
            await client.aclose()

    # -- token ---------------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str]:
        client_id = self.options.get("CLIENT_ID")
        secret = self.options.get("CLIENT_SECRET")
        if not client_id or not secret:
            missing = "CLIENT_ID" if not client_id else "CLIENT_SECRET"
            raise ProviderAuthenticationError(
                f"PayPal OPTIONS[{missing!r}] is not set: copy the REST app's client id and "
                "secret from developer.paypal.com (Apps & Credentials) into the provider's "
                "OPTIONS.",
                provider=self.alias,
                code="provider_authentication",
            )
        return str(client_id), str(secret)

    def _token_request(self) -> dict[str, Any]:
        client_id, secret = self._credentials()
        return {
            "url": f"{self.base_url}/v1/oauth2/token",
            "data": {"grant_type": "client_credentials"},
            "auth": (client_id, secret),
            "headers": {"Accept": "application/json", "Accept-Language": "en_US"},
        }

    def _store_token(self, response: httpx.Response) -> _Token:
        try:
            body = response.json()
            value = str(body["access_token"])
            expires_in = float(body.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise ProviderProcessingError(
                "PayPal's token endpoint answered without an access_token.",
                provider=self.alias,
                code="processing_error",
            ) from None
        margin = min(self._number("TOKEN_REFRESH_MARGIN"), expires_in / 2)
        token = _Token(value=value, refresh_at=self._clock() + expires_in - margin)
        self._token = token
        self.token_fetches += 1
        return token

    def _valid(self, token: _Token | None, stale: str | None) -> bool:
        return token is not None and token.value != stale and self._clock() < token.refresh_at

    def access_token(self, *, stale: str | None = None) -> str:
        """A valid bearer token; ``stale`` names one PayPal just refused (refreshed once)."""
        token = self._token
        if self._valid(token, stale):
            assert token is not None
            return token.value
        with self._token_lock:  # concurrent callers wait here and fetch one token
            token = self._token
            if self._valid(token, stale):
                assert token is not None
                return token.value
            response = self._with_retries(
                lambda: self.http_client.post(**self._token_request()), what="token request"
            )
            return self._store_token(response).value

    async def access_token_async(self, *, stale: str | None = None) -> str:
        token = self._token
        if self._valid(token, stale):
            assert token is not None
            return token.value
        async with self._async_token_locks.get():
            token = self._token
            if self._valid(token, stale):
                assert token is not None
                return token.value
            client = self.async_http_client()
            request = self._token_request()
            response = await self._with_retries_async(
                lambda: client.post(**request), what="token request"
            )
            return self._store_token(response).value

    # -- sending -------------------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        cap = self._number("RETRY_MAX_DELAY")
        hinted = wire.retry_after_seconds(response)
        if hinted is not None:
            return min(hinted, cap)
        return min(self._number("RETRY_BACKOFF") * 2 ** (attempt - 1), cap)

    def _check(self, response: httpx.Response, what: str) -> ProviderError | None:
        if response.is_success:
            return None
        error = wire.error_from_response(response, provider=self.alias)
        if what == "token request" and response.status_code in (400, 401):
            # The token endpoint answers invalid_client with 401 (bad secret), 400 otherwise.
            error = ProviderAuthenticationError(
                f"PayPal refused the client credentials ({error.provider_code}): check "
                "CLIENT_ID / CLIENT_SECRET and that MODE matches them (sandbox or live).",
                provider=self.alias,
                code="provider_authentication",
                provider_code=error.provider_code,
                request_id=error.request_id,
            )
        return error

    def _retrying(self, what: str) -> Generator[float | None, Any, httpx.Response]:
        """PayPal's retry policy for one request, written once for both clients.

        Yields ``None`` for "send the request now" (and receives the response, or has the
        httpx error thrown in) and a number of seconds for "wait this long first".
        """
        retries = int(self._number("MAX_RETRIES"))
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = yield None
            except httpx.HTTPError as exc:
                error: ProviderError | None = wire.transport_error(
                    exc, provider=self.alias, what=what
                )
            else:
                error = self._check(response, what)
                if error is None or (response.status_code == 401 and what != "token request"):
                    return response
            assert error is not None
            if not error.retryable or attempt >= retries:
                raise error
            attempt += 1
            yield self._delay(attempt, response)

    def _with_retries(self, send: Callable[[], httpx.Response], *, what: str) -> httpx.Response:
        def step(wait: float | None) -> httpx.Response | None:
            return send() if wait is None else self._sleep(wait)

        return drive(self._retrying(what), step, throws=httpx.HTTPError)

    async def _with_retries_async(
        self, send: Callable[[], Awaitable[httpx.Response]], *, what: str
    ) -> httpx.Response:
        async def step(wait: float | None) -> httpx.Response | None:
            if wait is None:
                return await send()
            await self._async_sleep(wait)
            return None

        return await adrive(self._retrying(what), step, throws=httpx.HTTPError)

    def _request_kwargs(self, call: Call, token: str) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
        }
        if call.method != "GET":
            headers["Content-Type"] = "application/json"
            headers["Prefer"] = "return=representation"
        if call.request_id:
            headers["PayPal-Request-Id"] = call.request_id
        kwargs: dict[str, Any] = {
            "method": call.method,
            "url": f"{self.base_url}{call.path}",
            "headers": headers,
        }
        if call.method != "GET":
            kwargs["json"] = call.body if call.body is not None else {}
        return kwargs

    def _reply(self, response: httpx.Response, call: Call) -> Any:
        if response.status_code == 401:
            raise self._check(response, call.path) or ProviderAuthenticationError(
                "PayPal refused the access token.", provider=self.alias
            )
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ProviderProcessingError(
                f"PayPal answered {call.method} {call.path} with a body that is not JSON.",
                provider=self.alias,
                code="processing_error",
                request_id=response.headers.get("PayPal-Debug-Id"),
            ) from None

    def send(self, call: Call) -> Any:
        """Execute one call: bearer token, retries, a token refresh on the first 401."""
        token = self.access_token()
        response = self._with_retries(
            lambda: self.http_client.request(**self._request_kwargs(call, token)), what=call.path
        )
        if response.status_code == 401:
            token = self.access_token(stale=token)
            response = self._with_retries(
                lambda: self.http_client.request(**self._request_kwargs(call, token)),
                what=call.path,
            )
        return self._reply(response, call)

    async def send_async(self, call: Call) -> Any:
        client = self.async_http_client()
        token = await self.access_token_async()
        response = await self._with_retries_async(
            lambda: client.request(**self._request_kwargs(call, token)), what=call.path
        )
        if response.status_code == 401:
            token = await self.access_token_async(stale=token)
            response = await self._with_retries_async(
                lambda: client.request(**self._request_kwargs(call, token)), what=call.path
            )
        return self._reply(response, call)

    def run(self, operation: Operation[T]) -> T:
        """Drive ``operation`` with the sync client (errors are thrown into it)."""
        return drive(operation, self.send)

    async def run_async(self, operation: Operation[T]) -> T:
        return await adrive(operation, self.send_async)

    # -- operations, written once --------------------------------------------------------

    def _return_urls(self, request: PaymentRequest) -> tuple[str, str]:
        """Where PayPal sends the buyer back: paydesk's return view, as an absolute URL.

        The return view (``paydesk:payment-return``) calls ``confirm_payment``, which
        captures the approved order, then redirects to ``request.return_url``. PayPal needs
        absolute URLs: the base is ``OPTIONS["PUBLIC_BASE_URL"]``, else
        ``PAYDESK["PUBLIC_BASE_URL"]``, else the origin of an absolute ``return_url``.
        """
        from django.urls import NoReverseMatch, reverse

        origin = ""
        parts = urlsplit(request.return_url or "")
        if parts.scheme in ("http", "https") and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
        base = str(
            self.options.get("PUBLIC_BASE_URL") or paydesk_settings.PUBLIC_BASE_URL or origin
        ).rstrip("/")
        try:
            path = reverse("paydesk:payment-return", args=[request.payment_id])
        except NoReverseMatch:
            path = ""
        if base and path:
            url = f"{base}{path}"
            return url, f"{url}?paypal=cancel"
        if origin:
            return request.return_url, request.return_url
        raise ProviderRequestError(
            "PayPal needs an absolute return URL: set PAYDESK['PUBLIC_BASE_URL'] (e.g. "
            "'https://shop.example.com') or pass an absolute return_url.",
            provider=self.alias,
            code="invalid_request",
            provider_code="return_url",
        )

    def _create_op(self, request: PaymentRequest) -> Operation[PaymentResult]:
        return_url, cancel_url = self._return_urls(request)
        body = wire.order_body(
            request,
            return_url=return_url,
            cancel_url=cancel_url,
            brand_name=str(self.options.get("BRAND_NAME") or ""),
            shipping_preference=str(self._option("SHIPPING_PREFERENCE")),
            locale=str(self.options.get("LOCALE") or ""),
        )
        key = request.idempotency_key
        self._remember_create(key, body)
        try:
            order = yield Call("POST", "/v2/checkout/orders", body, key)
        except ProviderError as exc:
            if not exc.retryable:
                self._forget_create(key)
            raise
        self._forget_create(key)
        return wire.order_result(order)

    # PayPal cannot look an order up by PayPal-Request-Id, so when a create's outcome is
    # unknown (timeout) the only safe way to learn it is to send the same request again
    # with the same id: PayPal answers with the first order instead of making a second one.
    # The body is kept, per idempotency key, until a definitive answer arrives.

    def _remember_create(self, key: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._unsettled[key] = body
            self._unsettled.move_to_end(key)
            while len(self._unsettled) > _UNSETTLED_KEPT:
                self._unsettled.popitem(last=False)

    def _forget_create(self, key: str) -> None:
        with self._lock:
            self._unsettled.pop(key, None)

    def _unsettled_create(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._unsettled.get(key)

    def _complete_op(self, order: Mapping[str, Any]) -> Operation[Mapping[str, Any]]:
        """Capture (intent CAPTURE) or authorize (AUTHORIZE) an approved order, once."""
        order_id = str(order["id"])
        action = "authorize" if order.get("intent") == "AUTHORIZE" else "capture"
        try:
            completed = yield Call(
                "POST",
                f"/v2/checkout/orders/{order_id}/{action}",
                {},
                wire.completion_request_id(order_id, action),
            )
        except ProviderRequestError as exc:
            if exc.provider_code not in (
                "ORDER_ALREADY_CAPTURED",
                "ORDER_ALREADY_AUTHORIZED",
                "ORDER_ALREADY_COMPLETED",
            ):
                raise
            completed = yield Call("GET", f"/v2/checkout/orders/{order_id}")
        return dict(completed)

    def _confirm_op(self, order_id: str) -> Operation[PaymentResult]:
        order = yield Call("GET", f"/v2/checkout/orders/{order_id}")
        if order.get("status") == "APPROVED":
            order = yield from self._complete_op(order)
        return wire.order_result(order)

    def _capture_op(self, request: CaptureRequest) -> Operation[PaymentResult]:
        body = {"amount": wire.amount_body(request.amount), "final_capture": True}
        order_id = request.provider_payment_id
        order = yield Call("GET", f"/v2/checkout/orders/{order_id}")
        authorizations = wire.payments_of(order).get("authorizations") or []
        if not authorizations:
            result = wire.order_result(order)
            if result.status == ProviderStatus.CAPTURED:
                return result  # captured already (intent CAPTURE): nothing to do
            raise ProviderRequestError(
                f"PayPal order {order_id} has no authorization to capture (status "
                f"{order.get('status')}); only AUTHORIZE orders the buyer approved can be "
                "captured.",
                provider=self.alias,
                code="invalid_request",
                provider_code="NO_AUTHORIZATION",
            )
        authorization = authorizations[0]
        try:
            capture = yield Call(
                "POST",
                f"/v2/payments/authorizations/{authorization['id']}/capture",
                body,
                request.idempotency_key,
            )
        except ProviderRequestError as exc:
            if exc.provider_code != "AUTHORIZATION_ALREADY_CAPTURED":
                raise
            order = yield Call("GET", f"/v2/checkout/orders/{order_id}")
            return wire.order_result(order)
        return wire.capture_result(
            capture,
            order_id=order_id,
            authorized=wire.money_of(authorization.get("amount")),
            raw={
                "order_id": order_id,
                "authorization_id": authorization["id"],
                "capture": wire.brief(capture),
            },
        )

    def _cancel_op(self, request: CancelRequest) -> Operation[PaymentResult]:
        order_id = request.provider_payment_id
        order = yield Call("GET", f"/v2/checkout/orders/{order_id}")
        payments = wire.payments_of(order)
        captures = [
            c
            for c in payments.get("captures") or []
            if c.get("status") in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED", "PENDING")
        ]
        if captures:
            raise ProviderRequestError(
                f"PayPal order {order_id} is captured; refund it instead of cancelling.",
                provider=self.alias,
                code="invalid_request",
                provider_code="ORDER_ALREADY_CAPTURED",
            )
        authorizations = payments.get("authorizations") or []
        if authorizations:
            authorization = authorizations[-1]
            if authorization.get("status") in ("CREATED", "PENDING"):
                try:
                    yield Call(
                        "POST",
                        f"/v2/payments/authorizations/{authorization['id']}/void",
                        {},
                        request.idempotency_key,
                    )
                except ProviderRequestError as exc:
                    if exc.provider_code not in ("PREVIOUSLY_VOIDED", "AUTHORIZATION_VOIDED"):
                        raise
            elif authorization.get("status") != "VOIDED":
                return wire.order_result(order)
            return PaymentResult(
                status=ProviderStatus.CANCELLED,
                provider_payment_id=order_id,
                raw={"order_id": order_id, "authorization_id": authorization["id"], "voided": True},
            )
        # Never completed: PayPal has no call to void an order (it expires on its own), so
        # paydesk stops here; the approval link must not be offered again.
        return PaymentResult(
            status=ProviderStatus.CANCELLED,
            provider_payment_id=order_id,
            raw={"order_id": order_id, "order_status": order.get("status"), "cancelled": "local"},
        )

    def _status_op(self, request: StatusRequest) -> Operation[PaymentResult]:
        if not request.provider_payment_id:
            body = self._unsettled_create(request.idempotency_key)
            if body is None:
                # Never sent from this process, or answered already: PayPal has no lookup
                # by request id, so paydesk reports what it can know (see the docs).
                return PaymentResult(status=ProviderStatus.NOT_FOUND)
            try:
                order = yield Call("POST", "/v2/checkout/orders", body, request.idempotency_key)
            except ProviderError as exc:
                if exc.retryable:
                    raise
                self._forget_create(request.idempotency_key)
                return PaymentResult(
                    status=ProviderStatus.FAILED,
                    failure=ProviderFailure(
                        code=exc.code, message=exc.message, provider_code=exc.provider_code or ""
                    ),
                    raw=exc.as_dict(),
                )
            self._forget_create(request.idempotency_key)
            return wire.order_result(order)
        try:
            order = yield Call("GET", f"/v2/checkout/orders/{request.provider_payment_id}")
        except ProviderRequestError as exc:
            if exc.provider_code not in ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"):
                raise
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        return wire.order_result(order)

    def _refund_op(self, request: RefundRequest) -> Operation[RefundResult]:
        body: dict[str, Any] = {
            "amount": wire.amount_body(request.amount),
            "custom_id": request.refund_id[:127],
        }
        if request.reason:
            body["note_to_payer"] = request.reason[:255]
        order_id = request.provider_payment_id
        order = yield Call("GET", f"/v2/checkout/orders/{order_id}")
        captures = [
            c
            for c in wire.payments_of(order).get("captures") or []
            if c.get("status") in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")
        ]
        if not captures:
            raise ProviderRequestError(
                f"PayPal order {order_id} has no completed capture to refund.",
                provider=self.alias,
                code="invalid_request",
                provider_code="NO_CAPTURE",
            )
        refund = yield Call(
            "POST",
            f"/v2/payments/captures/{captures[0]['id']}/refund",
            body,
            request.idempotency_key,
        )
        return wire.refund_result(refund)

    def _order_refunds_op(self, order_id: str) -> Operation[list[Mapping[str, Any]]]:
        """The refunds of an order's captures, as ``GET`` the order lists them."""
        order = yield Call("GET", f"/v2/checkout/orders/{order_id}")
        return [r for r in wire.payments_of(order).get("refunds") or [] if isinstance(r, Mapping)]

    def _refund_status_op(self, request: RefundRequest) -> Operation[RefundResult]:
        if request.provider_refund_id:
            try:
                refund = yield Call("GET", f"/v2/payments/refunds/{request.provider_refund_id}")
            except ProviderRequestError as exc:
                if exc.provider_code not in ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"):
                    raise
                return RefundResult(status="not_found")
            return wire.refund_result(refund)
        if not request.provider_payment_id:
            return RefundResult(status="not_found")  # no order at PayPal: nothing refunded
        custom_id = request.refund_id[:127]  # as _refund_op sends it
        for refund in (yield from self._order_refunds_op(request.provider_payment_id)):
            if refund.get("custom_id") == custom_id:
                return wire.refund_result(refund)
        return RefundResult(status="not_found")

    def _payment_refunds_op(self, request: StatusRequest) -> Operation[list[ProviderRefund]]:
        if not request.provider_payment_id:
            return []  # never reached PayPal (reconcile lists only captured payments)
        listed = []
        for refund in (yield from self._order_refunds_op(request.provider_payment_id)):
            amount = wire.money_of(refund.get("amount"))
            if amount is None:
                raise ProviderProcessingError(
                    f"PayPal listed refund {refund.get('id')!r} of order "
                    f"{request.provider_payment_id} without an amount.",
                    provider=self.alias,
                    code="processing_error",
                )
            listed.append(
                ProviderRefund(
                    provider_refund_id=str(refund.get("id", "")),
                    amount=amount,
                    status=wire.refund_result(refund).status,
                    refund_id=str(refund.get("custom_id") or ""),
                )
            )
        return listed

    # -- the provider interface ----------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return self.run(self._create_op(request))

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        return self.run(self._confirm_op(request.provider_payment_id))

    def capture_payment(self, request: CaptureRequest) -> PaymentResult:
        return self.run(self._capture_op(request))

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        return self.run(self._cancel_op(request))

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        return self.run(self._status_op(request))

    def create_refund(self, request: RefundRequest) -> RefundResult:
        return self.run(self._refund_op(request))

    def get_refund_status(self, request: RefundRequest) -> RefundResult:
        """What became of the refund ``request`` asked for; see the module docstring."""
        return self.run(self._refund_status_op(request))

    def list_payment_refunds(self, request: StatusRequest) -> Sequence[ProviderRefund]:
        """Every refund of the order's captures, dashboard refunds included."""
        return self.run(self._payment_refunds_op(request))

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        return await self.run_async(self._create_op(request))

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return await self.run_async(self._confirm_op(request.provider_payment_id))

    async def capture_payment_async(self, request: CaptureRequest) -> PaymentResult:
        return await self.run_async(self._capture_op(request))

    async def cancel_payment_async(self, request: CancelRequest) -> PaymentResult:
        return await self.run_async(self._cancel_op(request))

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        return await self.run_async(self._status_op(request))

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        return await self.run_async(self._refund_op(request))

    def health_check(self) -> HealthResult:
        """Fetch a fresh OAuth token: proves the credentials and the route to PayPal."""
        problems = super().configuration_problems()
        if problems:
            return HealthResult(ok=False, detail="; ".join(problems))
        started = time.perf_counter()
        try:
            self.access_token(stale=self._token.value if self._token else None)
        except ProviderError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthResult(ok=False, detail=exc.message, response_time_ms=elapsed)
        elapsed = (time.perf_counter() - started) * 1000
        return HealthResult(
            ok=True, detail=f"OAuth token issued ({self.mode})", response_time_ms=elapsed
        )

    # -- webhooks ------------------------------------------------------------------------

    def fetch_certificate(self, url: str) -> bytes:
        """Download PayPal's signing certificate with this instance's client (no redirects)."""
        if self._cert_fetcher is not None:
            return bytes(self._cert_fetcher(url))
        response = self.http_client.get(
            url, follow_redirects=False, headers={"Accept": "application/x-pem-file, */*"}
        )
        response.raise_for_status()
        if len(response.content) > _MAX_CERT_BYTES:
            raise ValueError(f"the certificate download is larger than {_MAX_CERT_BYTES} bytes")
        return response.content

    def verifier(self) -> Any:
        """The ``PayPalWebhookVerifier`` for this instance (its certificate cache lives here)."""
        with self._lock:
            if self._verifier is None:
                self._verifier = webhooks.build_verifier(self)
            return self._verifier

    def test_webhook_unavailable(self) -> str:
        return (
            "PayPal signs its webhooks with the private key of its own certificate "
            "(SHA256withRSA), which only PayPal holds; send a test event from PayPal's "
            "developer dashboard (Webhooks simulator) instead."
        )

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
        return webhooks.verify(self, body, headers)

    def parse_webhook(self, event: InboundWebhook) -> list[WebhookEffect]:
        return webhooks.parse(self, event)
