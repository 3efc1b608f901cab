"""paydesk's security toolkit: webhook signatures, rate limits, IP filtering, idempotency, audit.

This package owns one decision: which security tools paydesk offers and under which names.
Each tool lives in its own module, owns one decision (its docstring says which) and is
usable on its own in a host project's views, without the rest of paydesk's pipeline:

* :mod:`.signatures`: webhook signature verifiers (HMAC, Stripe, sandbox, iyzico,
  NOWPayments, PayPal), constant-time, with several active secrets for rotation;
* :mod:`.ratelimit`: atomic fixed-window rate limiting on Django's cache;
* :mod:`.ipfilter`: the client IP behind trusted proxies, and IP allowlists;
* :mod:`.idempotency`: run an operation once per key, decided by a unique index;
* :mod:`.audit`: append-only audit entries that fail loudly.

Names are imported lazily (PEP 562), so ``from paydesk.security.signatures import ...``
works before Django's app registry is ready; only the idempotency and audit names need
the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit import AuditLogger, audit_request_ip
    from .idempotency import IdempotencyManager, idempotent
    from .ipfilter import IPAllowlist, allowlist_for_provider, client_ip
    from .ratelimit import RateLimiter, RateLimitResult
    from .signatures import (
        HMACVerifier,
        IyzicoWebhookVerifier,
        NowPaymentsVerifier,
        PayPalWebhookVerifier,
        SandboxWebhookVerifier,
        StripeSignatureVerifier,
        TimestampedSignatureVerifier,
    )

_EXPORTS = {
    "AuditLogger": "audit",
    "audit_request_ip": "audit",
    "IdempotencyManager": "idempotency",
    "idempotent": "idempotency",
    "IPAllowlist": "ipfilter",
    "allowlist_for_provider": "ipfilter",
    "client_ip": "ipfilter",
    "RateLimiter": "ratelimit",
    "RateLimitResult": "ratelimit",
    "HMACVerifier": "signatures",
    "IyzicoWebhookVerifier": "signatures",
    "NowPaymentsVerifier": "signatures",
    "PayPalWebhookVerifier": "signatures",
    "SandboxWebhookVerifier": "signatures",
    "StripeSignatureVerifier": "signatures",
    "TimestampedSignatureVerifier": "signatures",
}

__all__ = [
    "AuditLogger",
    "HMACVerifier",
    "IPAllowlist",
    "IdempotencyManager",
    "IyzicoWebhookVerifier",
    "NowPaymentsVerifier",
    "PayPalWebhookVerifier",
    "RateLimitResult",
    "RateLimiter",
    "SandboxWebhookVerifier",
    "StripeSignatureVerifier",
    "TimestampedSignatureVerifier",
    "allowlist_for_provider",
    "audit_request_ip",
    "client_ip",
    "idempotent",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
