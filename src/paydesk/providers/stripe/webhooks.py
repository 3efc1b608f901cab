"""Stripe webhooks: verify a delivery, then translate its event into paydesk effects.

This module owns one decision: which Stripe events paydesk acts on and what each means.

* ``payment_intent.succeeded`` / ``payment_failed`` / ``requires_action`` / ``processing`` /
  ``canceled`` / ``amount_capturable_updated`` -> one ``PaymentEvent``, mapped exactly like an
  API answer (``mapping.intent_result``). Intents without paydesk's
  ``metadata[paydesk_payment_id]`` were not created by paydesk and are ignored.
* ``refund.created`` / ``refund.updated`` / ``refund.failed`` (and the older
  ``charge.refund.updated``) -> one ``RefundEvent``; ``charge.refunded`` -> one per refund of
  the charge (read from the event, or listed from the API when the event leaves them out).
  paydesk's refund id comes from ``metadata[paydesk_refund_id]``, set when paydesk creates a
  refund; a refund made in the Dashboard is recorded as an external refund.
* ``charge.dispute.created`` / ``charge.dispute.closed`` -> one ``DisputeEvent``.
* Anything else -> ``[]``: stored and ignored.

Refund and dispute objects do not carry the PaymentIntent's metadata, so for those without
paydesk's metadata the PaymentIntent is retrieved once to learn whether it is paydesk's (an
account shared with other software then does not fill paydesk's dead-letter queue).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ...exceptions import NotSupported, SignatureVerificationError, WebhookError
from ...security.signatures import StripeSignatureVerifier, get_header
from ...types import (
    DisputeEvent,
    InboundWebhook,
    PaymentEvent,
    RefundEvent,
    WebhookEffect,
)
from ..base import TEST_WEBHOOK_DESCRIPTION, TEST_WEBHOOK_EVENT_TYPE, sample_webhook_body
from . import mapping

if TYPE_CHECKING:
    from . import StripeProvider

__all__ = [
    "DISPUTE_EVENTS",
    "HANDLED_EVENTS",
    "PAYMENT_EVENTS",
    "REFUND_EVENTS",
    "SUBSCRIBED_EVENTS",
    "parse",
    "verify",
]

PAYMENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
    }
)
REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.closed"})
HANDLED_EVENTS = PAYMENT_EVENTS | REFUND_EVENTS | DISPUTE_EVENTS | {"charge.refunded"}
#: What to select for the endpoint in the Dashboard (docs/providers/stripe.md). The older
#: ``charge.refund.updated`` is understood too, but ``refund.updated`` says the same.
SUBSCRIBED_EVENTS = tuple(sorted(HANDLED_EVENTS - {"charge.refund.updated"}))

DEFAULT_TOLERANCE = 300
PAYMENT_ID_KEY = "paydesk_payment_id"
REFUND_ID_KEY = "paydesk_refund_id"


def webhook_secrets(options: Mapping[str, Any]) -> list[str]:
    configured = options.get("WEBHOOK_SECRETS") or options.get("WEBHOOK_SECRET")
    if not configured:
        return []
    if isinstance(configured, str):
        return [configured]
    return [secret for secret in configured if secret]


def verify(provider: StripeProvider, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
    secrets = webhook_secrets(provider.options)
    if not secrets:
        raise SignatureVerificationError(
            f"Stripe provider {provider.alias!r} has no webhook signing secret: set "
            "OPTIONS['WEBHOOK_SECRET'] to the endpoint's whsec_... value from the Dashboard."
        )
    # Unset (or an env() variable that is not set) means Stripe's default; the timestamp
    # check cannot be turned off from settings.
    tolerance = provider.options.get("WEBHOOK_TOLERANCE")
    verifier = StripeSignatureVerifier(
        secrets, tolerance=DEFAULT_TOLERANCE if tolerance in (None, "") else int(tolerance)
    )
    verifier.verify_request(body, headers)
    signature = get_header(headers, verifier.header_name) or ""
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
    except ValueError as exc:
        # Authentic but unreadable: stored as failed (never applied), keyed by its content.
        return InboundWebhook(
            event_id=f"malformed:{hashlib.sha256(body).hexdigest()}",
            event_type="",
            payload=None,
            signature=signature,
            error=f"The body is not valid JSON: {exc}",
        )
    event_id = payload.get("id") or f"noid:{hashlib.sha256(body).hexdigest()}"
    return InboundWebhook(
        event_id=str(event_id),
        event_type=str(payload.get("type") or ""),
        payload=payload,
        signature=signature,
    )


def sign(provider: StripeProvider, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """``Stripe-Signature`` for ``body`` as Stripe makes it, with the first configured secret."""
    secrets = webhook_secrets(provider.options)
    if not secrets:
        raise NotSupported(provider.test_webhook_unavailable())
    verifier = StripeSignatureVerifier(secrets)
    signature = verifier.sign(body, timestamp=timestamp)
    return {"Content-Type": "application/json", verifier.header_name: signature}


def test_delivery(provider: StripeProvider, event_id: str) -> tuple[dict[str, str], bytes]:
    """A Stripe-shaped event of paydesk's test type, signed as Stripe signs (``parse`` ignores
    the type, so it changes nothing)."""
    body = sample_webhook_body(
        {
            "id": event_id,
            "object": "event",
            "type": TEST_WEBHOOK_EVENT_TYPE,
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": {"object": "paydesk_test", "description": TEST_WEBHOOK_DESCRIPTION}},
        }
    )
    return sign(provider, body), body


def parse(provider: StripeProvider, event: InboundWebhook) -> list[WebhookEffect]:
    payload = event.payload
    if not isinstance(payload, Mapping) or payload.get("object") not in (None, "event"):
        return []  # a thin (v2) notification or something else paydesk never subscribes to
    kind = event.event_type
    if kind not in HANDLED_EVENTS:
        return []
    try:
        obj = payload["data"]["object"]
        if kind in PAYMENT_EVENTS:
            return _payment(obj)
        if kind in REFUND_EVENTS:
            return _refunds(provider, [obj])
        if kind == "charge.refunded":
            return _charge_refunded(provider, obj)
        return _dispute(provider, kind, obj)
    except (KeyError, TypeError) as exc:
        raise WebhookError(
            f"Stripe event {event.event_id} ({kind}) lacks the field {exc}."
        ) from exc
    except ValueError as exc:
        raise WebhookError(f"Stripe event {event.event_id} ({kind}) is malformed: {exc}") from exc


def _payment(intent: Mapping[str, Any]) -> list[WebhookEffect]:
    payment_id = (intent.get("metadata") or {}).get(PAYMENT_ID_KEY, "")
    if not payment_id:
        return []  # not created by paydesk
    return [
        PaymentEvent(
            result=mapping.intent_result(intent),
            payment_id=str(payment_id),
            provider_payment_id=str(intent["id"]),
        )
    ]


def _intent_payment_id(provider: StripeProvider, intent_id: str) -> str:
    """paydesk's payment id for a PaymentIntent, read from its metadata ("" if not ours)."""
    if not intent_id:
        return ""
    intent = provider.retrieve_intent(intent_id)
    return str((intent.get("metadata") or {}).get(PAYMENT_ID_KEY, ""))


def _refunds(provider: StripeProvider, refunds: Iterable[Mapping[str, Any]]) -> list[WebhookEffect]:
    effects: list[WebhookEffect] = []
    known: dict[str, str] = {}
    for refund in refunds:
        metadata = refund.get("metadata") or {}
        intent_id = str(refund.get("payment_intent") or "")
        payment_id = str(metadata.get(PAYMENT_ID_KEY, ""))
        if not payment_id:
            if intent_id not in known:
                known[intent_id] = _intent_payment_id(provider, intent_id)
            payment_id = known[intent_id]
        if not payment_id:
            continue  # a refund of a charge paydesk did not make
        effects.append(
            RefundEvent(
                status=mapping.refund_status(refund.get("status")),
                amount=mapping.money(refund["amount"], refund["currency"]),
                payment_id=payment_id,
                provider_payment_id=intent_id,
                refund_id=str(metadata.get(REFUND_ID_KEY, "")),
                provider_refund_id=str(refund["id"]),
                reason=str(metadata.get("paydesk_reason") or refund.get("reason") or ""),
                failure=mapping.refund_failure(refund),
                raw={
                    key: refund.get(key)
                    for key in ("id", "object", "amount", "currency", "status", "reason")
                    if key in refund
                },
            )
        )
    return effects


def _charge_refunded(provider: StripeProvider, charge: Mapping[str, Any]) -> list[WebhookEffect]:
    listed = charge.get("refunds")
    if isinstance(listed, Mapping) and not listed.get("has_more") and "data" in listed:
        refunds = list(listed["data"])
    else:
        # API versions since 2022-11-15 leave charge.refunds out of events: ask for them.
        refunds = provider.list_refunds(charge=str(charge["id"]))
    intent_id = str(charge.get("payment_intent") or "")
    return _refunds(
        provider,
        [
            {**refund, "payment_intent": refund.get("payment_intent") or intent_id}
            for refund in refunds
        ],
    )


def _dispute(
    provider: StripeProvider, kind: str, dispute: Mapping[str, Any]
) -> list[WebhookEffect]:
    intent_id = str(dispute.get("payment_intent") or "")
    if not intent_id and dispute.get("charge"):
        intent_id = str(
            provider.retrieve_charge(str(dispute["charge"])).get("payment_intent") or ""
        )
    payment_id = _intent_payment_id(provider, intent_id)
    if not payment_id:
        return []
    opened = kind == "charge.dispute.created"
    reason = str(dispute.get("reason") or "")
    if not opened and dispute.get("status"):
        reason = f"{reason} ({dispute['status']})" if reason else str(dispute["status"])
    return [
        DisputeEvent(
            opened=opened,
            dispute_id=str(dispute["id"]),
            amount=mapping.money(dispute["amount"], dispute["currency"]),
            payment_id=payment_id,
            provider_payment_id=intent_id,
            reason=reason,
            raw={
                key: dispute.get(key)
                for key in ("id", "object", "amount", "currency", "status", "reason", "charge")
                if key in dispute
            },
        )
    ]
