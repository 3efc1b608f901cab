"""Frozen dataclasses that cross the provider seam.

This module owns one decision: the only shapes that pass between paydesk's services and a
provider adapter. No ORM object ever reaches a provider, and a provider never returns
anything a service has to guess about: every result says what happened in paydesk's own
vocabulary (``ProviderStatus``), with the provider's raw answer kept alongside for the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .money import Money

__all__ = [
    "AttachMethodRequest",
    "CancelRequest",
    "Capability",
    "CaptureRequest",
    "ConfirmRequest",
    "Customer",
    "DetachMethodRequest",
    "DisputeEvent",
    "HealthResult",
    "InboundWebhook",
    "NextAction",
    "PaymentEvent",
    "PaymentRequest",
    "PaymentResult",
    "ProviderFailure",
    "ProviderRefund",
    "ProviderStatus",
    "RefundEvent",
    "RefundRequest",
    "RefundResult",
    "SavedMethod",
    "StatusRequest",
    "WebhookEffect",
]


class Capability(StrEnum):
    CAPTURE = "capture"  # manual capture of an authorization
    PARTIAL_CAPTURE = "partial_capture"
    CANCEL = "cancel"
    REFUND = "refund"
    PARTIAL_REFUND = "partial_refund"
    MULTIPLE_REFUNDS = "multiple_refunds"
    SAVED_METHODS = "saved_methods"
    WEBHOOKS = "webhooks"
    HOSTED_CHECKOUT = "hosted_checkout"
    SYNC = "sync"


class ProviderStatus(StrEnum):
    """What the provider says happened to a payment, in paydesk's words."""

    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"  # the provider never received the payment


@dataclass(frozen=True, slots=True)
class Customer:
    email: str = ""
    name: str = ""
    ip_address: str | None = None
    country: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class NextAction:
    """What the customer must do before the provider can finish the payment."""

    type: str  # "redirect" or "use_client_secret"
    redirect_url: str = ""
    client_secret: str = ""

    def as_dict(self) -> dict[str, str]:
        data = {"type": self.type}
        if self.redirect_url:
            data["redirect_url"] = self.redirect_url
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return data


@dataclass(frozen=True, slots=True)
class ProviderFailure:
    code: str  # paydesk taxonomy: card_declined, insufficient_funds, ...
    message: str
    provider_code: str = ""


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """Ask the provider to charge (or authorize) ``amount``.

    ``idempotency_key`` is derived from paydesk's own ids and the attempt number: the
    provider must treat a repeat with the same key as the same charge.
    """

    payment_id: str
    amount: Money
    idempotency_key: str
    attempt: int = 1
    capture: bool = True
    payment_method_token: str = ""
    customer: Customer = field(default_factory=Customer)
    description: str = ""
    return_url: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: The provider's customer id when the token is a saved method attached to a customer
    #: (Stripe refuses to charge an attached pm_... without its cus_...).
    customer_ref: str = ""


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """Ask for the outcome after the customer finished a next action (3-D Secure, redirect)."""

    payment_id: str
    provider_payment_id: str
    amount: Money
    idempotency_key: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    payment_id: str
    provider_payment_id: str
    amount: Money
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class CancelRequest:
    payment_id: str
    provider_payment_id: str
    idempotency_key: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StatusRequest:
    payment_id: str
    provider_payment_id: str
    idempotency_key: str
    amount: Money


@dataclass(frozen=True, slots=True)
class RefundRequest:
    refund_id: str
    payment_id: str
    provider_payment_id: str
    amount: Money
    idempotency_key: str
    reason: str = ""
    #: What the payment captured, and what other refunds completed or reserved before this
    #: one, when the service knows (``None`` otherwise): providers whose API distinguishes a
    #: full cancel from a partial one (KICC) decide with them.
    captured: Money | None = None
    already_refunded: Money | None = None
    #: The provider's id for this refund when paydesk already has it (a refund the provider
    #: answered ``pending``); empty when its answer never arrived. Read-only status calls
    #: (``get_refund_status``) look it up directly when set.
    provider_refund_id: str = ""


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    """One refund of a payment as the provider lists it (``list_payment_refunds``)."""

    provider_refund_id: str
    amount: Money
    status: str  # "completed", "pending" or "failed"
    #: paydesk's refund id, when the provider keeps it (metadata); helps matching.
    refund_id: str = ""


@dataclass(frozen=True, slots=True)
class PaymentResult:
    status: ProviderStatus
    provider_payment_id: str = ""
    amount_authorized: Money | None = None
    amount_captured: Money | None = None
    next_action: NextAction | None = None
    failure: ProviderFailure | None = None
    fee: Money | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: Extra keyword arguments for the lifecycle signal this result causes (e.g. KICC's
    #: ``pg_tid`` and ``auth_id`` on ``payment_approved``), so receivers written for a
    #: provider's own Django app keep working.
    signal_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Something staff should read that the status alone does not say (NOWPayments'
    #: ``partially_paid`` with the amount received): recorded as a ledger ``note`` entry,
    #: once per distinct text and attempt.
    note: str = ""


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: str  # "completed", "pending" or "failed"
    provider_refund_id: str = ""
    failure: ProviderFailure | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: Extra keyword arguments for ``payment_refunded`` / ``refund_failed`` (e.g. KICC's
    #: ``cancel_type`` and ``cancel_amount``), as ``PaymentResult.signal_kwargs``.
    signal_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttachMethodRequest:
    """Save ``token`` for a customer; ``customer_ref`` is the provider's customer id, if any."""

    token: str
    user_ref: str  # paydesk's stable id for the user (never an email alone)
    customer: Customer = field(default_factory=Customer)
    customer_ref: str = ""
    idempotency_key: str = ""


@dataclass(frozen=True, slots=True)
class SavedMethod:
    token: str
    customer_ref: str = ""
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str = ""
    type: str = "credit_card"


@dataclass(frozen=True, slots=True)
class DetachMethodRequest:
    token: str
    customer_ref: str = ""


@dataclass(frozen=True, slots=True)
class HealthResult:
    ok: bool
    detail: str = ""
    response_time_ms: float | None = None


# -- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundWebhook:
    """A delivery whose signature the provider verified.

    ``payload`` is the parsed JSON; when the body is not JSON, ``payload`` is ``None`` and
    ``error`` says why (the delivery is stored, marked failed, and never applied).
    """

    event_id: str
    event_type: str
    payload: Any
    signature: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A webhook's news about one payment, in the same shape as an API result."""

    result: PaymentResult
    payment_id: str = ""  # paydesk's id, when the provider echoes our metadata
    provider_payment_id: str = ""


@dataclass(frozen=True, slots=True)
class RefundEvent:
    status: str  # "completed", "pending" or "failed"
    amount: Money | None = None
    payment_id: str = ""
    provider_payment_id: str = ""
    refund_id: str = ""  # paydesk's id, when echoed
    provider_refund_id: str = ""
    reason: str = ""
    failure: ProviderFailure | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DisputeEvent:
    opened: bool
    dispute_id: str
    amount: Money | None = None
    payment_id: str = ""
    provider_payment_id: str = ""
    reason: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


WebhookEffect = PaymentEvent | RefundEvent | DisputeEvent
