"""Prometheus metrics: what paydesk counts, and who may read the counts.

This module owns one decision: which numbers an operator can graph and alert on. When
``prometheus_client`` is importable (``pip install "django-paydesk[metrics]"``) and
``PAYDESK["METRICS"]["ENABLED"]`` is true, paydesk counts on a ``CollectorRegistry`` of its
own (``paydesk.metrics.registry``), so it never collides with the host project's metrics;
otherwise every function here is a no-op and nothing is imported.

=============================================  ==========================  =================
metric                                          labels                      counted when
=============================================  ==========================  =================
``paydesk_payments_total``                      provider, status            a payment is
                                                                            created or
                                                                            changes status
``paydesk_refunds_total``                       provider, status            a refund
                                                                            completes / fails
``paydesk_webhook_deliveries_total``            provider, outcome           a delivery is
                                                                            stored
                                                                            (``received``) or
                                                                            processed
``paydesk_provider_call_duration_seconds``      provider, operation         a provider call
                                                                            returns or raises
``paydesk_provider_call_errors_total``          provider, operation, code   a provider call
                                                                            raises
=============================================  ==========================  =================

Payments and refunds are counted by receivers of paydesk's own signals (connected in
``PaydeskConfig.ready``), provider calls by ``observe_provider_call``, and webhook deliveries
by ``count_webhook`` where a delivery is stored (``services.webhooks``) and where its outcome
is recorded (``AbstractWebhookEvent.mark_success`` / ``mark_failed``). Labels come from
paydesk's own small vocabularies (aliases, statuses, error codes), never from ids.

The endpoint (``paydesk:metrics``, ``<prefix>/metrics/``) serves the text format to active
staff, or to a request carrying ``Authorization: Bearer <PAYDESK["METRICS"]["TOKEN"]>``. With
several worker processes (gunicorn), set ``PROMETHEUS_MULTIPROC_DIR`` as prometheus_client
documents; the endpoint then aggregates every process's counts.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from .conf import paydesk_settings, resolve

prometheus_client: Any
try:  # optional: pip install "django-paydesk[metrics]"
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
except ImportError:  # pragma: no cover - exercised where prometheus_client is absent
    prometheus_client = None

__all__ = [
    "AVAILABLE",
    "count_payment",
    "count_refund",
    "count_webhook",
    "enabled",
    "export",
    "metrics_view",
    "observe_provider_call",
    "registry",
]

#: Whether ``prometheus_client`` could be imported.
AVAILABLE = prometheus_client is not None

# Provider calls take from a few milliseconds (an in-process sandbox) to tens of seconds.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

registry: Any = None
_payments: Any = None
_refunds: Any = None
_webhooks: Any = None
_latency: Any = None
_errors: Any = None

if prometheus_client is not None:
    registry = CollectorRegistry(auto_describe=True)
    _payments = Counter(
        "paydesk_payments",
        "Payments created or changing status, by provider alias and new status.",
        ["provider", "status"],
        registry=registry,
    )
    _refunds = Counter(
        "paydesk_refunds",
        "Refunds reaching an outcome, by provider alias and status.",
        ["provider", "status"],
        registry=registry,
    )
    _webhooks = Counter(
        "paydesk_webhook_deliveries",
        "Webhook deliveries stored (received) and processed (processed, ignored, failed, "
        "dead), by provider alias.",
        ["provider", "outcome"],
        registry=registry,
    )
    _latency = Histogram(
        "paydesk_provider_call_duration_seconds",
        "Time taken by calls to a provider, by alias and operation.",
        ["provider", "operation"],
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )
    _errors = Counter(
        "paydesk_provider_call_errors",
        "Provider calls that raised, by alias, operation and paydesk error code.",
        ["provider", "operation", "code"],
        registry=registry,
    )


def enabled() -> bool:
    """Whether paydesk counts: ``prometheus_client`` is installed and METRICS is on."""
    return AVAILABLE and bool(paydesk_settings.METRICS.get("ENABLED", True))


def count_payment(provider: str, status: str) -> None:
    if enabled():
        _payments.labels(provider=provider, status=str(status)).inc()


def count_refund(provider: str, status: str) -> None:
    if enabled():
        _refunds.labels(provider=provider, status=str(status)).inc()


#: Labelled webhook counters, looked up once per (provider, outcome): every accepted
#: delivery counts one, and ``labels()`` validates and locks on each call.
_webhook_counters: dict[tuple[str, str], Any] = {}


def count_webhook(provider: str, outcome: str) -> None:
    if enabled():
        key = (provider, str(outcome))
        counter = _webhook_counters.get(key)
        if counter is None:
            counter = _webhooks.labels(provider=key[0], outcome=key[1])
            _webhook_counters[key] = counter
        counter.inc()


@contextmanager
def observe_provider_call(provider: str, operation: str) -> Iterator[None]:
    """Time the provider call in the block; count it as an error if it raises.

    The error's label is its paydesk ``code`` (``provider_unavailable``, ``card_declined``...)
    or ``exception`` for anything that is not a ``PaydeskError``. The exception propagates.
    """
    if not enabled():
        yield
        return
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        code = getattr(exc, "code", None)
        _errors.labels(
            provider=provider,
            operation=operation,
            code=code if isinstance(code, str) and code else "exception",
        ).inc()
        raise
    finally:
        _latency.labels(provider=provider, operation=operation).observe(
            time.perf_counter() - started
        )


# -- signal receivers ---------------------------------------------------------------------


def _on_status_change(sender: Any, *, payment: Any, **kwargs: Any) -> None:
    count_payment(payment.provider, payment.status)


def _on_created(sender: Any, *, payment: Any, **kwargs: Any) -> None:
    count_payment(payment.provider, "created")


def _on_refunded(sender: Any, *, payment: Any, **kwargs: Any) -> None:
    count_refund(payment.provider, "completed")


def _on_refund_failed(sender: Any, *, payment: Any, **kwargs: Any) -> None:
    count_refund(payment.provider, "failed")


def connect() -> None:
    """Connect the counting receivers (``PaydeskConfig.ready``; idempotent)."""
    if not AVAILABLE:
        return
    from . import signals

    for signal in (
        signals.payment_requires_action,
        signals.payment_confirmed,
        signals.payment_failed,
        signals.payment_cancelled,
    ):
        signal.connect(_on_status_change, dispatch_uid="paydesk.metrics.status")
    signals.payment_created.connect(_on_created, dispatch_uid="paydesk.metrics.created")
    signals.payment_refunded.connect(_on_refunded, dispatch_uid="paydesk.metrics.refunded")
    signals.refund_failed.connect(_on_refund_failed, dispatch_uid="paydesk.metrics.refund_failed")
    # Webhook deliveries are counted where they are stored and where their outcome is
    # recorded (services.webhooks, AbstractWebhookEvent.mark_success / mark_failed), not
    # from post_save: a receiver for every model would tax every save in the project.


# -- exposition -----------------------------------------------------------------------------


def export() -> tuple[bytes, str]:
    """``(body, content_type)`` in Prometheus' text format; all processes' counts if
    ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    if prometheus_client is None:
        raise RuntimeError("prometheus_client is not installed.")
    target = registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        target = CollectorRegistry()
        multiprocess.MultiProcessCollector(target)
    return prometheus_client.generate_latest(target), prometheus_client.CONTENT_TYPE_LATEST


def can_read_metrics(request: HttpRequest) -> bool:
    """Active staff, or the bearer token of ``PAYDESK["METRICS"]["TOKEN"]`` (if set)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = resolve(paydesk_settings.METRICS.get("TOKEN"))
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), str(token).encode())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not can_read_metrics(request):
        response = JsonResponse(
            {
                "code": "forbidden",
                "message": "Metrics are for staff, or for a scraper sending "
                'Authorization: Bearer <PAYDESK["METRICS"]["TOKEN"]>.',
            },
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="paydesk-metrics"'
        return response
    if not enabled():
        return JsonResponse(
            {
                "code": "metrics_unavailable",
                "message": 'Install prometheus-client (pip install "django-paydesk[metrics]") '
                'and keep PAYDESK["METRICS"]["ENABLED"] on to collect metrics.',
            },
            status=501,
        )
    body, content_type = export()
    return HttpResponse(body, content_type=content_type)
