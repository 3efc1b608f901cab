"""The iyzico provider: Checkout Form payments, stored-card charges, cancel and refunds.

This module owns one decision: what each paydesk operation asks iyzico, and what iyzico's
answer means in paydesk's words. The protocol facts come from the shared notes
(``docs/providers.md`` section 3 there); the choices are documented in
``docs/providers/iyzico.md``. In short:

* ``create_payment`` without a token initializes a **Checkout Form** (hosted page):
  ``REQUIRES_ACTION`` with ``paymentPageUrl`` as the redirect, and the form's ``token`` as
  ``provider_payment_id`` for the whole life of the payment (paydesk never rewrites a
  provider id, and the ledger keys captures by it). iyzico's ``paymentId`` and the item
  ``paymentTransactionId`` values are kept in the ledger's provider data.
* with a token ``"<cardUserKey>:<cardToken>"`` (a card stored at iyzico) it charges the
  card directly (``/payment/auth``, non-3-D Secure, which iyzico must enable for the
  merchant); ``provider_payment_id`` is then the ``paymentId``. iyzico has no idempotency
  key, so before charging paydesk asks ``/payment/detail`` whether this payment
  (``conversationId`` = paydesk's payment id) was already paid.
* every answer that moves a payment is trusted only after its ``signature`` verifies;
  only ``fraudStatus`` 1 completes a payment, 0 leaves it ``processing`` (under review at
  iyzico), -1 fails it.
* ``create_refund`` cancels the whole payment on the day it was taken (``/payment/cancel``;
  it never reaches the card statement) and refunds otherwise, per payment
  (``/v2/payment/refund``) or per basket item (``/payment/refund``, ``REFUND_MODE
  "item"``). Before any of these it reads the payment's refunds and cancels from iyzico's
  reporting API and does nothing if one with this refund's ``conversationId`` is there:
  that is what makes a retry after a timeout safe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx
from asgiref.sync import sync_to_async
from django.urls import reverse

from ...conf import paydesk_settings
from ...exceptions import (
    NotSupported,
    ProviderError,
    SignatureVerificationError,
    WebhookError,
    error_for_code,
)
from ...money import ISO_RULES, Money
from ...security.signatures import IyzicoWebhookVerifier, get_header
from ...types import (
    CancelRequest,
    Capability,
    ConfirmRequest,
    HealthResult,
    InboundWebhook,
    NextAction,
    PaymentEvent,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
    WebhookEffect,
)
from ..base import (
    TEST_WEBHOOK_DESCRIPTION,
    TEST_WEBHOOK_EVENT_TYPE,
    PaymentProvider,
    sample_webhook_body,
)
from . import auth
from .client import Call, Flow, Transport
from .errors import (
    ResponseMismatchError,
    ResponseSignatureError,
    error_from_failure,
    failure_from,
    is_decline,
    taxonomy_code,
)
from .order import build_order, load_hook

__all__ = [
    "CF_INITIALIZE_PATHS",
    "CHECKOUT_FORM_TOKEN",
    "LIVE_BASE_URL",
    "PAYMENT_EVENT_TYPES",
    "SANDBOX_BASE_URL",
    "SUPPORTED_CURRENCIES",
    "IyzicoProvider",
]

#: A payment method token that asks for the hosted checkout form explicitly (the same as
#: no token at all), for callers that must always name a method.
CHECKOUT_FORM_TOKEN = "iyzico_checkout_form"
SANDBOX_BASE_URL = "https://sandbox-api.iyzipay.com"
LIVE_BASE_URL = "https://api.iyzipay.com"
#: The SDKs' path first (the default), then the one today's docs show; which one iyzico
#: considers canonical is unverified, so OPTIONS["CF_INITIALIZE_PATH"] picks.
CF_INITIALIZE_PATHS = (
    "/payment/iyzipos/checkoutform/initialize/ecom",
    "/payment/iyzipos/checkoutform/initialize/auth/ecom",
)
CF_RETRIEVE_PATH = "/payment/iyzipos/checkoutform/auth/ecom/detail"
PAYMENT_AUTH_PATH = "/payment/auth"
PAYMENT_DETAIL_PATH = "/payment/detail"
CANCEL_PATH = "/payment/cancel"
REFUND_ITEM_PATH = "/payment/refund"
REFUND_V2_PATH = "/v2/payment/refund"
REPORTING_PATH = "/v2/reporting/payment/details"
HEALTH_PATH = "/payment/test"

#: iyzico's currencies: TRY, USD, EUR, GBP, IRR (iyzipay-java ``Currency``, dev.iyzipay.com
#: "Auth"), plus NOK, RUB and CHF (PayU iyzico's currency list, a third-party page).
SUPPORTED_CURRENCIES = frozenset({"TRY", "USD", "EUR", "GBP", "IRR", "NOK", "RUB", "CHF"})

#: Webhook event types about a payment's outcome; others are stored and ignored.
PAYMENT_EVENT_TYPES = frozenset(
    {
        "CHECKOUT_FORM_AUTH",
        "PAYMENT_API",
        "API_AUTH",
        "THREE_DS_AUTH",
        "THREE_DS_CALLBACK",
        "BKM_AUTH",
        "BANK_TRANSFER_AUTH",
        "CREDIT_PAYMENT",
        "CONTACTLESS_AUTH",
    }
)
_REFUND_REASONS = {
    "requested_by_customer": "buyer_request",
    "buyer_request": "buyer_request",
    "duplicate": "double_payment",
    "double_payment": "double_payment",
    "fraudulent": "fraud",
    "fraud": "fraud",
}
#: Turkey keeps UTC+3 all year; a payment's "day" for cancel is the Istanbul calendar day.
ISTANBUL = dt.timezone(dt.timedelta(hours=3), "Europe/Istanbul")
_UNFINISHED_NOTE = (
    "The customer has not finished on iyzico's checkout page (or iyzico does not show the "
    "payment yet); nothing changes until they do."
)
_REVIEW_NOTE = (
    "iyzico holds this payment for fraud review (fraudStatus 0). It is not completed until "
    "iyzico approves it (fraudStatus 1); sync_payment or iyzico's next webhook records the "
    "decision. Do not ship yet."
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _is_payment_id(value: str) -> bool:
    """iyzico payment ids are numbers; checkout form tokens are UUIDs."""
    return value.isdigit()


def _money(value: Any, currency: str) -> Money:
    number = Decimal(_text(value))
    return ISO_RULES.from_decimal_string(format(number.normalize(), "f"), currency)


class IyzicoProvider(PaymentProvider):
    display_name = "iyzico"
    icon = "credit-card"
    capabilities = frozenset(
        {
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.MULTIPLE_REFUNDS,
            Capability.CANCEL,  # an unpaid checkout form only; see cancel_payment
            Capability.WEBHOOKS,
            Capability.SYNC,
            Capability.HOSTED_CHECKOUT,
        }
    )
    supported_currencies = SUPPORTED_CURRENCIES
    currency_rules = ISO_RULES
    webhook_signature_header = IyzicoWebhookVerifier.header
    webhook_signature_algorithm = "HMAC-SHA256"
    webhook_secret_option = "SECRET_KEY"
    required_options = ("API_KEY", "SECRET_KEY")

    #: Defaults of every option (API_KEY and SECRET_KEY have none).
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "MODE": "sandbox",
        "BASE_URL": "",
        "CF_INITIALIZE_PATH": CF_INITIALIZE_PATHS[0],
        "ENABLED_INSTALLMENTS": None,
        "LOCALE": "tr",
        "BUYER_DATA_HOOK": None,
        "BUYER_DEFAULTS": {},
        "BASKET_ITEM_TYPE": "VIRTUAL",
        "BASKET_CATEGORY": "General",
        "PAYMENT_GROUP": "PRODUCT",
        "CALLBACK_BASE_URL": "",
        "REFUND_MODE": "v2",
        "CANCEL_SAME_DAY": True,
        "REFUND_HISTORY": "reporting",
        "TIMEOUT": 30,
    }

    def __init__(
        self,
        *,
        alias: str,
        options: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(alias=alias, options=options)
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._transport: Transport | None = None
        # Refuse wrong non-secret options now (the registry reports a ConfigurationError);
        # missing credentials are only a configuration problem, reported by checks.
        mode = self.option("MODE")
        if mode not in ("sandbox", "live"):
            raise ValueError(f'OPTIONS["MODE"] must be "sandbox" or "live", not {mode!r}')
        if self.option("REFUND_MODE") not in ("v2", "item"):
            raise ValueError('OPTIONS["REFUND_MODE"] must be "v2" or "item"')
        if self.option("REFUND_HISTORY") not in ("reporting", "none"):
            raise ValueError('OPTIONS["REFUND_HISTORY"] must be "reporting" or "none"')
        if self.option("LOCALE") not in ("tr", "en"):
            raise ValueError('OPTIONS["LOCALE"] must be "tr" or "en"')
        if not str(self.option("CF_INITIALIZE_PATH")).startswith("/"):
            raise ValueError(
                'OPTIONS["CF_INITIALIZE_PATH"] must be a path such as '
                + repr(CF_INITIALIZE_PATHS[0])
            )
        if self.option("BASKET_ITEM_TYPE") not in ("PHYSICAL", "VIRTUAL"):
            raise ValueError('OPTIONS["BASKET_ITEM_TYPE"] must be "PHYSICAL" or "VIRTUAL"')
        float(self.option("TIMEOUT"))
        self._installments()

    # -- configuration -------------------------------------------------------------------

    def option(self, name: str) -> Any:
        value = self.options.get(name)
        return self.DEFAULTS.get(name) if value is None or value == "" else value

    @property
    def base_url(self) -> str:
        explicit = self.option("BASE_URL")
        if explicit:
            return str(explicit).rstrip("/")
        return LIVE_BASE_URL if self.option("MODE") == "live" else SANDBOX_BASE_URL

    @property
    def secret_key(self) -> str:
        return _text(self.options.get("SECRET_KEY"))

    def _installments(self) -> list[str] | None:
        value = self.option("ENABLED_INSTALLMENTS")
        if value is None:
            return None
        if isinstance(value, str):
            value = [part for part in value.replace(" ", "").split(",") if part]
        allowed = {"1", "2", "3", "6", "9", "12"}
        out = [str(int(v)) for v in value]
        if not out or set(out) - allowed:
            raise ValueError(
                'OPTIONS["ENABLED_INSTALLMENTS"] must list values from 1, 2, 3, 6, 9, 12'
            )
        return out

    def _callback_base(self) -> str:
        return str(self.option("CALLBACK_BASE_URL") or paydesk_settings.PUBLIC_BASE_URL or "")

    def configuration_problems(self) -> list[str]:
        problems = super().configuration_problems()
        if not self._callback_base():
            problems.append(
                "no absolute base URL for the checkout form's callbackUrl: set PAYDESK"
                '["PUBLIC_BASE_URL"] (or OPTIONS["CALLBACK_BASE_URL"])'
            )
        return problems

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = Transport(
                alias=self.alias,
                api_key=_text(self.options.get("API_KEY")),
                secret_key=self.secret_key,
                base_url=self.base_url,
                timeout=float(self.option("TIMEOUT")),
                client=self._http_client,
                async_client=self._async_http_client,
            )
        return self._transport

    def _require_credentials(self) -> None:
        missing = [n for n in self.required_options if not self.options.get(n)]
        if missing:
            raise error_for_code(
                "provider_authentication",
                f"iyzico provider {self.alias!r} has no {' or '.join(missing)}; set them in "
                'PAYDESK["PROVIDERS"][...]["OPTIONS"] (the merchant panel shows both keys).',
                provider=self.alias,
            )

    def _run(self, flow: Flow[Any]) -> Any:
        self._require_credentials()
        return self.transport.run(flow)

    async def _arun(self, flow: Flow[Any]) -> Any:
        self._require_credentials()
        return await self.transport.arun(flow)

    def _base(self, conversation_id: str) -> dict[str, Any]:
        return {"locale": self.option("LOCALE"), "conversationId": conversation_id}

    # -- reading iyzico's answers ----------------------------------------------------------

    def _check_signature(self, data: Mapping[str, Any], fields: tuple[str, ...], what: str) -> None:
        if not auth.response_signature_matches(self.secret_key, data, fields):
            raise ResponseSignatureError(
                f"iyzico's answer to {what} has a signature that does not match "
                f"({', '.join(fields)} signed with SECRET_KEY); paydesk trusts nothing in it. "
                "Check SECRET_KEY; if it is right, the answer was altered on the way.",
                provider=self.alias,
                provider_code="signature_mismatch",
            )

    def _check_identity(
        self,
        data: Mapping[str, Any],
        *,
        payment_id: str,
        amount: Money | None,
        what: str,
    ) -> None:
        problems = []
        for name in ("conversationId", "basketId"):
            if name in data and _text(data.get(name)) != payment_id:
                problems.append(f"{name} is {data.get(name)!r}, not {payment_id!r}")
        currency = _text(data.get("currency"))
        if amount is not None:
            if currency and currency != amount.currency:
                problems.append(f"currency is {currency}, not {amount.currency}")
            elif data.get("price") is not None:
                try:
                    price = _money(data["price"], amount.currency)
                except (InvalidOperation, ValueError, ProviderError) as exc:
                    problems.append(f"price {data['price']!r} is unreadable ({exc})")
                else:
                    if price != amount:
                        problems.append(f"price is {price}, not {amount}")
        if problems:
            raise ResponseMismatchError(
                f"iyzico's signed answer to {what} is about something else: "
                f"{'; '.join(problems)}. paydesk did not record it; reconcile in the "
                "merchant panel.",
                provider=self.alias,
                provider_code="mismatch",
            )

    @staticmethod
    def _raw(data: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        keep = (
            "paymentId",
            "conversationId",
            "basketId",
            "token",
            "paymentStatus",
            "fraudStatus",
            "price",
            "paidPrice",
            "currency",
            "installment",
            "phase",
            "mdStatus",
            "cardAssociation",
            "cardFamily",
            "cardType",
            "binNumber",
            "lastFourDigits",
            "authCode",
            "hostReference",
            "errorCode",
            "errorGroup",
            "errorMessage",
        )
        raw: dict[str, Any] = {"provider": "iyzico"}
        raw.update({k: data[k] for k in keep if data.get(k) not in (None, "")})
        items = data.get("itemTransactions")
        if isinstance(items, list):
            raw["itemTransactions"] = [
                {
                    k: item.get(k)
                    for k in (
                        "itemId",
                        "paymentTransactionId",
                        "price",
                        "paidPrice",
                        "transactionStatus",
                    )
                    if isinstance(item, Mapping) and item.get(k) is not None
                }
                for item in items
            ]
        raw.update({k: v for k, v in extra.items() if v not in (None, "")})
        safe: dict[str, Any] = _json_safe(raw)
        return safe

    def _interpret(
        self,
        data: Mapping[str, Any],
        *,
        source: str,
        payment_id: str,
        amount: Money | None,
        ppid: str,
    ) -> PaymentResult:
        """One answer about a payment's outcome (CF retrieve or payment detail/auth)."""
        fields = auth.CF_RETRIEVE_FIELDS if source == "cf" else auth.API_PAYMENT_FIELDS
        what = "the checkout form retrieve" if source == "cf" else "the payment detail"
        failed = _text(data.get("status")) != "success"
        payment_status = _text(data.get("paymentStatus")).upper()
        if failed:
            if not is_decline(data) and payment_status != "FAILURE":
                code = taxonomy_code(data.get("errorCode"), data.get("errorGroup"))
                if code in ("provider_authentication", "provider_unavailable"):
                    raise error_from_failure(
                        data, alias=self.alias, operation=f"answer {what}", outcome_unknown=True
                    )
                # Unknown token, nothing paid yet...: nothing to record.
                return PaymentResult(
                    status=ProviderStatus.NOT_FOUND,
                    raw=self._raw(data, note=_UNFINISHED_NOTE),
                )
            payment_status = "FAILURE"
        if data.get("signature"):
            self._check_signature(data, fields, what)
        if source == "cf" and payment_status not in ("SUCCESS", "FAILURE"):
            # INIT_THREEDS, CALLBACK_THREEDS or no payment yet.
            return PaymentResult(
                status=ProviderStatus.NOT_FOUND, raw=self._raw(data, note=_UNFINISHED_NOTE)
            )
        if payment_status in ("SUCCESS", "1") or (source == "api" and not payment_status):
            payment_status = "SUCCESS"
        elif payment_status in ("FAILURE", "0"):
            payment_status = "FAILURE"
        else:
            return PaymentResult(
                status=ProviderStatus.NOT_FOUND, raw=self._raw(data, note=_UNFINISHED_NOTE)
            )
        if payment_status == "FAILURE":
            # A failure moves no money; it is recorded even without a signature.
            self._check_identity(data, payment_id=payment_id, amount=None, what=what)
            return PaymentResult(
                status=ProviderStatus.FAILED,
                provider_payment_id=ppid,
                failure=failure_from(data),
                raw=self._raw(data),
            )
        if not data.get("signature"):
            raise ResponseSignatureError(
                f"iyzico's answer to {what} reports a successful payment without a signature; "
                "paydesk does not trust it.",
                provider=self.alias,
                provider_code="signature_missing",
            )
        self._check_identity(data, payment_id=payment_id, amount=amount, what=what)
        fraud = _text(data.get("fraudStatus"))
        currency = _text(data.get("currency")) or (amount.currency if amount else "")
        if fraud == "-1":
            return PaymentResult(
                status=ProviderStatus.FAILED,
                provider_payment_id=ppid,
                failure=ProviderFailure(
                    code="card_declined",
                    message="iyzico's fraud check rejected the payment (fraudStatus -1).",
                    provider_code=_text(data.get("errorCode")) or "fraudStatus:-1",
                ),
                raw=self._raw(data),
            )
        if fraud != "1":
            return PaymentResult(
                status=ProviderStatus.PROCESSING,
                provider_payment_id=ppid,
                raw=self._raw(data, note=_REVIEW_NOTE),
            )
        paid = _money(data.get("paidPrice", data.get("price")), currency)
        return PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id=ppid,
            amount_authorized=paid,
            amount_captured=paid,
            raw=self._raw(data),
        )

    # -- flows -----------------------------------------------------------------------------

    def _callback_url(self, payment_id: str) -> str:
        base = self._callback_base().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise error_for_code(
                "invalid_request",
                "The checkout form needs an absolute callbackUrl: set PAYDESK"
                '["PUBLIC_BASE_URL"] (e.g. "https://shop.example") or this provider\'s '
                'OPTIONS["CALLBACK_BASE_URL"].',
                provider=self.alias,
            )
        return base + reverse("paydesk:iyzico-callback", args=[self.alias, payment_id])

    def _order(self, request: PaymentRequest) -> dict[str, Any]:
        return build_order(
            request,
            alias=self.alias,
            defaults=self.option("BUYER_DEFAULTS") or {},
            hook=load_hook(self.option("BUYER_DATA_HOOK")),
            item_type=self.option("BASKET_ITEM_TYPE"),
            category=self.option("BASKET_CATEGORY"),
        )

    def _payment_body(self, request: PaymentRequest, order: Mapping[str, Any]) -> dict[str, Any]:
        price = ISO_RULES.to_decimal_string(request.amount)
        return {
            **self._base(request.payment_id),
            "price": price,
            "paidPrice": price,
            "currency": request.amount.currency,
            "basketId": request.payment_id,
            "paymentGroup": self.option("PAYMENT_GROUP"),
            **order,
        }

    def _initialize_flow(self, request: PaymentRequest, order: Mapping[str, Any]) -> Flow[Any]:
        path = str(self.option("CF_INITIALIZE_PATH"))
        callback = self._callback_url(request.payment_id)
        body = {**self._payment_body(request, order), "callbackUrl": callback}
        installments = self._installments()
        if installments:
            body["enabledInstallments"] = installments
        data = yield Call("POST", path, body, operation="initialize the checkout form")
        if data.get("status") != "success":
            raise error_from_failure(
                data, alias=self.alias, operation="initialize the checkout form"
            )
        self._check_signature(data, auth.CF_INITIALIZE_FIELDS, "the checkout form initialize")
        self._check_identity(
            data, payment_id=request.payment_id, amount=None, what="the checkout form initialize"
        )
        token, page = _text(data.get("token")), _text(data.get("paymentPageUrl"))
        if not token or not page:
            raise error_for_code(
                "processing_error",
                "iyzico initialized the checkout form without a token or paymentPageUrl.",
                provider=self.alias,
                retryable=True,
            )
        return PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            provider_payment_id=token,
            next_action=NextAction(type="redirect", redirect_url=page),
            raw=_json_safe(
                {
                    "provider": "iyzico",
                    "flow": "checkout_form",
                    "token": token,
                    "conversationId": data.get("conversationId"),
                    "paymentPageUrl": page,
                    "tokenExpireTime": data.get("tokenExpireTime"),
                    "initializePath": path,
                    "callbackUrl": callback,
                }
            ),
        )

    def _detail_flow(
        self, *, payment_id: str, iyzico_payment_id: str = "", amount: Money | None, ppid: str
    ) -> Flow[PaymentResult]:
        body = self._base(payment_id)
        if iyzico_payment_id:
            body["paymentId"] = iyzico_payment_id
        else:
            body["paymentConversationId"] = payment_id
        data = yield Call("POST", PAYMENT_DETAIL_PATH, body, operation="show the payment")
        if data.get("status") == "success" and not data.get("paymentId"):
            return PaymentResult(status=ProviderStatus.NOT_FOUND, raw=self._raw(data))
        return self._interpret(
            data,
            source="api",
            payment_id=payment_id,
            amount=amount,
            ppid=ppid or _text(data.get("paymentId")),
        )

    def _retrieve_flow(
        self, *, token: str, payment_id: str, amount: Money | None
    ) -> Flow[PaymentResult]:
        body = {**self._base(payment_id), "token": token}
        data = yield Call("POST", CF_RETRIEVE_PATH, body, operation="show the checkout form result")
        if data.get("status") == "success" and data.get("token") not in (None, token):
            raise ResponseMismatchError(
                "iyzico's checkout form retrieve answered about another token.",
                provider=self.alias,
                provider_code="mismatch",
            )
        return self._interpret(data, source="cf", payment_id=payment_id, amount=amount, ppid=token)

    def _card_flow(
        self, request: PaymentRequest, order: Mapping[str, Any], card: tuple[str, str]
    ) -> Flow[PaymentResult]:
        # iyzico has no idempotency key: ask whether this payment was already paid first.
        existing = yield from self._detail_flow(
            payment_id=request.payment_id, amount=request.amount, ppid=""
        )
        if existing.status in (ProviderStatus.CAPTURED, ProviderStatus.PROCESSING):
            return existing
        body = {
            **self._payment_body(request, order),
            "installment": 1,
            "paymentChannel": "WEB",
            "paymentCard": {"cardUserKey": card[0], "cardToken": card[1]},
        }
        data = yield Call("POST", PAYMENT_AUTH_PATH, body, operation="charge the stored card")
        if data.get("status") != "success":
            if is_decline(data):
                return PaymentResult(
                    status=ProviderStatus.FAILED,
                    provider_payment_id=_text(data.get("paymentId")),
                    failure=failure_from(data),
                    raw=self._raw(data),
                )
            raise error_from_failure(data, alias=self.alias, operation="charge the stored card")
        return self._interpret(
            data,
            source="api",
            payment_id=request.payment_id,
            amount=request.amount,
            ppid=_text(data.get("paymentId")),
        )

    def _parse_card_token(self, token: str) -> tuple[str, str]:
        user_key, _, card_token = token.partition(":")
        if not user_key or not card_token or ":" in card_token:
            raise error_for_code(
                "invalid_request",
                f"{token!r} is not an iyzico stored card; pass '<cardUserKey>:<cardToken>' "
                "from iyzico's card storage, or no token to send the customer to the "
                "checkout form.",
                provider=self.alias,
                provider_code="invalid_card_token",
            )
        return user_key, card_token

    def _create_flow(self, request: PaymentRequest, order: Mapping[str, Any]) -> Flow[Any]:
        if request.payment_method_token and request.payment_method_token != CHECKOUT_FORM_TOKEN:
            card = self._parse_card_token(request.payment_method_token)
            return self._card_flow(request, order, card)
        return self._initialize_flow(request, order)

    def _confirm_flow(self, request: ConfirmRequest) -> Flow[PaymentResult]:
        ppid = request.provider_payment_id or _text(request.params.get("token"))
        if not ppid:
            raise error_for_code(
                "invalid_request",
                "Confirming an iyzico payment needs its checkout form token (POSTed to the "
                "callback URL) or its paymentId.",
                provider=self.alias,
                retryable=True,
            )
        if _is_payment_id(ppid):
            return self._detail_flow(
                payment_id=request.payment_id,
                iyzico_payment_id=ppid,
                amount=request.amount,
                ppid=ppid,
            )
        return self._retrieve_flow(token=ppid, payment_id=request.payment_id, amount=request.amount)

    def _status_flow(self, request: StatusRequest) -> Flow[PaymentResult]:
        ppid = request.provider_payment_id
        if ppid and _is_payment_id(ppid):
            result = yield from self._detail_flow(
                payment_id=request.payment_id,
                iyzico_payment_id=ppid,
                amount=request.amount,
                ppid=ppid,
            )
            return result
        result = yield from self._detail_flow(
            payment_id=request.payment_id, amount=request.amount, ppid=ppid
        )
        if result.status == ProviderStatus.NOT_FOUND and ppid:
            result = yield from self._retrieve_flow(
                token=ppid, payment_id=request.payment_id, amount=request.amount
            )
        return result

    def _cancel_flow(self, request: CancelRequest) -> Flow[PaymentResult]:
        ppid = request.provider_payment_id
        if _is_payment_id(ppid):
            raise error_for_code(
                "invalid_request",
                "iyzico captures a payment at once, so there is no authorization to cancel; "
                "refund it instead (paydesk cancels it at iyzico when refunded in full on the "
                "same day).",
                provider=self.alias,
            )
        result = yield from self._retrieve_flow(
            token=ppid, payment_id=request.payment_id, amount=None
        )
        if result.status in (ProviderStatus.CAPTURED, ProviderStatus.PROCESSING):
            raise error_for_code(
                "invalid_request",
                "The customer has already paid on iyzico's checkout page "
                f"(paymentId {result.raw.get('paymentId')}); refund the payment instead.",
                provider=self.alias,
                provider_code="already_paid",
            )
        return PaymentResult(
            status=ProviderStatus.CANCELLED,
            provider_payment_id=ppid,
            raw={
                "provider": "iyzico",
                "note": "Cancelled in paydesk. iyzico has no call to void a checkout form; "
                "its token expires by itself (tokenExpireTime). Should the customer still "
                "pay before then, iyzico's webhook records it (captured money outranks the "
                "cancellation) and it must be refunded.",
                "checked": result.status.value,
            },
        )

    # -- refunds ----------------------------------------------------------------------------

    def _payment_id_flow(self, request: RefundRequest) -> Flow[tuple[str, PaymentResult | None]]:
        ppid = request.provider_payment_id
        if _is_payment_id(ppid):
            return ppid, None
        result = yield from self._retrieve_flow(
            token=ppid, payment_id=request.payment_id, amount=None
        )
        iyzico_id = _text(result.raw.get("paymentId"))
        if result.status != ProviderStatus.CAPTURED or not iyzico_id:
            raise error_for_code(
                "invalid_request",
                f"iyzico does not show checkout form {ppid} as paid ({result.status.value}); "
                "there is nothing to refund.",
                provider=self.alias,
            )
        return iyzico_id, result

    def _history_flow(self, iyzico_payment_id: str) -> Flow[dict[str, Any]]:
        data = yield Call(
            "GET",
            REPORTING_PATH,
            None,
            query={"paymentId": iyzico_payment_id},
            operation="show the payment's refunds (reporting API)",
        )
        payments = data.get("payments") if data.get("status") == "success" else None
        for payment in payments or []:
            if (
                isinstance(payment, Mapping)
                and _text(payment.get("paymentId")) == iyzico_payment_id
            ):
                return dict(payment)
        code = taxonomy_code(data.get("errorCode"), data.get("errorGroup"))
        if code == "provider_authentication":
            raise error_from_failure(
                data, alias=self.alias, operation="show the payment's refunds (reporting API)"
            )
        raise error_for_code(
            "provider_unavailable",
            f"iyzico's reporting API does not show payment {iyzico_payment_id} yet "
            f"({_text(data.get('errorMessage')) or 'no match'}). iyzico has no idempotency "
            "key, so paydesk reads a payment's refunds there before refunding, to never "
            "refund twice; nothing was sent. Retry in a minute (or set "
            'OPTIONS["REFUND_HISTORY"] = "none" to skip this check).',
            provider=self.alias,
            provider_code=_text(data.get("errorCode")) or "reporting_not_found",
            retryable=True,
        )

    @staticmethod
    def _succeeded(record: Mapping[str, Any]) -> bool:
        """A reporting refund/cancel record that went through (refundStatus semantics are
        unverified: a record with an error code is taken as failed, 1 or absent as done)."""
        if record.get("errorCode") not in (None, ""):
            return False
        status = record.get("refundStatus")
        return status is None or _text(status) in ("1", "SUCCESS")

    def _done_for(self, history: Mapping[str, Any], conversation_id: str) -> list[dict[str, Any]]:
        found = []
        for cancel in history.get("cancels") or []:
            if _text(cancel.get("cancelConversationId")) == conversation_id and self._succeeded(
                cancel
            ):
                found.append({"kind": "cancel", **_json_safe(cancel)})
        for item in history.get("itemTransactions") or []:
            for refund in item.get("refunds") or []:
                if _text(refund.get("refundConversationId")) == conversation_id and (
                    self._succeeded(refund)
                ):
                    found.append(
                        {
                            "kind": "refund",
                            "paymentTransactionId": _text(item.get("paymentTransactionId")),
                            **_json_safe(refund),
                        }
                    )
        return found

    def _refunded_per_item(
        self, history: Mapping[str, Any], *, currency: str, exclude_prefix: str = ""
    ) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for item in history.get("itemTransactions") or []:
            total = Decimal(0)
            for refund in item.get("refunds") or []:
                conv = _text(refund.get("refundConversationId"))
                if exclude_prefix and conv.startswith(exclude_prefix):
                    continue
                if self._succeeded(refund):
                    total += Decimal(_text(refund.get("refundPrice") or 0))
            out[_text(item.get("paymentTransactionId"))] = total
        return out

    @staticmethod
    def _created_on(history: Mapping[str, Any]) -> dt.date | None:
        value = history.get("createdDate")
        try:
            if isinstance(value, int | Decimal) and not isinstance(value, bool):
                moment = dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)
            elif isinstance(value, str) and value:
                moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=ISTANBUL)
            else:
                return None
        except (ValueError, OverflowError, OSError):
            return None
        return moment.astimezone(ISTANBUL).date()

    def _refund_flow(self, request: RefundRequest) -> Flow[RefundResult]:
        # The refund's conversationId: paydesk's refund id, the same on every retry, so it
        # is how a retry recognises a refund iyzico already made.
        key = request.refund_id or request.idempotency_key
        amount = request.amount
        currency = amount.currency
        iyzico_id, _ = yield from self._payment_id_flow(request)
        use_history = self.option("REFUND_HISTORY") == "reporting"
        history: dict[str, Any] = {}
        if use_history:
            history = yield from self._history_flow(iyzico_id)
            done = self._done_for(history, key)
            if done:
                return RefundResult(
                    status="completed",
                    provider_refund_id=key,
                    raw={
                        "provider": "iyzico",
                        "method": done[0]["kind"],
                        "paymentId": iyzico_id,
                        "conversationId": key,
                        "note": "already done at iyzico (found in its reporting API); "
                        "not sent again",
                        "records": done,
                    },
                )
        base = self._base(key)
        reason = _REFUND_REASONS.get(request.reason.strip().lower()) if request.reason else None
        notes: list[str] = []

        # Same day, whole payment, nothing refunded yet: cancel (never hits the statement).
        if use_history and self.option("CANCEL_SAME_DAY"):
            cancelable, why = self._cancelable(history, amount)
            if cancelable:
                body = {**base, "paymentId": iyzico_id}
                if reason:
                    body["reason"] = reason
                if request.reason:
                    body["description"] = request.reason[:255]
                data = yield Call("POST", CANCEL_PATH, body, operation="cancel the payment")
                if data.get("status") == "success":
                    return RefundResult(
                        status="completed",
                        provider_refund_id=key,
                        raw=self._refund_raw(data, "cancel", iyzico_id, key, why),
                    )
                code = taxonomy_code(data.get("errorCode"), data.get("errorGroup"))
                if code in ("provider_authentication", "provider_unavailable"):
                    raise error_from_failure(data, alias=self.alias, operation="cancel the payment")
                notes.append(
                    "cancel refused by iyzico ("
                    f"{_text(data.get('errorCode'))} {_text(data.get('errorMessage'))}); "
                    "refunded instead"
                )
            else:
                notes.append(why)

        if self.option("REFUND_MODE") == "v2":
            body = {
                **base,
                "paymentId": iyzico_id,
                "price": ISO_RULES.to_decimal_string(amount),
                "currency": currency,
            }
            data = yield Call("POST", REFUND_V2_PATH, body, operation="refund the payment")
            if data.get("status") != "success":
                raise error_from_failure(data, alias=self.alias, operation="refund the payment")
            return RefundResult(
                status="completed",
                provider_refund_id=key,
                raw=self._refund_raw(data, "refund_v2", iyzico_id, key, "; ".join(notes)),
            )

        # Per basket item (REFUND_MODE "item").
        items = yield from self._items_flow(request, iyzico_id, history)
        plan = self._item_plan(items, history, amount, key)
        answers = []
        already = {r["refundConversationId"] for r in self._done_for_prefix(history, key + ":")}
        for transaction_id, price, conversation in plan:
            if conversation in already:
                continue
            body = {
                **base,
                "conversationId": conversation,
                "paymentTransactionId": transaction_id,
                "price": ISO_RULES.to_decimal_string(price),
                "currency": currency,
            }
            if reason:
                body["reason"] = reason
            if request.reason:
                body["description"] = request.reason[:255]
            data = yield Call("POST", REFUND_ITEM_PATH, body, operation="refund a basket item")
            if data.get("status") != "success":
                raise error_from_failure(data, alias=self.alias, operation="refund a basket item")
            answers.append(_json_safe(dict(data)))
        return RefundResult(
            status="completed",
            provider_refund_id=key,
            raw={
                "provider": "iyzico",
                "method": "refund_item",
                "paymentId": iyzico_id,
                "conversationId": key,
                "items": [
                    {"paymentTransactionId": t, "price": format(p.amount, "f"), "conversationId": c}
                    for t, p, c in plan
                ],
                "answers": answers,
                "note": "; ".join(notes),
            },
        )

    def _done_for_prefix(self, history: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
        found = []
        for item in history.get("itemTransactions") or []:
            for refund in item.get("refunds") or []:
                conv = _text(refund.get("refundConversationId"))
                if conv.startswith(prefix) and self._succeeded(refund):
                    found.append({"kind": "refund", **_json_safe(refund)})
        return found

    def _refund_raw(
        self, data: Mapping[str, Any], method: str, iyzico_id: str, key: str, note: str
    ) -> dict[str, Any]:
        raw = {
            "provider": "iyzico",
            "method": method,
            "paymentId": iyzico_id,
            "conversationId": key,
            "note": note,
        }
        for name in ("paymentTransactionId", "price", "currency", "hostReference", "authCode"):
            if data.get(name) not in (None, ""):
                raw[name] = data[name]
        safe: dict[str, Any] = _json_safe(raw)
        return safe

    def _cancelable(self, history: Mapping[str, Any], amount: Money) -> tuple[bool, str]:
        created = self._created_on(history)
        today = dt.datetime.now(ISTANBUL).date()
        try:
            paid = _money(history.get("paidPrice"), amount.currency)
        except (InvalidOperation, ValueError, ProviderError):
            return False, "refund: iyzico's paid price is unreadable, so no cancel"
        refunded = sum(
            self._refunded_per_item(history, currency=amount.currency).values(), Decimal(0)
        )
        if history.get("cancels"):
            return False, "refund: the payment has a cancel record already"
        if amount != paid:
            return False, "refund: not the whole paid price, and a cancel reverses it all"
        if refunded:
            return False, "refund: part of the payment is refunded already"
        if created is None:
            return False, "refund: iyzico does not say when the payment was made"
        if created != today:
            return False, (
                f"refund: the payment was made on {created.isoformat()} (Istanbul), and a "
                "cancel is only possible on the same day"
            )
        return True, "cancel: the whole payment, on the day it was made"

    def _items_flow(
        self, request: RefundRequest, iyzico_id: str, history: Mapping[str, Any]
    ) -> Flow[list[dict[str, Any]]]:
        if history.get("itemTransactions"):
            return [dict(i) for i in history["itemTransactions"]]
        detail = yield Call(
            "POST",
            PAYMENT_DETAIL_PATH,
            {**self._base(request.payment_id), "paymentId": iyzico_id},
            operation="show the payment",
        )
        if detail.get("status") != "success":
            raise error_from_failure(detail, alias=self.alias, operation="show the payment")
        self._check_signature(detail, auth.API_PAYMENT_FIELDS, "the payment detail")
        return [dict(i) for i in detail.get("itemTransactions") or []]

    def _item_plan(
        self,
        items: list[dict[str, Any]],
        history: Mapping[str, Any],
        amount: Money,
        key: str,
    ) -> list[tuple[str, Money, str]]:
        currency = amount.currency
        refunded = self._refunded_per_item(history, currency=currency, exclude_prefix=key + ":")
        remaining: list[tuple[str, Money]] = []
        for item in items:
            tx = _text(item.get("paymentTransactionId"))
            paid = _money(item.get("paidPrice", item.get("price")), currency)
            left = paid.amount - refunded.get(tx, Decimal(0))
            if tx and left > 0:
                remaining.append((tx, Money(left, currency)))
        total = sum((m.amount for _, m in remaining), Decimal(0))
        if amount.amount == total:
            return [(tx, m, f"{key}:{tx}") for tx, m in remaining]
        exact = [(tx, m) for tx, m in remaining if m == amount]
        if exact:
            tx = exact[0][0]
            return [(tx, amount, f"{key}:{tx}")]
        if len(remaining) == 1 and remaining[0][1].amount >= amount.amount:
            tx = remaining[0][0]
            return [(tx, amount, f"{key}:{tx}")]
        listing = ", ".join(f"{tx} ({m} left)" for tx, m in remaining) or "none"
        raise error_for_code(
            "invalid_request",
            f'REFUND_MODE "item": iyzico refunds per basket item, and {amount} is neither '
            "the whole refundable amount nor what is left of one item "
            f"(items: {listing}). Refund one item's amount at a time, or set "
            'OPTIONS["REFUND_MODE"] = "v2" to let iyzico pick the items.',
            provider=self.alias,
            provider_code="no_matching_item",
        )

    # -- operations ------------------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        self._require_credentials()
        order = self._order(request)
        result: PaymentResult = self._run(self._create_flow(request, order))
        return result

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        self._require_credentials()
        order = await sync_to_async(self._order)(request)  # the hook may use the ORM
        result: PaymentResult = await self._arun(self._create_flow(request, order))
        return result

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        result: PaymentResult = self._run(self._confirm_flow(request))
        return result

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        result: PaymentResult = await self._arun(self._confirm_flow(request))
        return result

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        result: PaymentResult = self._run(self._status_flow(request))
        return result

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        result: PaymentResult = await self._arun(self._status_flow(request))
        return result

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        result: PaymentResult = self._run(self._cancel_flow(request))
        return result

    async def cancel_payment_async(self, request: CancelRequest) -> PaymentResult:
        result: PaymentResult = await self._arun(self._cancel_flow(request))
        return result

    def create_refund(self, request: RefundRequest) -> RefundResult:
        result: RefundResult = self._run(self._refund_flow(request))
        return result

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        result: RefundResult = await self._arun(self._refund_flow(request))
        return result

    def health_check(self) -> HealthResult:
        problems = super().configuration_problems()
        if problems:
            return HealthResult(ok=False, detail="; ".join(problems))
        started = time.monotonic()
        try:
            data = self.transport.send(
                Call("GET", HEALTH_PATH, None, operation="answer /payment/test")
            )
        except ProviderError as exc:
            return HealthResult(ok=False, detail=exc.message)
        elapsed = (time.monotonic() - started) * 1000
        if data.get("status") != "success":
            error = error_from_failure(data, alias=self.alias, operation="answer /payment/test")
            return HealthResult(ok=False, detail=error.message, response_time_ms=elapsed)
        return HealthResult(ok=True, detail=f"{self.base_url} answered", response_time_ms=elapsed)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- webhooks ----------------------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
        if not self.secret_key:
            raise SignatureVerificationError(
                f"iyzico provider {self.alias!r} has no SECRET_KEY, so its webhooks cannot be "
                "verified; set OPTIONS['SECRET_KEY']."
            )
        verifier = IyzicoWebhookVerifier(self.secret_key)
        signature = get_header(headers, verifier.header) or ""
        verifier.verify_request(body, headers)
        payload = json.loads(body)  # the verifier parsed it already: it is a JSON object
        fields = verifier.signed_fields(payload)
        # The signed fields plus the event time: iyzico's retries of one notification share
        # it (one delivery), while a later notification about the same payment (a fraud
        # review decided) is a new event. iyziEventTime is not signed; a forged one only
        # costs another server-side retrieve, which cannot change the ledger beyond what
        # iyzico's API says.
        parts = [_text(payload.get(name)) for name in fields]
        event_id = ":".join([*parts, _text(payload.get("iyziEventTime"))])
        if len(event_id) > 200:
            event_id = "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()
        return InboundWebhook(
            event_id=event_id,
            event_type=_text(payload.get("iyziEventType")),
            payload=payload,
            signature=signature,
        )

    def test_webhook_unavailable(self) -> str:
        if self.secret_key:
            return ""
        return "no SECRET_KEY is configured to sign with: set OPTIONS['SECRET_KEY']."

    def build_test_webhook(self, *, event_id: str) -> tuple[dict[str, str], bytes]:
        """A direct-API shaped notification of paydesk's test type (not one of
        ``PAYMENT_EVENT_TYPES``, so ``parse_webhook`` ignores it without calling iyzico)."""
        body = sample_webhook_body(
            {
                "iyziEventType": TEST_WEBHOOK_EVENT_TYPE,
                "iyziEventTime": int(time.time() * 1000),
                "paymentId": event_id,
                "paymentConversationId": event_id,
                "status": "TEST",
                "description": TEST_WEBHOOK_DESCRIPTION,
            }
        )
        return self.sign_webhook(body), body

    def sign_webhook(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """``X-Iyz-Signature-V3`` over ``body`` (the scheme signs no timestamp)."""
        problem = self.test_webhook_unavailable()
        if problem:
            raise NotSupported(problem)
        verifier = IyzicoWebhookVerifier(self.secret_key)
        return {"Content-Type": "application/json", verifier.header: verifier.sign(body)}

    def parse_webhook(self, event: InboundWebhook) -> list[WebhookEffect]:
        payload = event.payload
        if not isinstance(payload, Mapping) or event.event_type not in PAYMENT_EVENT_TYPES:
            return []  # refunds, subscriptions...: stored, not acted on
        payment_id = _text(payload.get("paymentConversationId"))
        token = _text(payload.get("token"))
        iyzico_id = _text(payload.get("iyziPaymentId") or payload.get("paymentId"))
        if not payment_id:
            raise WebhookError(f"iyzico event {event.event_id} has no paymentConversationId.")
        # The notification only says something happened; iyzico's own answer decides what.
        flow: Flow[PaymentResult]
        if token:
            flow = self._retrieve_flow(token=token, payment_id=payment_id, amount=None)
        elif iyzico_id:
            flow = self._detail_flow(
                payment_id=payment_id, iyzico_payment_id=iyzico_id, amount=None, ppid=iyzico_id
            )
        else:
            raise WebhookError(f"iyzico event {event.event_id} names no token or paymentId.")
        result: PaymentResult = self._run(flow)
        if result.status == ProviderStatus.NOT_FOUND:
            if _text(payload.get("status")).upper() == "SUCCESS":
                raise WebhookError(
                    f"iyzico notified a successful payment ({event.event_id}) that its API "
                    "does not confirm yet; the delivery is kept and retried."
                )
            return []
        return [
            PaymentEvent(
                result=result,
                payment_id=payment_id,
                provider_payment_id=result.provider_payment_id,
            )
        ]
