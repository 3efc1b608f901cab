"""The sandbox's webhook side: it signs its own events and delivers them.

This module owns one decision: what the sandbox sends when its simulated charge changes,
and how. Events look like Stripe's (``{"id": "evt_...", "type": ..., "data": {"object":
...}}``) and are signed like Stripe's (``Paydesk-Sandbox-Signature: t=<unix>,v1=<hex>``,
HMAC-SHA256 over ``"<t>.<raw body>"``), so the demo exercises the same pipeline a real
provider would. Delivery happens after the sandbox's own transaction commits, through
``OPTIONS["WEBHOOK_DELIVERY"]``:

* ``"inprocess"`` (default): handed to ``paydesk.webhooks.pipeline.handle`` directly,
  every check included, without a network hop;
* ``"http"``: POSTed to ``PUBLIC_BASE_URL`` + the webhook URL with httpx;
* ``"off"``: not sent (``sync_payment`` and API results still work).

The signing secret is ``OPTIONS["WEBHOOK_SECRET"]`` (or a list in ``WEBHOOK_SECRETS`` during
rotation); without one it is derived from Django's ``SECRET_KEY``, so the demo needs no setup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes

from ...conf import paydesk_settings
from ...exceptions import ConfigurationError, WebhookError
from ...money import Money
from ...security.signatures import SandboxWebhookVerifier, get_header
from ...types import (
    DisputeEvent,
    InboundWebhook,
    NextAction,
    PaymentEvent,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundEvent,
    WebhookEffect,
)
from ..base import TEST_WEBHOOK_DESCRIPTION, TEST_WEBHOOK_EVENT_TYPE

if TYPE_CHECKING:
    from . import SandboxProvider

logger = logging.getLogger("paydesk.providers.sandbox")

EVENT_FOR_STATUS = {
    "requires_action": "payment.requires_action",
    "authorized": "payment.authorized",
    "captured": "payment.succeeded",
    "failed": "payment.failed",
    "cancelled": "payment.cancelled",
}
PAYMENT_EVENTS = frozenset(EVENT_FOR_STATUS.values()) | {"payment.captured"}
HANDLED_EVENTS = PAYMENT_EVENTS | {"refund.succeeded", "dispute.created", "dispute.closed"}


def event_for_status(status: str) -> str:
    return EVENT_FOR_STATUS[status]


def webhook_secrets(provider: SandboxProvider) -> list[str]:
    configured = provider.options.get("WEBHOOK_SECRETS") or provider.options.get("WEBHOOK_SECRET")
    if configured:
        return [configured] if isinstance(configured, str) else list(configured)
    # Zero-configuration default, stable across restarts and processes of one deployment.
    derived = hmac.new(
        force_bytes(settings.SECRET_KEY),
        f"paydesk-sandbox-webhook:{provider.alias}".encode(),
        "sha256",
    ).hexdigest()
    return [f"whsec_sb_{derived[:32]}"]


def verifier(provider: SandboxProvider) -> SandboxWebhookVerifier:
    return SandboxWebhookVerifier(
        webhook_secrets(provider), tolerance=int(provider.options.get("WEBHOOK_TOLERANCE", 300))
    )


def verify(provider: SandboxProvider, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
    verifier(provider).verify_request(body, headers)
    signature = get_header(headers, provider.webhook_signature_header) or ""
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
    except ValueError as exc:
        # Authentic but unreadable: stored as failed (never applied), keyed by its content.
        digest = hashlib.sha256(body).hexdigest()
        return InboundWebhook(
            event_id=f"malformed:{digest}",
            event_type="",
            payload=None,
            signature=signature,
            error=f"The body is not valid JSON: {exc}",
        )
    return InboundWebhook(
        event_id=str(payload.get("id") or f"noid:{hashlib.sha256(body).hexdigest()}"),
        event_type=str(payload.get("type", "")),
        payload=payload,
        signature=signature,
    )


def _money(value: Any, currency: str) -> Money:
    try:
        return Money(Decimal(str(value)), currency)
    except (InvalidOperation, ValueError) as exc:
        raise WebhookError(f"Sandbox event has an invalid amount {value!r}.") from exc


def parse(provider: SandboxProvider, event: InboundWebhook) -> list[WebhookEffect]:
    if event.event_type not in HANDLED_EVENTS:
        return []  # stored and ignored, whatever its shape
    payload = event.payload
    try:
        data = payload["data"]
        obj = data["object"]
        currency = obj["currency"]
        if event.event_type in PAYMENT_EVENTS:
            status = ProviderStatus(obj["status"])
            result = PaymentResult(
                status=status,
                provider_payment_id=obj["id"],
                amount_authorized=_money(obj["amount"], currency),
                amount_captured=(
                    _money(obj["captured_amount"], currency)
                    if status == ProviderStatus.CAPTURED
                    else None
                ),
                next_action=(
                    NextAction(type="redirect", redirect_url=obj.get("next_action_url", ""))
                    if status == ProviderStatus.REQUIRES_ACTION
                    else None
                ),
                failure=(
                    ProviderFailure(
                        code=obj.get("failure_code") or "processing_error",
                        message=obj.get("failure_message") or "Payment failed.",
                        provider_code=obj.get("failure_code", ""),
                    )
                    if status == ProviderStatus.FAILED
                    else None
                ),
                raw=obj,
            )
            return [
                PaymentEvent(
                    result=result,
                    payment_id=obj.get("payment_id", ""),
                    provider_payment_id=obj["id"],
                )
            ]
        if event.event_type == "refund.succeeded":
            refund = data["refund"]
            return [
                RefundEvent(
                    status="completed",
                    amount=_money(refund["amount"], currency),
                    payment_id=obj.get("payment_id", ""),
                    provider_payment_id=obj["id"],
                    refund_id=data.get("refund_id", ""),
                    provider_refund_id=refund["id"],
                    reason=refund.get("reason", ""),
                    raw=refund,
                )
            ]
        if event.event_type in ("dispute.created", "dispute.closed"):
            dispute = data["dispute"]
            return [
                DisputeEvent(
                    opened=event.event_type == "dispute.created",
                    dispute_id=dispute["id"],
                    amount=_money(dispute["amount"], currency),
                    payment_id=obj.get("payment_id", ""),
                    provider_payment_id=obj["id"],
                    reason=dispute.get("reason", ""),
                    raw=dispute,
                )
            ]
    except (KeyError, TypeError) as exc:
        raise WebhookError(
            f"Sandbox event {event.event_id} ({event.event_type}) lacks the field {exc}."
        ) from exc
    except ValueError as exc:
        raise WebhookError(f"Sandbox event {event.event_id} is malformed: {exc}") from exc
    return []  # an event type paydesk does not act on: stored and ignored


def charge_snapshot(charge: Any) -> dict[str, Any]:
    from . import CARD_SCENARIOS, TOKENS

    scenario = CARD_SCENARIOS.get(TOKENS.get(f"pm_sandbox_{charge.scenario}", ""))
    snapshot = {
        "id": charge.id,
        "object": "sandbox_charge",
        "payment_id": charge.payment_ref,
        "amount": str(charge.amount),
        "currency": charge.currency,
        "status": charge.status,
        "captured_amount": str(charge.captured_amount),
        "refunded_amount": str(charge.refunded_amount),
        "scenario": charge.scenario,
        "failure_code": charge.failure_code,
        "failure_message": scenario.message if scenario and charge.failure_code else "",
    }
    if charge.status == "requires_action":
        name = "paydesk:sandbox-3ds" if charge.scenario == "3ds" else "paydesk:sandbox-checkout"
        snapshot["next_action_url"] = reverse(name, args=[charge.id])
    return snapshot


def build_event(event_type: str, obj: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"evt_sb_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": dict(obj), **extra},
    }


def test_event(event_id: str) -> dict[str, Any]:
    """The sample event the dashboard's "send test webhook" signs: ignored by ``parse``."""
    return {
        "id": event_id,
        "object": "event",
        "type": TEST_WEBHOOK_EVENT_TYPE,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": {"object": "paydesk_test", "description": TEST_WEBHOOK_DESCRIPTION}},
    }


def signed_delivery(
    provider: SandboxProvider, event: Mapping[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers the sandbox sends for ``event`` (also used by tests and tools)."""
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, provider.sign_webhook(body, timestamp=timestamp)


def emit(provider: SandboxProvider, event_type: str, charge: Any, **extra: Any) -> None:
    mode = provider.options.get("WEBHOOK_DELIVERY", "inprocess")
    if mode == "off":
        return
    if mode not in ("inprocess", "http"):
        raise ConfigurationError(
            f'Sandbox OPTIONS["WEBHOOK_DELIVERY"] = {mode!r}; use "inprocess", "http" or "off".'
        )
    body, headers = signed_delivery(
        provider, build_event(event_type, charge_snapshot(charge), **extra)
    )
    alias = provider.alias

    def deliver() -> None:
        try:
            if mode == "inprocess":
                from ...webhooks.pipeline import WebhookRequest, handle

                response = handle(
                    WebhookRequest(alias=alias, body=body, headers=headers, remote_addr="127.0.0.1")
                )
                status = response.status
            else:
                base = (paydesk_settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000").rstrip("/")
                url = base + reverse("paydesk:webhook", args=[alias])
                status = httpx.post(url, content=body, headers=headers, timeout=10).status_code
        except Exception:  # a provider's failed delivery never breaks the payment call
            logger.exception("sandbox webhook %s for %s could not be delivered", event_type, alias)
            return
        if status >= 300:
            logger.warning("sandbox webhook %s for %s was answered %s", event_type, alias, status)

    transaction.on_commit(deliver)
