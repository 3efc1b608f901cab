"""PayPal webhooks: verify a delivery, then say what it means for a payment.

This module owns two decisions.

**When a delivery is authentic.** By default offline, with
``paydesk.security.signatures.PayPalWebhookVerifier``: the CRC32 of the raw body,
``transmission_id|transmission_time|webhook_id|crc`` RSA-verified with the certificate at
``PAYPAL-CERT-URL`` (https on a PayPal host, chained to a trusted root, unexpired, cached).
``WEBHOOK_VERIFICATION = "online"`` asks PayPal's ``verify-webhook-signature`` API instead.
PayPal's scheme has no timestamp tolerance of its own, so paydesk adds one: a delivery whose
(signed) ``PAYPAL-TRANSMISSION-TIME`` is more than ``WEBHOOK_TOLERANCE`` seconds (default
300) away from now is refused. That is replay protection on top of the deduplication on the
event id: a captured delivery cannot be replayed later as a "new" one.

**What each event does.**

==============================  ==================================================================
CHECKOUT.ORDER.APPROVED         the buyer approved: paydesk captures (or authorizes) the order
                                right here, with the same ``PayPal-Request-Id`` the return view
                                uses, so PayPal completes it once (``CAPTURE_ON_APPROVAL``,
                                default on; off: ignored, the return view completes it)
CHECKOUT.ORDER.COMPLETED        the order's captures/authorizations decide, as in a sync
PAYMENT.CAPTURE.COMPLETED       captured
PAYMENT.CAPTURE.PENDING         processing
PAYMENT.CAPTURE.DENIED          failed (``card_declined``)
PAYMENT.CAPTURE.DECLINED        failed (``card_declined``)
PAYMENT.CAPTURE.REFUNDED        a refund (found by its ``custom_id``, paydesk's refund id; a refund
                                made in PayPal's dashboard is recorded as an external refund)
PAYMENT.CAPTURE.REVERSED        a refund too: PayPal took the money back (chargeback or
                                reversal), so it is recorded as money that left, not as an open
                                dispute
PAYMENT.AUTHORIZATION.CREATED   authorized
PAYMENT.AUTHORIZATION.VOIDED    cancelled
anything else                   stored and ignored
==============================  ==================================================================

The payment is found by the resource's ``custom_id`` (paydesk's payment id) or its
``supplementary_data.related_ids.order_id`` (the order id paydesk keeps as
``provider_payment_id``). A refund resource carries neither, so its capture is read from
PayPal (``GET /v2/payments/captures/{id}``, the id taken from the ``up`` link's path; the
link itself is never followed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...exceptions import (
    AuthenticationRequired,
    PaymentDeclined,
    ProviderError,
    SignatureVerificationError,
    WebhookError,
)
from ...security.signatures import PayPalWebhookVerifier, get_header
from ...types import (
    InboundWebhook,
    PaymentEvent,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundEvent,
    WebhookEffect,
)
from . import wire
from .wire import Call

if TYPE_CHECKING:
    from .provider import PayPalProvider

__all__ = ["HANDLED_EVENTS", "build_verifier", "check_transmission_time", "parse", "verify"]

HEADER_ID = PayPalWebhookVerifier.HEADER_ID
HEADER_TIME = PayPalWebhookVerifier.HEADER_TIME
HEADER_SIG = PayPalWebhookVerifier.HEADER_SIG
HEADER_CERT_URL = PayPalWebhookVerifier.HEADER_CERT_URL
HEADER_ALGO = PayPalWebhookVerifier.HEADER_ALGO

_CAPTURE_EVENTS = {
    "PAYMENT.CAPTURE.COMPLETED": ProviderStatus.CAPTURED,
    "PAYMENT.CAPTURE.PENDING": ProviderStatus.PROCESSING,
    "PAYMENT.CAPTURE.DENIED": ProviderStatus.FAILED,
    "PAYMENT.CAPTURE.DECLINED": ProviderStatus.FAILED,
}
#: The event types ``parse`` acts on (subscribe to these in PayPal's dashboard).
HANDLED_EVENTS = (
    "CHECKOUT.ORDER.APPROVED",
    "CHECKOUT.ORDER.COMPLETED",
    *_CAPTURE_EVENTS,
    "PAYMENT.CAPTURE.REFUNDED",
    "PAYMENT.CAPTURE.REVERSED",
    "PAYMENT.AUTHORIZATION.CREATED",
    "PAYMENT.AUTHORIZATION.VOIDED",
)
_REFUND_STATUSES = {"COMPLETED": "completed", "PENDING": "pending"}


def _suffixes(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        return default
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part) for part in value)


def _missing_webhook_id() -> SignatureVerificationError:
    return SignatureVerificationError(
        "PayPal OPTIONS['WEBHOOK_ID'] is not set, so no delivery can be verified: copy the "
        "webhook's ID from the PayPal developer dashboard (Apps & Credentials -> your app -> "
        "Webhooks) into the provider's OPTIONS."
    )


def build_verifier(provider: PayPalProvider) -> PayPalWebhookVerifier:
    ids = provider.webhook_ids()
    if not ids:
        raise _missing_webhook_id()
    return PayPalWebhookVerifier(
        ids,
        trusted_roots=provider.trusted_roots(),
        cert_fetcher=provider.fetch_certificate,
        allowed_cert_hosts=_suffixes(provider.options.get("WEBHOOK_CERT_HOSTS"), (".paypal.com",)),
        allowed_cert_subjects=_suffixes(
            provider.options.get("WEBHOOK_CERT_SUBJECTS"), (".paypal.com",)
        ),
        now=provider.wall_clock,
    )


def check_transmission_time(provider: PayPalProvider, headers: Mapping[str, str]) -> None:
    """Refuse a delivery transmitted more than ``WEBHOOK_TOLERANCE`` seconds from now."""
    tolerance = provider.webhook_tolerance()
    if tolerance is None:
        return
    raw = (get_header(headers, HEADER_TIME) or "").strip()
    try:
        sent = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureVerificationError(
            f"The {HEADER_TIME} header {raw!r} is not an ISO 8601 time."
        ) from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=dt.UTC)
    age = provider.wall_clock() - sent.timestamp()
    if age > tolerance:
        raise SignatureVerificationError(
            f"The PayPal delivery was transmitted {int(age)} s ago, beyond the {tolerance} s "
            "tolerance (OPTIONS['WEBHOOK_TOLERANCE']): a replayed or long-delayed delivery, or "
            "this server's clock is wrong (check NTP). PayPal retries with a fresh transmission."
        )
    if -age > tolerance:
        raise SignatureVerificationError(
            f"The PayPal delivery's {HEADER_TIME} is {int(-age)} s in the future, beyond the "
            f"{tolerance} s tolerance: this server's clock is wrong (check NTP)."
        )


def _verify_online(
    provider: PayPalProvider, body: bytes, headers: Mapping[str, str], ids: list[str]
) -> None:
    values: dict[str, str] = {}
    for name in (HEADER_ID, HEADER_TIME, HEADER_SIG, HEADER_CERT_URL, HEADER_ALGO):
        value = get_header(headers, name)
        if not value:
            raise SignatureVerificationError(
                f"The {name} header is missing: is this request really from PayPal, and does "
                "every proxy pass PAYPAL-* headers through?"
            )
        values[name] = value.strip()
    try:
        event = json.loads(body)
    except ValueError:
        raise SignatureVerificationError(
            "The body is not JSON, so PayPal's verify API cannot check it."
        ) from None
    for webhook_id in ids:
        try:
            answer = provider.send(
                Call(
                    "POST",
                    "/v1/notifications/verify-webhook-signature",
                    {
                        "auth_algo": values[HEADER_ALGO],
                        "cert_url": values[HEADER_CERT_URL],
                        "transmission_id": values[HEADER_ID],
                        "transmission_sig": values[HEADER_SIG],
                        "transmission_time": values[HEADER_TIME],
                        "webhook_id": webhook_id,
                        "webhook_event": event,
                    },
                )
            )
        except ProviderError as exc:
            raise SignatureVerificationError(
                f"PayPal's verify-webhook-signature API could not be asked ({exc.code}): the "
                "delivery is refused with a non-2xx answer, so PayPal will send it again."
            ) from exc
        if isinstance(answer, Mapping) and answer.get("verification_status") == "SUCCESS":
            return
    raise SignatureVerificationError(
        "PayPal's verify-webhook-signature API answered FAILURE: check OPTIONS['WEBHOOK_ID'] "
        "(the webhook's id in the dashboard; sandbox and live differ) and that the raw body "
        "reaches paydesk unmodified."
    )


def verify(provider: PayPalProvider, body: bytes, headers: Mapping[str, str]) -> InboundWebhook:
    ids = provider.webhook_ids()
    if not ids:
        raise _missing_webhook_id()
    if provider.webhook_verification == "online":
        _verify_online(provider, body, headers, ids)
    else:
        provider.verifier().verify(body, headers, now=provider.wall_clock())
    check_transmission_time(provider, headers)
    signature = get_header(headers, HEADER_SIG) or ""
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
        event_type=str(payload.get("event_type", "")),
        payload=payload,
        signature=signature,
    )


# -- parsing ----------------------------------------------------------------------------------


def _related_order_id(resource: Mapping[str, Any]) -> str:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return str(related.get("order_id", "")) if isinstance(related, Mapping) else ""


def _order_ids(order: Mapping[str, Any]) -> tuple[str, str]:
    units = order.get("purchase_units") or [{}]
    return str(units[0].get("custom_id", "")), str(order["id"])


def _order_approved(provider: PayPalProvider, order: Mapping[str, Any]) -> list[WebhookEffect]:
    if not provider.capture_on_approval:
        return []  # the return view's confirm_payment completes the order
    payment_id, order_id = _order_ids(order)
    try:
        completed = provider.run(provider._complete_op(order))
    except (PaymentDeclined, AuthenticationRequired) as exc:
        # The buyer's funding source failed at capture: the payment failed (a retry makes a
        # new order the buyer approves again). Anything retryable propagates: the delivery
        # is stored as failed and processed again later.
        result = PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id=order_id,
            failure=ProviderFailure(
                code=exc.code, message=exc.message, provider_code=exc.provider_code or ""
            ),
            raw={"order_id": order_id, "error": exc.as_dict()},
        )
        return [PaymentEvent(result=result, payment_id=payment_id, provider_payment_id=order_id)]
    return [
        PaymentEvent(
            result=wire.order_result(completed),
            payment_id=payment_id,
            provider_payment_id=order_id,
        )
    ]


def _capture_event(event_type: str, capture: Mapping[str, Any]) -> PaymentEvent:
    order_id = _related_order_id(capture)
    payment_id = str(capture.get("custom_id", ""))
    status = _CAPTURE_EVENTS[event_type]
    raw = {"order_id": order_id, "capture": wire.brief(capture), "event_type": event_type}
    if status == ProviderStatus.CAPTURED:
        result = PaymentResult(
            status=status,
            provider_payment_id=order_id,
            amount_captured=wire.money_of(capture["amount"]),
            raw=raw,
        )
    elif status == ProviderStatus.FAILED:
        details = capture.get("status_details") or {}
        reason = str(details.get("reason", "")) if isinstance(details, Mapping) else ""
        result = PaymentResult(
            status=status,
            provider_payment_id=order_id,
            failure=ProviderFailure(
                code="card_declined",
                message="PayPal declined the capture: ask the buyer to pay another way."
                + (f" ({reason})" if reason else ""),
                provider_code=reason or event_type.rsplit(".", 1)[-1],
            ),
            raw=raw,
        )
    else:
        result = PaymentResult(status=status, provider_payment_id=order_id, raw=raw)
    return PaymentEvent(result=result, payment_id=payment_id, provider_payment_id=order_id)


def _refund_event(
    provider: PayPalProvider, refund: Mapping[str, Any], *, reversal: bool
) -> RefundEvent:
    order_id = _related_order_id(refund)
    payment_id = ""
    if not order_id:
        capture_id = wire.capture_id_from_links(refund)
        if not capture_id:
            raise WebhookError(
                f"PayPal refund {refund.get('id')} names no capture (no 'up' link); cannot "
                "tell which payment it belongs to."
            )
        capture = provider.send(Call("GET", f"/v2/payments/captures/{capture_id}"))
        order_id = _related_order_id(capture)
        payment_id = str(capture.get("custom_id", ""))
    status = _REFUND_STATUSES.get(str(refund.get("status", "")), "failed")
    if reversal:
        reason = "reversed by PayPal (chargeback or reversal)"
    else:
        reason = str(refund.get("note_to_payer", ""))
    return RefundEvent(
        status=status,
        amount=wire.money_of(refund.get("amount")),
        payment_id=payment_id,
        provider_payment_id=order_id,
        # paydesk sends its refund id as the refund's custom_id; a reversal has none.
        refund_id="" if reversal else str(refund.get("custom_id", "")),
        provider_refund_id=str(refund["id"]),
        reason=reason,
        failure=(
            ProviderFailure(
                code="processing_error",
                message=f"PayPal reports the refund as {refund.get('status')}.",
                provider_code=str(refund.get("status", "")),
            )
            if status == "failed"
            else None
        ),
        raw=wire.brief(refund),
    )


def _authorization_event(event_type: str, authorization: Mapping[str, Any]) -> PaymentEvent:
    order_id = _related_order_id(authorization)
    payment_id = str(authorization.get("custom_id", ""))
    raw = {"order_id": order_id, "authorization": wire.brief(authorization)}
    if event_type == "PAYMENT.AUTHORIZATION.VOIDED":
        result = PaymentResult(
            status=ProviderStatus.CANCELLED, provider_payment_id=order_id, raw=raw
        )
    else:
        result = PaymentResult(
            status=ProviderStatus.AUTHORIZED,
            provider_payment_id=order_id,
            amount_authorized=wire.money_of(authorization["amount"]),
            raw=raw,
        )
    return PaymentEvent(result=result, payment_id=payment_id, provider_payment_id=order_id)


def parse(provider: PayPalProvider, event: InboundWebhook) -> list[WebhookEffect]:
    payload = event.payload
    event_type = event.event_type
    if event_type not in HANDLED_EVENTS:
        return []  # an event type paydesk does not act on: stored and ignored
    try:
        resource = payload["resource"] if isinstance(payload, Mapping) else None
        if not isinstance(resource, Mapping):
            raise TypeError("'resource' is not an object")
        if event_type == "CHECKOUT.ORDER.APPROVED":
            return _order_approved(provider, resource)
        if event_type == "CHECKOUT.ORDER.COMPLETED":
            payment_id, order_id = _order_ids(resource)
            return [
                PaymentEvent(
                    result=wire.order_result(resource),
                    payment_id=payment_id,
                    provider_payment_id=order_id,
                )
            ]
        if event_type in _CAPTURE_EVENTS:
            return [_capture_event(event_type, resource)]
        if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
            reversal = event_type == "PAYMENT.CAPTURE.REVERSED"
            return [_refund_event(provider, resource, reversal=reversal)]
        if event_type in ("PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.AUTHORIZATION.VOIDED"):
            return [_authorization_event(event_type, resource)]
    except (KeyError, TypeError, IndexError) as exc:
        raise WebhookError(
            f"PayPal event {event.event_id} ({event_type}) lacks a field it needs: {exc}"
        ) from exc
    except ValueError as exc:
        raise WebhookError(f"PayPal event {event.event_id} is malformed: {exc}") from exc
    return []
