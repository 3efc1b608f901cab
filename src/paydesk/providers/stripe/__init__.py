"""The Stripe provider: PaymentIntents, Refunds, Customers and webhooks through stripe-python.

This module owns one decision: which Stripe API calls each paydesk operation makes, and with
which parameters. Mapping Stripe's answers onto paydesk's vocabulary is ``.mapping``'s job;
webhook events are ``.webhooks``'.

Each provider instance builds its own ``stripe.StripeClient`` on first use (never the SDK's
module globals such as ``stripe.api_key``), over its own ``stripe.HTTPXClient`` (sync and
async), so two aliases with different keys never share anything. Settings::

    "stripe": {
        "BACKEND": "paydesk.providers.stripe.StripeProvider",
        "OPTIONS": {
            "SECRET_KEY": env("PAYDESK_STRIPE_SECRET_KEY"),          # required
            "PUBLISHABLE_KEY": env("PAYDESK_STRIPE_PUBLISHABLE_KEY"),
            "WEBHOOK_SECRET": env("PAYDESK_STRIPE_WEBHOOK_SECRET"),  # or WEBHOOK_SECRETS=[...]
            # optional: API_VERSION, CAPTURE_METHOD ("automatic" | "automatic_async"),
            # BASE_ADDRESSES ({"api": "http://127.0.0.1:12111"}), MAX_NETWORK_RETRIES (2),
            # TIMEOUT (seconds, 30), WEBHOOK_TOLERANCE (seconds, 300)
        },
    }

Idempotency: every mutating call sends paydesk's deterministic key as Stripe's
``Idempotency-Key`` (the SDK's own network retries resend the same header), so a retried
charge or refund is replayed by Stripe, never repeated.

A declined card on create or confirm is an *answer*, not an error: it comes back as a
``PaymentResult`` with ``status=FAILED`` and a ``ProviderFailure`` whose ``code`` is paydesk's
(``card_declined``, ``insufficient_funds``, ``expired_card``, ...), with the PaymentIntent's id
when Stripe created one. Every other failure raises a ``ProviderError`` subclass (see
``mapping.provider_error``); ``ProviderUnavailable`` (timeouts, connection errors, 429, 5xx)
is ``retryable`` and means the outcome is unknown.

Reconciliation's optional reads are read-only ``GET`` calls: ``list_payment_refunds`` lists a
PaymentIntent's refunds (``GET /v1/refunds?payment_intent=...``, every page, following
``has_more``/``starting_after``), refunds made in the Stripe Dashboard included;
``get_refund_status`` retrieves the refund by id when paydesk has it (``GET
/v1/refunds/{id}``), otherwise finds it among the intent's refunds by the
``metadata[paydesk_refund_id]`` every paydesk refund carries (``not_found`` if none does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from django.urls import NoReverseMatch, reverse

from ...conf import paydesk_settings
from ...exceptions import ConfigurationError, ProviderError, ProviderRequestError
from ...money import STRIPE_RULES
from ...types import (
    AttachMethodRequest,
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    DetachMethodRequest,
    HealthResult,
    InboundWebhook,
    PaymentRequest,
    PaymentResult,
    ProviderRefund,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    SavedMethod,
    StatusRequest,
    WebhookEffect,
)
from .._http import adrive, drive
from ..base import PaymentProvider
from . import mapping, webhooks

__all__ = ["StripeProvider"]

T = TypeVar("T")

CAPTURE_METHODS = ("automatic", "automatic_async")
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 2
#: The most refunds one ``GET /v1/refunds`` page returns (Stripe's maximum).
LIST_PAGE_SIZE = 100
# Stripe answers these when a payment method is already detached or unknown: detaching it
# again is then done, not an error.
_ALREADY_DETACHED = frozenset({"payment_method_unexpected_state", "resource_missing"})


def _sdk() -> Any:
    try:
        import stripe
    except ImportError:  # pragma: no cover - stripe is in the [stripe] extra
        raise ConfigurationError(
            "The Stripe provider needs the stripe SDK: pip install 'django-paydesk[stripe]'."
        ) from None
    return stripe


@dataclass(frozen=True, slots=True)
class _Call:
    """One SDK call an operation asks for: ``client.v1.<service>.<method>(*args, ...)``."""

    service: str
    method: str
    args: tuple[str, ...] = ()
    params: Mapping[str, Any] | None = None
    idempotency_key: str = ""
    max_network_retries: int | None = None


# An operation is a generator that yields the calls it needs and receives each answer as a
# plain dict (or has the SDK's exception thrown into it), so the sync and async twins share
# every decision and differ only in how a call is made.
Operation = Generator[_Call, Any, T]


def _plain(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


class StripeProvider(PaymentProvider):
    display_name = "Stripe"
    # What Stripe appends when it sends the customer back after a redirect-based action.
    return_params = frozenset({"payment_intent", "payment_intent_client_secret", "redirect_status"})
    icon = "stripe"
    capabilities = frozenset(
        {
            Capability.CAPTURE,
            Capability.PARTIAL_CAPTURE,
            Capability.CANCEL,
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.MULTIPLE_REFUNDS,
            Capability.SAVED_METHODS,
            Capability.WEBHOOKS,
            Capability.SYNC,
        }
    )
    currency_rules = STRIPE_RULES
    webhook_signature_header = "Stripe-Signature"
    webhook_signature_algorithm = "HMAC-SHA256"
    webhook_secret_option = "WEBHOOK_SECRET"
    required_options: ClassVar[tuple[str, ...]] = ("SECRET_KEY",)

    def __init__(
        self,
        *,
        alias: str,
        options: Mapping[str, Any] | None = None,
        client: Any | None = None,
    ) -> None:
        """``client``: a ready ``stripe.StripeClient`` to use instead of building one."""
        super().__init__(alias=alias, options=options)
        capture_method = self.options.get("CAPTURE_METHOD") or "automatic"
        if capture_method not in CAPTURE_METHODS:
            raise ValueError(
                f"OPTIONS['CAPTURE_METHOD'] must be one of {', '.join(CAPTURE_METHODS)} "
                f"(manual capture is asked per payment with capture=False), not {capture_method!r}"
            )
        self.capture_method: str = capture_method
        retries = self.options.get("MAX_NETWORK_RETRIES")
        if retries is None or retries == "":
            retries = DEFAULT_RETRIES
        elif isinstance(retries, str) and retries.strip().isdigit():
            retries = int(retries)  # from an env() variable
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"OPTIONS['MAX_NETWORK_RETRIES'] must be an int >= 0, not {retries!r}")
        self.max_network_retries: int = retries
        self._client = client
        self._lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------

    def configuration_problems(self) -> list[str]:
        problems = super().configuration_problems()
        secret = str(self.options.get("SECRET_KEY") or "")
        publishable = str(self.options.get("PUBLISHABLE_KEY") or "")
        if secret.startswith("pk_"):
            problems.append(
                "OPTIONS['SECRET_KEY'] is a publishable key (pk_...); use the secret key "
                "(sk_... or a restricted rk_... key)"
            )
        if publishable.startswith(("sk_", "rk_")):
            problems.append(
                "OPTIONS['PUBLISHABLE_KEY'] holds a secret key; it is sent to browsers, so it "
                "must be the pk_... key"
            )
        if secret and publishable and ("_live_" in secret) != ("_live_" in publishable):
            problems.append(
                "OPTIONS['SECRET_KEY'] and OPTIONS['PUBLISHABLE_KEY'] mix live and test mode"
            )
        if not webhooks.webhook_secrets(self.options):
            problems.append("OPTIONS['WEBHOOK_SECRET'] is not set")
        return problems

    @property
    def livemode(self) -> bool:
        return "_live_" in str(self.options.get("SECRET_KEY") or "")

    def client_config(self) -> dict[str, str]:
        """What a frontend needs to load Stripe.js: the publishable key, never the secret."""
        return {
            "provider": self.alias,
            "publishable_key": str(self.options.get("PUBLISHABLE_KEY") or ""),
        }

    @property
    def client(self) -> Any:
        """This instance's ``stripe.StripeClient``, built on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        stripe = _sdk()
        secret = self.options.get("SECRET_KEY")
        if not secret:
            raise ConfigurationError(
                f"Stripe provider {self.alias!r} has no OPTIONS['SECRET_KEY']; set it (the demo "
                f"reads PAYDESK_{self.alias.upper()}_SECRET_KEY) before taking payments."
            )
        timeout = float(self.options.get("TIMEOUT") or DEFAULT_TIMEOUT)
        # The SDK's own pairing (requests for sync calls, httpx for async ones), with this
        # instance's timeout instead of the SDK's 80 s.
        http_client = stripe.RequestsClient(
            timeout=timeout, async_fallback_client=stripe.HTTPXClient(timeout=timeout)
        )
        return stripe.StripeClient(
            str(secret),
            stripe_version=self.options.get("API_VERSION") or None,
            base_addresses=dict(self.options.get("BASE_ADDRESSES") or {}),
            max_network_retries=self.max_network_retries,
            http_client=http_client,
        )

    # -- running operations --------------------------------------------------------------

    def _method(self, call: _Call, suffix: str = "") -> Any:
        client = self.client
        services = getattr(client, "v1", client)
        return getattr(getattr(services, call.service), call.method + suffix)

    @staticmethod
    def _kwargs(call: _Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if call.params is not None:
            kwargs["params"] = dict(call.params)
        options: dict[str, Any] = {}
        if call.idempotency_key:
            options["idempotency_key"] = call.idempotency_key
        if call.max_network_retries is not None:
            options["max_network_retries"] = call.max_network_retries
        if options:
            kwargs["options"] = options
        return kwargs

    def _call(self, call: _Call) -> Any:
        return _plain(self._method(call)(*call.args, **self._kwargs(call)))

    async def _acall(self, call: _Call) -> Any:
        return _plain(await self._method(call, "_async")(*call.args, **self._kwargs(call)))

    def _run(self, operation: Operation[T]) -> T:
        # The SDK's error is thrown into the operation (a decline is an answer there); one it
        # lets through becomes paydesk's.
        stripe = _sdk()
        try:
            return drive(operation, self._call, throws=stripe.StripeError)
        except stripe.StripeError as exc:
            raise mapping.provider_error(exc, alias=self.alias) from exc

    async def _arun(self, operation: Operation[T]) -> T:
        stripe = _sdk()
        try:
            return await adrive(operation, self._acall, throws=stripe.StripeError)
        except stripe.StripeError as exc:
            raise mapping.provider_error(exc, alias=self.alias) from exc

    def _declined(self, exc: Any) -> PaymentResult:
        """A card error on create/confirm as a FAILED result (or the intent's own state)."""
        error = mapping.error_body(exc)
        request_id = getattr(exc, "request_id", None) or ""
        intent = error.get("payment_intent")
        if isinstance(intent, Mapping) and intent.get("status") and "amount" in intent:
            result = mapping.intent_result(intent)
            if result.status != ProviderStatus.FAILED:
                return result
            provider_payment_id = result.provider_payment_id
        else:
            provider_payment_id = ""
        raw = {
            key: error[key]
            for key in ("type", "code", "decline_code", "message", "charge")
            if error.get(key)
        }
        return PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id=provider_payment_id,
            failure=mapping.failure_from_error(error),
            raw={**raw, "payment_intent": provider_payment_id, "request_id": request_id},
        )

    def _require_id(self, provider_payment_id: str, operation: str) -> str:
        if not provider_payment_id:
            raise ProviderRequestError(
                f"Cannot {operation} a Stripe payment without its PaymentIntent id (pi_...); "
                "the payment never reached Stripe, or sync_payment has not found it yet.",
                provider=self.alias,
                provider_code="parameter_missing",
            )
        return provider_payment_id

    # -- operations (each a generator; see _run) -----------------------------------------

    def _create_payment(self, request: PaymentRequest) -> Operation[PaymentResult]:
        stripe = _sdk()
        metadata = {key: str(value) for key, value in request.metadata.items() if value}
        metadata[webhooks.PAYMENT_ID_KEY] = request.payment_id
        metadata["paydesk_idempotency_key"] = request.idempotency_key
        params: dict[str, Any] = {
            # Converted before any call: an amount Stripe cannot take raises
            # AmountPrecisionError here (KWD 1.234), it is never rounded.
            "amount": STRIPE_RULES.to_minor_units(request.amount),
            "currency": request.amount.currency.lower(),
            "capture_method": self.capture_method if request.capture else "manual",
            "metadata": metadata,
        }
        if request.description:
            params["description"] = request.description[:1000]
        if request.customer_ref:
            params["customer"] = request.customer_ref
        if request.payment_method_token:
            params["payment_method"] = request.payment_method_token
            params["confirm"] = True
            return_url = _return_url(request)
            if return_url:
                params["return_url"] = return_url
            else:
                # Without a return URL Stripe refuses to confirm methods that redirect; cards
                # still get 3-D Secure through Stripe.js (next_action use_stripe_sdk).
                params["automatic_payment_methods"] = {
                    "enabled": True,
                    "allow_redirects": "never",
                }
        try:
            intent = yield _Call(
                "payment_intents", "create", params=params, idempotency_key=request.idempotency_key
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        return mapping.intent_result(intent)

    def _confirm_payment(self, request: ConfirmRequest) -> Operation[PaymentResult]:
        stripe = _sdk()
        intent_id = self._require_id(request.provider_payment_id, "confirm")
        payment_method = request.params.get("payment_method", "")
        try:
            if payment_method:
                params: dict[str, Any] = {"payment_method": payment_method}
                if request.params.get("return_url"):
                    params["return_url"] = request.params["return_url"]
                # A different method is a different request: its own key, still deterministic.
                key = f"{request.idempotency_key}:{payment_method}"[:255]
                intent = yield _Call(
                    "payment_intents", "confirm", (intent_id,), params, idempotency_key=key
                )
                return mapping.intent_result(intent)
            intent = yield _Call("payment_intents", "retrieve", (intent_id,))
            if intent.get("status") == "requires_confirmation":
                intent = yield _Call(
                    "payment_intents",
                    "confirm",
                    (intent_id,),
                    {},
                    idempotency_key=request.idempotency_key,
                )
        except stripe.CardError as exc:
            return self._declined(exc)
        return mapping.intent_result(intent)

    def _capture_payment(self, request: CaptureRequest) -> Operation[PaymentResult]:
        intent_id = self._require_id(request.provider_payment_id, "capture")
        params = {"amount_to_capture": STRIPE_RULES.to_minor_units(request.amount)}
        intent = yield _Call(
            "payment_intents",
            "capture",
            (intent_id,),
            params,
            idempotency_key=request.idempotency_key,
        )
        return mapping.intent_result(intent)

    def _cancel_payment(self, request: CancelRequest) -> Operation[PaymentResult]:
        intent_id = self._require_id(request.provider_payment_id, "cancel")
        params: dict[str, Any] = {}
        if request.reason in mapping.CANCELLATION_REASONS:
            params["cancellation_reason"] = request.reason
        intent = yield _Call(
            "payment_intents",
            "cancel",
            (intent_id,),
            params,
            idempotency_key=request.idempotency_key,
        )
        return mapping.intent_result(intent)

    def _get_payment_status(self, request: StatusRequest) -> Operation[PaymentResult]:
        if request.provider_payment_id:
            intent = yield _Call("payment_intents", "retrieve", (request.provider_payment_id,))
            return mapping.intent_result(intent)
        # The create call's answer was lost (timeout): find the intent by paydesk's metadata.
        # Stripe's search is eventually consistent (about a minute), within the services'
        # lease, so a fresh intent may show up on a later sync rather than this one.
        value = request.payment_id.replace("\\", "\\\\").replace("'", "\\'")
        found = yield _Call(
            "payment_intents",
            "search",
            params={"query": f"metadata['{webhooks.PAYMENT_ID_KEY}']:'{value}'", "limit": 20},
        )
        for intent in found.get("data") or []:
            metadata = intent.get("metadata") or {}
            if metadata.get("paydesk_idempotency_key") == request.idempotency_key:
                return mapping.intent_result(intent)
        return PaymentResult(status=ProviderStatus.NOT_FOUND)

    def _create_refund(self, request: RefundRequest) -> Operation[RefundResult]:
        intent_id = self._require_id(request.provider_payment_id, "refund")
        metadata = {
            webhooks.REFUND_ID_KEY: request.refund_id,
            webhooks.PAYMENT_ID_KEY: request.payment_id,
        }
        params: dict[str, Any] = {
            "payment_intent": intent_id,
            "amount": STRIPE_RULES.to_minor_units(request.amount),
            "metadata": metadata,
        }
        if request.reason in mapping.REFUND_REASONS:
            params["reason"] = request.reason
        elif request.reason:
            metadata["paydesk_reason"] = request.reason[:500]
        refund = yield _Call(
            "refunds", "create", params=params, idempotency_key=request.idempotency_key
        )
        return _refund_result(refund)

    def _list_refunds(self, params: Mapping[str, Any]) -> Operation[list[dict[str, Any]]]:
        """Every refund ``GET /v1/refunds`` lists for ``params`` (newest first), page by page."""
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            query = {**params, "limit": LIST_PAGE_SIZE}
            if after:
                query["starting_after"] = after
            page = yield _Call("refunds", "list", params=query)
            data = [dict(item) for item in page.get("data") or []]
            found.extend(data)
            if not page.get("has_more") or not data:
                return found
            after = str(data[-1]["id"])

    def _get_refund_status(self, request: RefundRequest) -> Operation[RefundResult]:
        stripe = _sdk()
        if request.provider_refund_id:
            try:
                refund = yield _Call("refunds", "retrieve", (request.provider_refund_id,))
            except stripe.InvalidRequestError as exc:
                if mapping.error_body(exc).get("code") != "resource_missing":
                    raise
                return RefundResult(status="not_found")
            return _refund_result(refund)
        if not request.provider_payment_id:
            return RefundResult(status="not_found")  # no intent at Stripe: nothing to refund
        # The create call's answer was lost: the refund, if Stripe made it, carries
        # paydesk's refund id in its metadata.
        refunds = yield from self._list_refunds({"payment_intent": request.provider_payment_id})
        for refund in refunds:
            if _refund_id_of(refund) == request.refund_id:
                return _refund_result(refund)
        return RefundResult(status="not_found")

    def _list_payment_refunds(self, request: StatusRequest) -> Operation[list[ProviderRefund]]:
        if not request.provider_payment_id:
            return []  # the payment never reached Stripe (reconcile lists only captured ones)
        refunds = yield from self._list_refunds({"payment_intent": request.provider_payment_id})
        return [
            ProviderRefund(
                provider_refund_id=str(refund["id"]),
                amount=mapping.money(refund["amount"], refund["currency"]),
                status=mapping.refund_status(refund.get("status")),
                refund_id=_refund_id_of(refund),
            )
            for refund in refunds
        ]

    def _attach(self, request: AttachMethodRequest) -> Operation[SavedMethod]:
        customer_ref = request.customer_ref
        key = request.idempotency_key
        if not customer_ref:
            params: dict[str, Any] = {"metadata": {"paydesk_user_ref": request.user_ref}}
            if request.customer.email:
                params["email"] = request.customer.email
            if request.customer.name:
                params["name"] = request.customer.name
            customer = yield _Call(
                "customers",
                "create",
                params=params,
                idempotency_key=f"{key}:customer" if key else "",
            )
            customer_ref = str(customer["id"])
        method = yield _Call(
            "payment_methods",
            "attach",
            (request.token,),
            {"customer": customer_ref},
            idempotency_key=f"{key}:attach:{customer_ref}"[:255] if key else "",
        )
        return _saved_method(method, customer_ref)

    def _detach(self, request: DetachMethodRequest) -> Operation[None]:
        stripe = _sdk()
        try:
            yield _Call("payment_methods", "detach", (request.token,), {})
        except stripe.InvalidRequestError as exc:
            if mapping.error_body(exc).get("code") not in _ALREADY_DETACHED:
                raise

    # -- the PaymentProvider interface ---------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return self._run(self._create_payment(request))

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        return self._run(self._confirm_payment(request))

    def capture_payment(self, request: CaptureRequest) -> PaymentResult:
        return self._run(self._capture_payment(request))

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        return self._run(self._cancel_payment(request))

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        return self._run(self._get_payment_status(request))

    def create_refund(self, request: RefundRequest) -> RefundResult:
        return self._run(self._create_refund(request))

    def get_refund_status(self, request: RefundRequest) -> RefundResult:
        """What became of the refund ``request`` asked for; see the module docstring."""
        return self._run(self._get_refund_status(request))

    def list_payment_refunds(self, request: StatusRequest) -> Sequence[ProviderRefund]:
        """Every refund of the payment's PaymentIntent, Dashboard refunds included."""
        return self._run(self._list_payment_refunds(request))

    def attach_payment_method(self, request: AttachMethodRequest) -> SavedMethod:
        return self._run(self._attach(request))

    def detach_payment_method(self, request: DetachMethodRequest) -> None:
        self._run(self._detach(request))

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        return await self._arun(self._create_payment(request))

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return await self._arun(self._confirm_payment(request))

    async def capture_payment_async(self, request: CaptureRequest) -> PaymentResult:
        return await self._arun(self._capture_payment(request))

    async def cancel_payment_async(self, request: CancelRequest) -> PaymentResult:
        return await self._arun(self._cancel_payment(request))

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        return await self._arun(self._get_payment_status(request))

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        return await self._arun(self._create_refund(request))

    def health_check(self) -> HealthResult:
        """``GET /v1/balance`` (read-only, no retries): are the key and the network fine?"""
        problems = [p for p in self.configuration_problems() if "SECRET_KEY" in p]
        if problems:
            return HealthResult(ok=False, detail="; ".join(problems))
        started = time.perf_counter()
        try:
            balance = self._run(_single(_Call("balance", "retrieve", max_network_retries=0)))
        except ProviderError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthResult(ok=False, detail=exc.message, response_time_ms=elapsed)
        elapsed = (time.perf_counter() - started) * 1000
        mode = "live" if balance.get("livemode") else "test"
        return HealthResult(
            ok=True, detail=f"Stripe balance read ({mode} mode)", response_time_ms=elapsed
        )

    # -- reads the webhook parser needs --------------------------------------------------

    def retrieve_intent(self, intent_id: str) -> dict[str, Any]:
        return self._run(_single(_Call("payment_intents", "retrieve", (intent_id,))))

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return self._run(_single(_Call("charges", "retrieve", (charge_id,))))

    def list_refunds(self, *, charge: str) -> list[dict[str, Any]]:
        return self._run(self._list_refunds({"charge": charge}))

    # -- webhooks ------------------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
        return webhooks.verify(self, body, headers)

    def parse_webhook(self, event: InboundWebhook) -> list[WebhookEffect]:
        return webhooks.parse(self, event)

    def test_webhook_unavailable(self) -> str:
        if webhooks.webhook_secrets(self.options):
            return ""
        return (
            "no webhook signing secret is configured to sign with: set "
            "OPTIONS['WEBHOOK_SECRET'] to the endpoint's whsec_... value from the Dashboard."
        )

    def sign_webhook(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        return webhooks.sign(self, body, timestamp)

    def build_test_webhook(self, *, event_id: str) -> tuple[dict[str, str], bytes]:
        return webhooks.test_delivery(self, event_id)


def _return_url(request: PaymentRequest) -> str:
    """Where Stripe sends the customer back after a redirect (3-D Secure, bank pages).

    With ``PAYDESK["PUBLIC_BASE_URL"]`` set, that is paydesk's return view, which asks Stripe
    for the outcome (``confirm_payment``) and then forwards to the payment's own return URL;
    otherwise the payment's return URL itself, whose view should call ``confirm_payment``.
    """
    base = paydesk_settings.PUBLIC_BASE_URL
    if not base:
        return request.return_url
    try:
        path = reverse("paydesk:payment-return", args=[request.payment_id])
    except NoReverseMatch:  # paydesk's URLs are not included
        return request.return_url
    return str(base).rstrip("/") + path


def _refund_result(refund: Mapping[str, Any]) -> RefundResult:
    return RefundResult(
        status=mapping.refund_status(refund.get("status")),
        provider_refund_id=str(refund["id"]),
        failure=mapping.refund_failure(refund),
        raw={
            key: refund.get(key)
            for key in ("id", "object", "amount", "currency", "status", "reason", "charge")
            if key in refund
        },
    )


def _refund_id_of(refund: Mapping[str, Any]) -> str:
    """paydesk's refund id from a refund's metadata ("" for one made outside paydesk)."""
    return str((refund.get("metadata") or {}).get(webhooks.REFUND_ID_KEY) or "")


def _single(call: _Call) -> Operation[Any]:
    answer = yield call
    return answer


_METHOD_TYPES = {"card": "credit_card", "paypal": "paypal", "link": "digital_wallet"}


def _saved_method(method: Mapping[str, Any], customer_ref: str) -> SavedMethod:
    card = method.get("card") or {}
    kind = str(method.get("type") or "card")
    paydesk_type = _METHOD_TYPES.get(kind, "bank_transfer" if "bank" in kind else "digital_wallet")
    if kind == "card" and card.get("funding") == "debit":
        paydesk_type = "debit_card"
    return SavedMethod(
        token=str(method["id"]),
        customer_ref=str(method.get("customer") or customer_ref),
        brand=str(card.get("brand") or ""),
        last4=str(card.get("last4") or ""),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        fingerprint=str(card.get("fingerprint") or ""),
        type=paydesk_type,
    )
