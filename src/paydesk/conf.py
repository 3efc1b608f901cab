"""The one ``PAYDESK`` settings dict, read lazily.

This module owns one decision: where paydesk's configuration comes from and when it is read.
Nothing is read at import time: ``paydesk_settings.X`` looks at ``settings.PAYDESK`` on first
use, merged over ``DEFAULTS``, and forgets it when Django's ``setting_changed`` fires (tests
using ``override_settings`` see their values). Secrets can be named as ``env("VAR")`` so that
settings files hold no secret and a missing variable is reported by ``manage.py check``.

Defaults (every key is optional)::

    PAYDESK = {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {"sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                                  "OPTIONS": {}}},
        "DEFAULT_CURRENCY": "USD",
        "RATES": {...},                    # exchange rates: source, rounding (see DEFAULTS)
        "PROCESSING_FEE_RATE": "0",        # percent of the amount, e.g. "3" for 3 %
        "REFUND_POLICY": "paydesk.policy.RefundPolicy",
        "PUBLIC_BASE_URL": None,           # absolute base URL advertised to providers
        "SANDBOX_IN_PRODUCTION": False,    # allow the sandbox when DEBUG is False
        "WEBHOOK_MODEL": "paydesk.WebhookEvent",
        "WEBHOOKS": {...},                 # pipeline limits and retries (see DEFAULTS)
        "SECURITY": {...},                 # rate limiting and trusted proxies
        "FRAUD": {...},                    # fraud rules and thresholds (docs/fraud.md)
        "ANALYTICS": {...},                # report limits (docs/analytics.md)
        "AUTO_REFUNDS": {...},             # automatic refund rules (docs/fraud.md)
        "TASK_BACKEND": "default",         # alias in Django's TASKS setting
        "RETRY": {...},                    # retry_with_backoff defaults (paydesk.retry)
        "LOGGING": {...},                  # log level, file, JSON, redaction (paydesk.logging)
        "API": {...},                      # REST API: pagination, idempotency, throttling
        "HEALTH": {...},                   # provider health checks (docs/operations.md)
        "METRICS": {...},                  # Prometheus metrics and their endpoint
        "RECONCILE": {...},                # reconciliation thresholds
        "DASHBOARD": {...},                # the staff dashboard (docs/dashboard.md)
    }

Nested dicts (``WEBHOOKS``, ``SECURITY``, ``API``) merge over their defaults key by key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "Env", "env", "paydesk_settings", "resolve"]

DEFAULTS: dict[str, Any] = {
    "DEFAULT_PROVIDER": "sandbox",
    "PROVIDERS": {
        "sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}},
    },
    "DEFAULT_CURRENCY": "USD",
    # Exchange rates (paydesk.rates, paydesk.services.rates; docs/rates.md).
    "RATES": {
        # Where `update_exchange_rates` gets rates: a paydesk.rates.RatesSource subclass.
        # paydesk.rates.ManualRatesSource fetches nothing: staff enter rates in the admin.
        "SOURCE": "paydesk.rates.ECBRatesSource",
        "ECB_URL": "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml",
        "TIMEOUT": 10,  # seconds, for HTTP sources
        # The currency cross rates go through (USD->TRY via EUR); None: the source's base
        # (EUR for the ECB), else DEFAULT_CURRENCY.
        "CROSS_VIA": None,
        # How a converted amount is rounded to the target currency's ISO exponent.
        "ROUNDING": "ROUND_HALF_EVEN",
        # Refuse a rate older than this many days before the conversion date; None: any age.
        "MAX_AGE_DAYS": None,
    },
    "PROCESSING_FEE_RATE": "0",
    "REFUND_POLICY": "paydesk.policy.RefundPolicy",
    "PUBLIC_BASE_URL": None,
    "SANDBOX_IN_PRODUCTION": False,
    "WEBHOOK_MODEL": "paydesk.WebhookEvent",
    "WEBHOOKS": {
        "MAX_BODY_SIZE": 1_048_576,  # bytes; larger deliveries get 413
        "PROCESS": "task",  # "task": enqueue a Django Task; "inline": process in the request
        "MAX_ATTEMPTS": 8,  # then the delivery is dead-lettered (status "dead")
        "RETRY_BASE_DELAY": 30,  # seconds; doubles per attempt
        "RETRY_MAX_DELAY": 6 * 3600,
        "LEASE_SECONDS": 300,  # a processing attempt older than this is presumed dead
        # Task mode on a backend that can defer tasks: each process enqueues at most one
        # drain_webhooks_task per this many seconds (the stored pending row is the queue);
        # 0: one per delivery.
        "DRAIN_INTERVAL": 0.5,
        "RETENTION_DAYS": 30,  # cleanup_webhooks default
        "UNHEALTHY_BACKLOG": 100,  # /webhooks/health/ answers 503 above this many waiting
        "UNHEALTHY_FAILURE_RATE": 0.5,  # ... or above this share failing in the last hour
    },
    "SECURITY": {
        "ENABLE_RATE_LIMITING": True,
        "RATE_LIMIT_REQUESTS": 100,
        "RATE_LIMIT_WINDOW": 60,
        "TRUSTED_PROXIES": [],
    },
    # Fraud screening before a payment is sent (paydesk.services.fraud, docs/fraud.md). No
    # rules (the default): every payment is allowed and nothing is recorded.
    "FRAUD": {
        "RULES": [],  # [{"RULE": "velocity" or "dotted.path", "OPTIONS": {...}}, ...]
        "REVIEW_THRESHOLD": 50,  # total score from which a payment is held for review
        "BLOCK_THRESHOLD": 100,  # total score from which it is refused
        "IP_COUNTRY_RESOLVER": None,  # dotted path: callable(ip) -> ISO country code or ""
    },
    # Reports (paydesk.services.analytics, docs/analytics.md).
    "ANALYTICS": {
        "MAX_RANGE_DAYS": 1096,  # the widest date range one report may cover
        "MAX_SERIES_POINTS": 1000,  # the most periods one time series may return
        "TOP_REASONS": 10,  # refund reasons listed per currency
    },
    # Automatic refunds (paydesk.services.autorefunds, docs/fraud.md).
    "AUTO_REFUNDS": {
        "RULES": [],  # [{"RULE": "duplicate_reference" or "dotted.path", "OPTIONS": {...}}]
        "BATCH_SIZE": 200,  # payments refunded per rule and run, at most
    },
    "TASK_BACKEND": "default",
    # Defaults of paydesk.retry (retry_with_backoff, RetryableOperation): the booking seed's
    # PAYMENT_RETRY_ATTEMPTS / PAYMENT_RETRY_DELAY (docs/operations.md#retries).
    "RETRY": {
        "ATTEMPTS": 3,  # calls in all, the first included
        "DELAY": 1.0,  # seconds before the first retry; then times 2 per retry (jittered)
        "MAX_DELAY": 60.0,  # seconds; no wait between two attempts is longer
    },
    # paydesk.logging (docs/operations.md#logging). LEVEL, FILE and JSON are read by
    # setup_django_logging(); FILTER_SENSITIVE_DATA by the redaction filter on every record.
    "LOGGING": {
        "LEVEL": "INFO",
        "FILE": None,  # a path: also write paydesk's records there (WatchedFileHandler)
        "FILTER_SENSITIVE_DATA": True,  # redact card numbers, CVCs, keys, secrets
        "JSON": False,  # one JSON object per line (paydesk.logging.JSONFormatter)
    },
    "API": {
        "PAGE_SIZE": 25,  # list endpoints; ?page_size= may ask for up to MAX_PAGE_SIZE
        "MAX_PAGE_SIZE": 100,
        "IDEMPOTENCY_TTL_HOURS": 24,  # Idempotency-Key responses are replayed this long
        "IDEMPOTENCY_LOCK_SECONDS": 300,  # an unfinished claim older than this is abandoned
        "WRITE_THROTTLE_RATE": None,  # e.g. "60/min" per principal for POST/PATCH/DELETE
    },
    # Provider health checks (paydesk.health, docs/operations.md).
    "HEALTH": {
        "TIMEOUT": 5.0,  # seconds each provider's check may take; then it is "timed out"
        "CACHE_SECONDS": 30,  # the health endpoint reuses its last answer this long
        "PRODUCTION": False,  # the endpoint applies live-mode rules (test keys are unhealthy)
    },
    # Prometheus metrics (paydesk.metrics, docs/operations.md).
    "METRICS": {
        "ENABLED": True,  # count (when prometheus_client is installed)
        "TOKEN": None,  # bearer token for the metrics endpoint; staff may always read it
    },
    # The staff dashboard (paydesk.dashboard, docs/dashboard.md).
    "DASHBOARD": {
        "TITLE": "paydesk",  # shown in the header and the page titles
        "LOGIN_URL": None,  # where anonymous visitors go; None: the admin's login, else LOGIN_URL
        "POLL_SECONDS": 30,  # live numbers refresh this often (paused while the tab is hidden)
        "PAGE_SIZE": 50,  # rows per page in the payments, deliveries and audit lists
    },
    # Reconciliation (paydesk.services.reconcile, docs/operations.md).
    "RECONCILE": {
        "OLDER_THAN_MINUTES": 30,  # payments and refunds unsettled this long are checked
        "FINAL_TIMEOUT_HOURS": 72,  # ... and given up on after this long (FINAL_STATUS)
        # alias -> "failed", "cancelled" or None (never give up). Unlisted aliases: "failed",
        # except bank transfers (None: expire_bank_transfers decides those).
        "FINAL_STATUS": {},
        "REFUND_LIST_DAYS": 7,  # compare refund lists of payments settled this recently
        "LIMIT": 500,  # the most payments, and refunds, one run looks at
    },
}


@dataclass(frozen=True)
class Env:
    """A setting value taken from the environment when it is used, not when settings load."""

    name: str
    default: Any = None

    def resolve(self) -> Any:
        return os.environ.get(self.name, self.default)

    def __repr__(self) -> str:  # never print the value: it is usually a secret
        return f"env({self.name!r})"


def env(name: str, default: Any = None) -> Env:
    """Name an environment variable as a setting value: ``"SECRET_KEY": env("PAYDESK_...")``."""
    return Env(name, default)


def resolve(value: Any) -> Any:
    """Resolve ``env()`` markers inside a (possibly nested) settings value."""
    if isinstance(value, Env):
        return value.resolve()
    if isinstance(value, Mapping):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(resolve(v) for v in value)
    return value


class PaydeskSettings:
    """Attribute access to ``settings.PAYDESK`` merged over ``DEFAULTS``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None
        # Merged values of settings that hold no env() marker, until settings change: the
        # webhook endpoint reads several settings per delivery.
        self._merged: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._cache is None:
            configured = getattr(settings, "PAYDESK", None) or {}
            if not isinstance(configured, Mapping):
                # checks.py reports this as paydesk.E001; here, fall back so the check can run.
                configured = {}
            self._cache = dict(configured)
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Unknown paydesk setting {name!r}; see paydesk.conf.DEFAULTS.")
        merged = self._merged.get(name, _MISSING)
        if merged is not _MISSING:
            # A copy of a dict, so a caller changing what it got changes nothing shared.
            return dict(merged) if type(merged) is dict else merged
        raw = self.user_settings.get(name, DEFAULTS[name])
        merged = self._merge(name, raw)
        if not _holds_env(raw):  # env() values are read when used, every time
            self._merged[name] = merged
            return dict(merged) if type(merged) is dict else merged
        return merged

    def _merge(self, name: str, value: Any) -> Any:
        if name != "PROVIDERS":
            # env() markers work for any setting (providers resolve theirs when built).
            value = resolve(value)
        default = DEFAULTS[name]
        if isinstance(default, dict) and name != "PROVIDERS" and isinstance(value, Mapping):
            # Nested settings merge over their defaults, so a project sets only what differs.
            return {**default, **value}
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """Like attribute access for known settings; ``default`` for keys paydesk lacks."""
        if name in DEFAULTS:
            return getattr(self, name)
        return self.user_settings.get(name, default)

    def reload(self) -> None:
        self._cache = None
        self._merged = {}


_MISSING = object()


def _holds_env(value: Any) -> bool:
    if isinstance(value, Env):
        return True
    if isinstance(value, Mapping):
        return any(_holds_env(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_env(v) for v in value)
    return False


paydesk_settings = PaydeskSettings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "PAYDESK":
        paydesk_settings.reload()
        # The provider registry builds instances from these settings; drop them too.
        from .providers.registry import providers

        providers.reset()
