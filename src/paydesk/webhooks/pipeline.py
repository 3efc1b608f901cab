"""The webhook pipeline: every check a delivery passes before paydesk acts on it.

This module owns one decision: the order of the checks and the answer each failure gets.

1. unknown or webhook-less provider alias -> 404
2. body larger than ``WEBHOOKS["MAX_BODY_SIZE"]`` -> 413 (nothing read beyond the limit)
3. client IP outside the provider's allowlist (``X-Forwarded-For`` honoured only from
   ``SECURITY["TRUSTED_PROXIES"]``) -> 403
4. over the rate limit for this provider and client -> 429 with ``Retry-After``
5. signature (and timestamp, where the scheme has one) wrong over the raw bytes -> 400,
   nothing stored, no state change
6. store the raw delivery, deduplicated on ``(provider, event_id)``; an authentic body that
   is not JSON is stored as dead and answered 400
7. already processed -> 200 ``duplicate``; otherwise process inline or enqueue a Django
   Task; an inline failure -> 500, so the provider retries (it is also stored and retried
   by paydesk itself).

It is framework-light on purpose: the Django view adapts an ``HttpRequest`` to a
``WebhookRequest``, and the sandbox provider hands its deliveries to ``handle`` directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from ..conf import _holds_env, paydesk_settings
from ..exceptions import ConfigurationError, NotSupported, SignatureVerificationError
from ..models import WebhookStatus
from ..providers.registry import get_payment_provider, providers
from ..security.ipfilter import IPAllowlist, allowlist_for_provider, client_ip
from ..security.ratelimit import RateLimiter, security_settings
from ..services import webhooks as service
from ..types import Capability

__all__ = ["WebhookRequest", "WebhookResponse", "handle"]

logger = logging.getLogger("paydesk.webhooks")


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    alias: str
    body: bytes
    headers: Mapping[str, str]
    remote_addr: str | None
    #: The declared length, when known before reading the body.
    content_length: int | None = None
    #: True when more bytes than ``MAX_BODY_SIZE`` were offered (the reader stopped early).
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str, **headers: str) -> WebhookResponse:
    return WebhookResponse(status, {"code": code, "message": message}, dict(headers))


def max_body_size() -> int:
    return int(paydesk_settings.WEBHOOKS["MAX_BODY_SIZE"])


@dataclass(frozen=True, slots=True)
class _Gate:
    """One provider's checks before the signature, as its settings say (see ``_gate``)."""

    trusted_proxies: tuple[str, ...]
    allowlist: IPAllowlist
    limiter: RateLimiter | None  # None: rate limiting is off for this provider


_gates: dict[str, _Gate] = {}
_gates_lock = threading.Lock()


def _gate(alias: str) -> _Gate:
    """The allowlist, rate limiter and trusted proxies for ``alias``'s endpoint.

    Built from settings once per process and kept until ``setting_changed``, so a delivery
    does not parse the allowlist's networks and merge the security settings again (they are
    the same for every delivery). Settings that hold ``env()`` markers are read when used,
    as everywhere else: then the gate is rebuilt for every delivery.
    """
    gate = _gates.get(alias)
    if gate is not None:
        return gate
    security = security_settings()
    limiter = RateLimiter.for_provider(alias)
    gate = _Gate(
        trusted_proxies=tuple(security.get("TRUSTED_PROXIES") or ()),
        allowlist=allowlist_for_provider(alias),
        # Resolved now: the limiter would otherwise read the settings again on each check.
        limiter=(
            RateLimiter.for_provider(
                alias, requests=limiter.requests, window=limiter.window, enabled=True
            )
            if limiter.enabled
            else None
        ),
    )
    user = paydesk_settings.user_settings
    if not (_holds_env(user.get("SECURITY")) or _holds_env(user.get("PROVIDERS"))):
        with _gates_lock:
            _gates[alias] = gate
    return gate


@receiver(setting_changed)
def _forget_gates(*, setting: str, **kwargs: Any) -> None:
    if setting == "PAYDESK":
        with _gates_lock:
            _gates.clear()


def handle(request: WebhookRequest) -> WebhookResponse:
    alias = request.alias
    if alias not in providers.aliases():
        return _error(404, "unknown_provider", f"No payment provider is configured as {alias!r}.")
    try:
        provider = get_payment_provider(alias)
    except ConfigurationError as exc:
        logger.error("webhook for misconfigured provider %s: %s", alias, exc.message)
        return _error(503, "provider_misconfigured", "This provider is not usable right now.")
    if not provider.supports(Capability.WEBHOOKS):
        return _error(404, "webhooks_not_supported", f"Provider {alias!r} sends no webhooks.")

    limit = max_body_size()
    too_big = request.truncated or len(request.body) > limit
    if too_big or (request.content_length or 0) > limit:
        return _error(413, "payload_too_large", f"Webhook bodies are limited to {limit} bytes.")

    gate = _gate(alias)
    meta = {"REMOTE_ADDR": request.remote_addr or ""}
    # X-Forwarded-For counts only when the peer is a trusted proxy: without any, skip it.
    forwarded = _header(request.headers, "X-Forwarded-For") if gate.trusted_proxies else ""
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    ip = client_ip(meta, gate.trusted_proxies)
    if not gate.allowlist.allows(ip):
        logger.warning("webhook for %s refused from %s: not in the allowlist", alias, ip)
        return _error(403, "ip_not_allowed", "This address may not send webhooks here.")

    limited = gate.limiter.check(f"webhook:{alias}:{ip}") if gate.limiter else None
    if limited is not None and not limited.allowed:
        return _error(
            429,
            "rate_limited",
            "Too many webhook deliveries; retry later.",
            **{"Retry-After": str(max(int(limited.retry_after), 1))},
        )

    try:
        inbound = provider.verify_webhook(request.body, request.headers)
    except NotSupported:
        return _error(404, "webhooks_not_supported", f"Provider {alias!r} sends no webhooks.")
    except SignatureVerificationError as exc:
        logger.warning("webhook for %s from %s failed verification: %s", alias, ip, exc.message)
        return _error(400, exc.code, exc.message)
    except ConfigurationError as exc:
        # E.g. no webhook secret configured: our fault, not the sender's; 503 makes the
        # provider retry once the secret is set (paydesk.W002 names the missing option).
        logger.error("webhook for %s cannot be verified: %s", alias, exc.message)
        return _error(503, "provider_misconfigured", "This provider is not usable right now.")

    delivery, created = service.receive_webhook(
        provider=alias, inbound=inbound, body=request.body, headers=request.headers, ip_address=ip
    )
    if inbound.error:
        return _error(400, "malformed_payload", inbound.error)
    if delivery.success:
        status = "duplicate" if not created else delivery.status
        return WebhookResponse(200, {"status": status, "id": delivery.event_id})

    # The provider sending a failed (even dead-lettered) event again is a fresh chance.
    force = not created
    if paydesk_settings.WEBHOOKS["PROCESS"] == "inline":
        delivery = service.process_webhook(delivery=delivery, force=force)
    else:
        from ..tasks import drains_deliveries, enqueue_webhook, schedule_drain

        if drains_deliveries():
            # The stored row is the queue; a drain task that starts after now will run it
            # (what enqueue_webhook does on such a backend, without asking it again).
            if not created:
                service.rearm_redelivery(delivery)
            schedule_drain()
            return WebhookResponse(202, {"status": "pending", "id": delivery.event_id})
        attempts = delivery.attempts
        enqueue_webhook(delivery.pk, force=force)
        # An immediate backend has already run it; read back only what the answer needs.
        delivery.refresh_from_db(fields=["status", "success", "attempts"])
        if delivery.attempts == attempts and not delivery.success:
            # A queued backend has not run it yet; its earlier outcome is not this answer.
            return WebhookResponse(202, {"status": "pending", "id": delivery.event_id})
    return _outcome(delivery)


def _outcome(delivery: Any) -> WebhookResponse:
    body = {"status": delivery.status, "id": delivery.event_id}
    if delivery.success:
        return WebhookResponse(200, body)
    if delivery.status in (WebhookStatus.FAILED, WebhookStatus.DEAD):
        # 5xx so the provider redelivers; paydesk keeps the delivery and retries it too.
        body["message"] = "Processing failed; the delivery is stored and will be retried."
        return WebhookResponse(500, body)
    return WebhookResponse(202, body)  # queued, or being processed by another worker


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return ""
