"""Read-only facts about the webhook pipeline: providers, health and statistics.

This module owns one decision: what the pipeline tells an operator (or a load balancer)
about itself, and who may ask. Three GET endpoints, mounted next to the webhook endpoint:

* ``<prefix>/webhooks/providers/`` (``paydesk:webhook-providers``): staff only;
* ``<prefix>/webhooks/health/`` (``paydesk:webhook-health``): anyone, numbers only;
* ``<prefix>/webhooks/stats/`` (``paydesk:webhook-stats``): staff only.

Who counts as staff is decided by ``can_view_webhook_info`` alone.

*providers* lists every configured provider that receives webhooks, with the absolute URL
to paste into the provider's dashboard (``PAYDESK["PUBLIC_BASE_URL"]`` + the path when set,
else built from the request) and the signature header and algorithm it must send.

*health* is for load balancers and uptime probes, so it needs no login; it shows only
counts and ages, never a provider's name, an event, a payload or an error message. It
answers 503 ``"unhealthy"`` when more than ``WEBHOOKS["UNHEALTHY_BACKLOG"]`` deliveries are
waiting, or when, of the deliveries received in the last hour that have an outcome (at
least 10 of them), more than ``WEBHOOKS["UNHEALTHY_FAILURE_RATE"]`` failed or died.

*stats* (``?days=7``, 1 to 90) counts the deliveries received in the window by provider,
event type and outcome, with the success rate and the median processing latency
(``processed_at - created_at``), computed in the database in at most two queries.

These three words are therefore reserved: a provider alias may not be one of them
(``RESERVED_SEGMENTS``; system check ``paydesk.E011``), or its webhooks would reach these
read-only views instead of the pipeline.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from ..api.keys import effective_scopes
from ..conf import paydesk_settings, resolve
from ..exceptions import ConfigurationError
from ..models import APIKey, WebhookStatus
from ..providers.registry import providers
from ..services.webhooks import webhook_model
from ..types import Capability

__all__ = [
    "RESERVED_SEGMENTS",
    "can_view_webhook_info",
    "webhook_health",
    "webhook_provider_list",
    "webhook_providers",
    "webhook_stats",
]

#: Path segments under ``webhooks/`` taken by these views; no provider alias may use one.
RESERVED_SEGMENTS = frozenset({"providers", "health", "stats"})

#: Deliveries still waiting for a successful outcome (dead ones are counted apart).
BACKLOG_STATUSES = (WebhookStatus.PENDING, WebhookStatus.PROCESSING, WebhookStatus.FAILED)
#: Deliveries with an outcome, and the failing share of them.
FINISHED_STATUSES = (
    WebhookStatus.PROCESSED,
    WebhookStatus.IGNORED,
    WebhookStatus.FAILED,
    WebhookStatus.DEAD,
)
FAILING_STATUSES = (WebhookStatus.FAILED, WebhookStatus.DEAD)
#: Fewer finished deliveries than this in the last hour say nothing about the failure rate.
MIN_DELIVERIES_FOR_RATE = 10
MAX_STATS_DAYS = 90


def can_view_webhook_info(request: HttpRequest) -> bool:
    """Whether ``request`` may see the provider list and the statistics: active staff.

    Through the REST API (``paydesk.api``) a request may also come with an API key: it acts
    as its owner (who must be active staff) and must hold the ``read`` scope.
    """
    user = getattr(request, "user", None)
    if not (user is not None and user.is_active and user.is_staff):
        return False
    key = getattr(request, "auth", None)
    if isinstance(key, APIKey):
        return "read" in effective_scopes(key.scopes)
    return True


def _forbidden() -> JsonResponse:
    return JsonResponse(
        {"code": "forbidden", "message": "Only staff may view webhook information."}, status=403
    )


def _bad_request(message: str) -> JsonResponse:
    return JsonResponse({"code": "invalid_request", "message": message}, status=400)


def webhook_url(request: HttpRequest, alias: str) -> str:
    """The absolute URL a provider must deliver ``alias``'s webhooks to."""
    path = reverse("paydesk:webhook", args=[alias])
    base = resolve(paydesk_settings.PUBLIC_BASE_URL)
    if base:
        return str(base).rstrip("/") + path
    return request.build_absolute_uri(path)


@require_safe
def webhook_providers(request: HttpRequest) -> HttpResponse:
    if not can_view_webhook_info(request):
        return _forbidden()
    return JsonResponse({"providers": webhook_provider_list(request)})


def webhook_provider_list(request: HttpRequest) -> list[dict[str, Any]]:
    """Every configured provider that receives webhooks, with its URL and signature scheme."""
    listed = []
    for alias in providers.aliases():
        try:
            provider = providers[alias]
        except ConfigurationError:
            continue  # unbuildable: manage.py check reports it (paydesk.E004 / E010)
        if not provider.supports(Capability.WEBHOOKS):
            continue
        listed.append(
            {
                "name": alias,
                "display_name": provider.display_name,
                "icon": provider.icon,
                "webhook_url": webhook_url(request, alias),
                "signature_header": provider.webhook_signature_header,
                "signature_algorithm": provider.webhook_signature_algorithm,
                "configured": provider.is_configured,
            }
        )
    return listed


def pipeline_health(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """The health figures, in one query; ``status`` is ``"ok"`` or ``"unhealthy"``."""
    now = now or timezone.now()
    hour_ago = now - dt.timedelta(hours=1)
    recent = Q(created_at__gte=hour_ago)
    figures = webhook_model().objects.aggregate(
        backlog=Count("pk", filter=Q(status__in=BACKLOG_STATUSES)),
        oldest=Min("created_at", filter=Q(status__in=BACKLOG_STATUSES)),
        dead=Count("pk", filter=Q(status=WebhookStatus.DEAD)),
        finished=Count("pk", filter=recent & Q(status__in=FINISHED_STATUSES)),
        failing=Count("pk", filter=recent & Q(status__in=FAILING_STATUSES)),
    )
    config = paydesk_settings.WEBHOOKS
    finished, failing = figures["finished"], figures["failing"]
    rate = failing / finished if finished else 0.0
    oldest = figures["oldest"]
    unhealthy = figures["backlog"] > int(config["UNHEALTHY_BACKLOG"]) or (
        finished >= MIN_DELIVERIES_FOR_RATE and rate > float(config["UNHEALTHY_FAILURE_RATE"])
    )
    return {
        "status": "unhealthy" if unhealthy else "ok",
        "backlog": figures["backlog"],
        "oldest_pending_age_seconds": (
            round(max((now - oldest).total_seconds(), 0.0), 3) if oldest else None
        ),
        "failure_rate_1h": round(rate, 4),
        "dead": figures["dead"],
    }


@require_safe
def webhook_health(request: HttpRequest) -> HttpResponse:
    report = pipeline_health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def pipeline_stats(*, days: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """Counts and latency of the deliveries received in the last ``days`` days."""
    now = now or timezone.now()
    since = now - dt.timedelta(days=days)
    window = webhook_model().objects.filter(created_at__gte=since)
    timed = Q(success=True, processed_at__isnull=False)
    # One grouped query; the groups (providers x event types x statuses) are few.
    groups = (
        window.order_by()
        .values("provider", "event_type", "status")
        .annotate(n=Count("pk"), timed=Count("pk", filter=timed))
    )
    by_provider: Counter[str] = Counter()
    by_event_type: Counter[str] = Counter()
    by_status: Counter[str] = Counter({status: 0 for status in WebhookStatus.values})
    timed_count = 0
    for row in groups:
        by_provider[row["provider"]] += row["n"]
        by_event_type[row["event_type"]] += row["n"]
        by_status[row["status"]] += row["n"]
        timed_count += row["timed"]
    total = sum(by_provider.values())
    succeeded = by_status[WebhookStatus.PROCESSED] + by_status[WebhookStatus.IGNORED]
    finished = sum(by_status[status] for status in FINISHED_STATUSES)
    return {
        "days": days,
        "since": since.isoformat(),
        "total": total,
        "by_provider": dict(by_provider.most_common()),
        "by_event_type": dict(by_event_type.most_common()),
        "by_status": dict(by_status),
        "success_rate": round(succeeded / finished, 4) if finished else None,
        "median_latency_seconds": _median_latency(window.filter(timed), timed_count),
    }


def _median_latency(queryset: Any, count: int) -> float | None:
    """The median of ``processed_at - created_at``: the database orders, we take the middle."""
    if not count:
        return None
    latency = ExpressionWrapper(F("processed_at") - F("created_at"), output_field=DurationField())
    low = (count - 1) // 2
    middle = list(
        queryset.annotate(latency=latency)
        .order_by("latency")
        .values_list("latency", flat=True)[low : count // 2 + 1]
    )
    seconds = [value.total_seconds() for value in middle if value is not None]
    return round(sum(seconds) / len(seconds), 6) if seconds else None


@require_safe
def webhook_stats(request: HttpRequest) -> HttpResponse:
    if not can_view_webhook_info(request):
        return _forbidden()
    raw = request.GET.get("days", "7")
    try:
        days = int(raw)
    except ValueError:
        return _bad_request(
            f"days must be a whole number from 1 to {MAX_STATS_DAYS}, not {raw[:20]!r}."
        )
    if not 1 <= days <= MAX_STATS_DAYS:
        return _bad_request(f"days must be from 1 to {MAX_STATS_DAYS}, not {days}.")
    return JsonResponse(pipeline_stats(days=days))
