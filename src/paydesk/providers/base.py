"""The provider interface every adapter implements.

This module owns one decision: what a provider adapter is. An adapter is pure: frozen
dataclasses from ``paydesk.types`` in, frozen dataclasses out, no ORM, no module-global state.
Each instance owns its own configuration (``alias`` and ``options``) and, for HTTP providers,
its own client, so two aliases of the same backend never share credentials.

An adapter reports a refusal in one of two ways, and services treat them alike:

* a ``PaymentResult`` with ``status=FAILED`` and a ``ProviderFailure`` (the provider answered:
  declined, expired card...), or
* raising a ``paydesk.exceptions.ProviderError`` subclass (the call itself failed: bad
  credentials, timeout, 5xx). Only ``retryable`` errors leave the outcome unknown.

Async twins (``*_async``) default to the sync method run by ``sync_to_async``; adapters
with a network transport override them with a native async client.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from asgiref.sync import sync_to_async

from ..exceptions import NotSupported
from ..money import ISO_RULES, MinorUnitRules
from ..types import (
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
    RefundRequest,
    RefundResult,
    SavedMethod,
    StatusRequest,
    WebhookEffect,
)

__all__ = [
    "TEST_WEBHOOK_DESCRIPTION",
    "TEST_WEBHOOK_EVENT_TYPE",
    "PaymentProvider",
    "ProviderInfo",
    "new_test_webhook_id",
    "sample_webhook_body",
]

#: The event type of the sample deliveries ``build_test_webhook`` signs (the dashboard's "send
#: test webhook"): no provider sends it and no ``parse_webhook`` acts on it, so a test delivery
#: is verified and stored like any other, then ignored: it can never change a payment.
TEST_WEBHOOK_EVENT_TYPE = "paydesk.test_webhook"
#: Said in every sample event, for whoever reads the stored delivery.
TEST_WEBHOOK_DESCRIPTION = "A test delivery sent from the paydesk dashboard; it changes nothing."


def new_test_webhook_id() -> str:
    """A fresh event id for a test delivery, marked as one: ``paydesk_test_<24 hex>``."""
    return f"paydesk_test_{secrets.token_hex(12)}"


def sample_webhook_body(payload: Mapping[str, Any]) -> bytes:
    """A sample event as the compact JSON bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What a dashboard, the API or the docs show about a configured provider."""

    alias: str
    backend: str
    display_name: str
    icon: str
    capabilities: frozenset[Capability]
    webhook_signature_header: str
    webhook_signature_algorithm: str
    configured: bool
    problems: tuple[str, ...]


class PaymentProvider:
    """Base class of provider adapters. Subclasses override the operations they support."""

    display_name: ClassVar[str] = "Provider"
    icon: ClassVar[str] = "credit-card"
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: ISO codes the provider accepts; ``None`` means every currency its minor-unit rules allow.
    supported_currencies: ClassVar[frozenset[str] | None] = None
    currency_rules: ClassVar[MinorUnitRules] = ISO_RULES
    webhook_signature_header: ClassVar[str] = ""
    webhook_signature_algorithm: ClassVar[str] = ""
    #: The option holding the secret ``sign_webhook`` signs with, for a provider whose
    #: deliveries paydesk can sign itself ("" when only the provider can, e.g. PayPal).
    webhook_secret_option: ClassVar[str] = ""
    #: Options that must be set (after ``env()`` resolution) for the provider to work.
    required_options: ClassVar[tuple[str, ...]] = ()
    #: Query parameters the return view may pass to ``confirm_payment`` when the customer
    #: comes back from the provider's page. Anything else on that URL is dropped, so a
    #: crafted link cannot slip, say, another ``payment_method`` into the confirmation.
    return_params: ClassVar[frozenset[str]] = frozenset()
    #: Addresses the provider documents as its webhook senders: the allowlist used when
    #: ``OPTIONS["WEBHOOK_IP_ALLOWLIST"]`` is not set (``[]`` there allows everyone).
    default_webhook_ip_allowlist: ClassVar[tuple[str, ...]] = ()
    #: How staff refund a payment by hand when the provider's API cannot (added to the
    #: ``NotSupported`` error a refund request gets).
    refund_instructions: ClassVar[str] = ""

    def __init__(self, *, alias: str, options: Mapping[str, Any] | None = None) -> None:
        self.alias = alias
        self.options: dict[str, Any] = dict(options or {})

    # -- configuration -------------------------------------------------------------------

    def configuration_problems(self) -> list[str]:
        """Human-readable problems that keep this provider from working (for checks, health)."""
        return [
            f"OPTIONS[{name!r}] is not set"
            for name in self.required_options
            if not self.options.get(name)
        ]

    @property
    def is_configured(self) -> bool:
        return not self.configuration_problems()

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def supports_currency(self, currency: str) -> bool:
        currency = currency.upper()
        if self.supported_currencies is not None and currency not in self.supported_currencies:
            return False
        return self.currency_rules.supports(currency)

    def info(self) -> ProviderInfo:
        cls = type(self)
        return ProviderInfo(
            alias=self.alias,
            backend=f"{cls.__module__}.{cls.__qualname__}",
            display_name=self.display_name,
            icon=self.icon,
            capabilities=self.capabilities,
            webhook_signature_header=self.webhook_signature_header,
            webhook_signature_algorithm=self.webhook_signature_algorithm,
            configured=self.is_configured,
            problems=tuple(self.configuration_problems()),
        )

    def _unsupported(self, operation: str) -> NotSupported:
        return NotSupported(
            f"Provider {self.alias!r} ({type(self).__name__}) does not support {operation}. "
            "Check provider.capabilities before offering this action."
        )

    # -- operations ----------------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        raise self._unsupported("create_payment")

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        raise self._unsupported("confirm_payment")

    def capture_payment(self, request: CaptureRequest) -> PaymentResult:
        raise self._unsupported("capture_payment")

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        raise self._unsupported("cancel_payment")

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        raise self._unsupported("get_payment_status")

    def create_refund(self, request: RefundRequest) -> RefundResult:
        raise self._unsupported("create_refund")

    # -- saved payment methods and health ----------------------------------------------

    def attach_payment_method(self, request: AttachMethodRequest) -> SavedMethod:
        """Keep a tokenized method at the provider for later charges (``SAVED_METHODS``)."""
        raise self._unsupported("saved payment methods")

    def detach_payment_method(self, request: DetachMethodRequest) -> None:
        raise self._unsupported("saved payment methods")

    def health_check(self) -> HealthResult:
        """A cheap read-only call proving the credentials work; offline adapters say ok."""
        problems = self.configuration_problems()
        return HealthResult(ok=not problems, detail="; ".join(problems) or "configured")

    # -- webhooks ------------------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
        """Check a delivery's signature over the raw ``body``; return what it claims to be.

        Raise ``SignatureVerificationError`` when it is not authentic. Must not touch the
        database: nothing is trusted, or stored, before this returns.
        """
        raise self._unsupported("webhooks")

    def parse_webhook(self, event: InboundWebhook) -> list[WebhookEffect]:
        """Translate a verified event into effects on payments; ``[]`` means "ignore it".

        May call the provider (e.g. to confirm a status server-side); raising makes the
        delivery fail and be retried later.
        """
        return []

    # -- signed deliveries (the dashboard's "send test webhook", ``paydesk sign-webhook``) --

    def sign_webhook(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The headers that make ``body`` a delivery ``verify_webhook`` accepts.

        ``Content-Type`` and the signature, made as the provider makes it with the configured
        secret, at ``timestamp`` (Unix seconds; now by default) where the scheme signs one.
        This is the one place a provider's signature is produced: ``build_test_webhook`` and
        the CLI's ``sign-webhook`` both use it. Raise ``NotSupported`` (with
        ``test_webhook_unavailable()``'s reason) when this provider cannot sign.
        """
        raise NotSupported(self.test_webhook_unavailable() or self._unsupported("test").message)

    def test_webhook_unavailable(self) -> str:
        """Why paydesk cannot sign a sample delivery as this provider right now ("" if it can).

        Staff see it instead of the "send test webhook" button: a scheme that only the
        provider can sign (PayPal's certificate), or a missing secret to sign with.
        """
        return (
            f"paydesk cannot produce {self.display_name}'s webhook signature, so it cannot "
            "send a test delivery as this provider."
        )

    def build_test_webhook(self, *, event_id: str) -> tuple[dict[str, str], bytes]:
        """A sample delivery signed with the configured secret: ``(headers, raw body)``.

        The event is marked as a test (``event_id`` from ``new_test_webhook_id``, the type or
        status ``TEST_WEBHOOK_EVENT_TYPE`` where the format has one) and is of a kind
        ``parse_webhook`` ignores without calling the provider. Delivered through the real
        pipeline, it is therefore verified by ``verify_webhook``, stored, and marked
        ``ignored``, and no payment changes. Raise ``NotSupported`` (with
        ``test_webhook_unavailable()``'s reason) when this provider cannot.
        """
        raise NotSupported(self.test_webhook_unavailable() or self._unsupported("test").message)

    # -- async twins ---------------------------------------------------------------------
    # Adapters that answer in-process (sandbox, mock) touch the database or plain Python
    # state, so the default runs the sync method through asgiref's thread-sensitive executor
    # (safe for the ORM). HTTP adapters override these with native async clients instead.

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        return await sync_to_async(self.create_payment)(request)

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return await sync_to_async(self.confirm_payment)(request)

    async def capture_payment_async(self, request: CaptureRequest) -> PaymentResult:
        return await sync_to_async(self.capture_payment)(request)

    async def cancel_payment_async(self, request: CancelRequest) -> PaymentResult:
        return await sync_to_async(self.cancel_payment)(request)

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        return await sync_to_async(self.get_payment_status)(request)

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        return await sync_to_async(self.create_refund)(request)
