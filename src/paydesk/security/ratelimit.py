"""Fixed-window rate limiting on Django's cache.

This module owns one decision: how many requests one identifier (a client IP, an API key,
a provider alias) may make per window, counted so that concurrent requests never overshoot.

The count is kept in Django's cache under ``<prefix>:<identifier>:<window number>`` and
raised with ``cache.add(key, 0)`` followed by ``cache.incr(key)``. Both are atomic on the
Redis and local-memory backends, so N concurrent requests get N distinct counts; a
get-then-set would let them all read the same count and all pass. Use Redis (Django's
``django.core.cache.backends.redis.RedisCache``) in production: the local-memory cache
counts per process, so with four worker processes the real limit is four times the setting.

Settings (``PAYDESK["SECURITY"]``): ``ENABLE_RATE_LIMITING`` (default ``True``),
``RATE_LIMIT_REQUESTS`` (default 100) and ``RATE_LIMIT_WINDOW`` (seconds, default 60); a
provider's ``OPTIONS`` may set its own ``RATE_LIMIT_REQUESTS`` / ``RATE_LIMIT_WINDOW``
(:meth:`RateLimiter.for_provider`). Settings are read when a limiter is used, never at
import time.

If the cache itself fails (Redis down), the limiter lets the request through and logs the
error (``fail_open=True``, the default): a rate limiter is a guard against floods, not an
authentication step, and an outage of the cache must not stop every payment webhook.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches

from ..conf import paydesk_settings, resolve
from ..exceptions import ConfigurationError

__all__ = ["RateLimitResult", "RateLimiter", "security_settings"]

logger = logging.getLogger("paydesk.security")

_SECURITY_DEFAULTS: dict[str, Any] = {
    "ENABLE_RATE_LIMITING": True,
    "RATE_LIMIT_REQUESTS": 100,
    "RATE_LIMIT_WINDOW": 60,
    "TRUSTED_PROXIES": [],
}
# Identifiers that are safe as cache-key text on every backend (memcached forbids spaces
# and control characters and limits keys to 250 bytes); anything else is hashed.
_SAFE_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:@\-]{1,100}")


def security_settings() -> dict[str, Any]:
    """``PAYDESK["SECURITY"]`` merged over its defaults, ``env()`` markers resolved."""
    configured = paydesk_settings.get("SECURITY") or {}
    if not isinstance(configured, Mapping):
        raise ConfigurationError('PAYDESK["SECURITY"] must be a dict.')
    return resolve({**_SECURITY_DEFAULTS, **configured})


def provider_options(alias: str) -> Mapping[str, Any]:
    providers = paydesk_settings.get("PROVIDERS") or {}
    if alias not in providers:
        raise ConfigurationError(
            f'No provider {alias!r} in PAYDESK["PROVIDERS"]; configured: '
            f"{', '.join(sorted(providers)) or 'none'}."
        )
    return resolve((providers[alias] or {}).get("OPTIONS") or {})


def _positive_int(value: Any, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return value


@dataclass(frozen=True)
class RateLimitResult:
    """The outcome of one counted request."""

    allowed: bool
    remaining: int  # requests left in this window after this one
    retry_after: int  # seconds until the window resets when refused; 0 when allowed


class RateLimiter:
    """Allow at most ``requests`` per ``window`` seconds per identifier.

    ``requests`` / ``window`` default to ``PAYDESK["SECURITY"]`` (read on each use);
    ``enabled`` defaults to ``ENABLE_RATE_LIMITING``. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        requests: int | None = None,
        window: int | None = None,
        *,
        cache_alias: str = "default",
        prefix: str = "paydesk:rl",
        enabled: bool | None = None,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if requests is not None:
            _positive_int(requests, name="requests", minimum=0)
        if window is not None:
            _positive_int(window, name="window", minimum=1)
        self._requests = requests
        self._window = window
        self._enabled = enabled
        self.cache_alias = cache_alias
        self.prefix = prefix
        self.fail_open = fail_open
        self.clock = clock

    @classmethod
    def for_provider(cls, alias: str, **kwargs: Any) -> RateLimiter:
        """A limiter for one provider's webhooks, with its own counters and optional limits
        from the provider's ``OPTIONS`` (``RATE_LIMIT_REQUESTS`` / ``RATE_LIMIT_WINDOW``)."""
        options = provider_options(alias)
        kwargs.setdefault("requests", options.get("RATE_LIMIT_REQUESTS"))
        kwargs.setdefault("window", options.get("RATE_LIMIT_WINDOW"))
        kwargs.setdefault("prefix", f"paydesk:rl:{alias}")
        return cls(**kwargs)

    @property
    def requests(self) -> int:
        if self._requests is not None:
            return self._requests
        return _positive_int(
            security_settings()["RATE_LIMIT_REQUESTS"],
            name='PAYDESK["SECURITY"]["RATE_LIMIT_REQUESTS"]',
            minimum=0,
        )

    @property
    def window(self) -> int:
        if self._window is not None:
            return self._window
        return _positive_int(
            security_settings()["RATE_LIMIT_WINDOW"],
            name='PAYDESK["SECURITY"]["RATE_LIMIT_WINDOW"]',
            minimum=1,
        )

    @property
    def enabled(self) -> bool:
        if self._enabled is not None:
            return self._enabled
        return bool(security_settings()["ENABLE_RATE_LIMITING"])

    def key(self, identifier: str, window_number: int) -> str:
        if not _SAFE_IDENTIFIER.fullmatch(identifier):
            identifier = "h_" + hashlib.sha256(identifier.encode()).hexdigest()[:32]
        return f"{self.prefix}:{identifier}:{window_number}"

    def _count(self, key: str, timeout: int) -> int:
        cache = caches[self.cache_alias]
        # add() is a no-op when the key exists; incr() is atomic. If the key expired between
        # the two (possible only at a window edge), incr() raises ValueError: add it again.
        for _ in range(3):
            cache.add(key, 0, timeout)
            try:
                return int(cache.incr(key))
            except ValueError:
                continue
        raise ConfigurationError(
            f"The cache {self.cache_alias!r} cannot keep a counter (is it a DummyCache?); "
            "point the rate limiter at a real cache (Redis in production)."
        )

    def check(self, identifier: str) -> RateLimitResult:
        """Count one request for ``identifier`` and say whether it is allowed."""
        limit = self.requests
        if not self.enabled:
            return RateLimitResult(allowed=True, remaining=limit, retry_after=0)
        window = self.window
        now = self.clock()
        window_number = int(now // window)
        reset_in = max(1, math.ceil((window_number + 1) * window - now))
        key = self.key(str(identifier), window_number)
        try:
            # The key outlives its window by a little so clock jitter between processes
            # does not restart a count; later windows use a new key anyway.
            count = self._count(key, timeout=reset_in + 1)
        except ConfigurationError:
            raise
        except Exception:
            if not self.fail_open:
                raise
            logger.exception("rate limiter cache %r failed; allowing the request", self.cache_alias)
            return RateLimitResult(allowed=True, remaining=limit, retry_after=0)
        allowed = count <= limit
        return RateLimitResult(
            allowed=allowed,
            remaining=max(0, limit - count),
            retry_after=0 if allowed else reset_in,
        )

    def allow(self, identifier: str) -> bool:
        return self.check(identifier).allowed
