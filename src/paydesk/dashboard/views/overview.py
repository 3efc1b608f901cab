"""Dashboard overview: money figures for a period, the daily chart and provider health.

This module owns one decision: which numbers the overview shows and from where. Every figure
comes from ``paydesk.services.analytics`` (the same functions as the analytics API, so the
dashboard and the API never disagree), provider health from ``paydesk.health`` (cached), and
webhook activity from the stored deliveries. The live part (``overview/live/``) is re-fetched
every ``DASHBOARD["POLL_SECONDS"]`` by htmx while the tab is visible.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...exceptions import ConfigurationError
from ...health import current_health
from ...models import BankTransfer, FraudAssessment, ReviewStatus, WebhookStatus
from ...models.eft import OPEN_STATUSES
from ...providers.registry import providers
from ...services import analytics
from ...services.webhooks import webhook_model
from ...states import PaymentStatus
from ..access import staff_view
from ..charts import ChartPoint, daily_chart
from .common import render_page

__all__ = ["PERIODS", "overview", "overview_live", "period_range", "urlpatterns"]

#: ?period= values: (label, days back from the start of today; 0 = today only).
PERIODS = {
    "today": (gettext_lazy("Today"), 0),
    "7d": (gettext_lazy("7 days"), 6),
    "30d": (gettext_lazy("30 days"), 29),
}
DEFAULT_PERIOD = "7d"
#: The chart shows at least this many days, so "today" still has a trend to look at.
MIN_CHART_DAYS = 14


def period_range(period: str, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of ``period`` in the current time zone: whole days up to now."""
    now = timezone.localtime(now or timezone.now())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=PERIODS[period][1]), now + dt.timedelta(seconds=1)


def _period(request: HttpRequest) -> str:
    period = request.GET.get("period", DEFAULT_PERIOD)
    return period if period in PERIODS else DEFAULT_PERIOD


def _provider_cards(start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    health = {row["provider"]: row for row in current_health()["results"]}
    performance: dict[str, dict[str, int]] = {}
    for row in analytics.performance(start=start, end=end, by="provider"):
        totals = performance.setdefault(row.key, {"attempted": 0, "successful": 0})
        totals["attempted"] += row.attempted
        totals["successful"] += row.successful
    last_event = dict(
        webhook_model()
        .objects.order_by()
        .values("provider")
        .annotate(last=Max("created_at"))
        .values_list("provider", "last")
    )
    cards = []
    for alias in providers.aliases():
        result = health.get(alias, {})
        totals = performance.get(alias, {"attempted": 0, "successful": 0})
        cards.append(
            {
                "alias": alias,
                "display_name": _display_name(alias),
                "configured": _configured(alias),
                "healthy": result.get("healthy"),
                "message": result.get("message", ""),
                "response_time_ms": result.get("response_time_ms"),
                "attempted": totals["attempted"],
                "success_rate": _ratio(totals["successful"], totals["attempted"]),
                "last_event": last_event.get(alias),
            }
        )
    return cards


def _ratio(part: int, whole: int) -> Decimal | None:
    return Decimal(part) / whole if whole else None


def _configured(alias: str) -> bool:
    """Whether the provider has the options it needs (a missing key is not an outage)."""
    try:
        return bool(providers[alias].is_configured)
    except ConfigurationError:
        return False


def _display_name(alias: str) -> str:
    try:
        return str(providers[alias].display_name)
    except ConfigurationError:  # unbuildable: manage.py check reports it; show the alias
        return alias


def _chart(start: dt.datetime, currency: str | None) -> dict[str, Any]:
    today = timezone.localdate()
    first = min(timezone.localtime(start).date(), today - dt.timedelta(days=MIN_CHART_DAYS - 1))
    series = analytics.time_series(start=first, end=today, interval="day").series
    if not series:
        return {"currencies": [], "currency": None, "svg": None, "points": []}
    # The default currency is the one with the largest count of payments in the range.
    currencies = sorted(series, key=lambda code: -sum(p.payments for p in series[code]))
    chosen = currency if currency in series else currencies[0]
    points = [
        ChartPoint(day=p.period, bar=p.gross_volume.amount, line=p.payments) for p in series[chosen]
    ]
    return {
        "currencies": currencies,
        "currency": chosen,
        "points": points,
        "svg": daily_chart(
            points,
            title=_("Daily gross volume in %(currency)s and number of payments")
            % {"currency": chosen},
            bar_label=_("gross volume (%(currency)s)") % {"currency": chosen},
            line_label=_("payments"),
        ),
    }


def _queues() -> dict[str, int]:
    return {
        "transfers": BankTransfer.objects.filter(status__in=OPEN_STATUSES).count(),
        "reviews": FraudAssessment.objects.filter(
            review_status=ReviewStatus.PENDING, payment__status=PaymentStatus.PENDING
        ).count(),
    }


def _webhook_totals(start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    return (
        webhook_model()
        .objects.filter(created_at__gte=start, created_at__lt=end)
        .aggregate(
            total=Count("pk"),
            failed=Count("pk", filter=Q(status__in=(WebhookStatus.FAILED, WebhookStatus.DEAD))),
            pending=Count(
                "pk", filter=Q(status__in=(WebhookStatus.PENDING, WebhookStatus.PROCESSING))
            ),
        )
    )


def _live_context(request: HttpRequest) -> dict[str, Any]:
    period = _period(request)
    start, end = period_range(period)
    summary = analytics.summary(start=start, end=end)
    fraud = analytics.fraud_report(start=start, end=end)
    totals: dict[str, Any] = {
        "payments": sum(c.payments for c in summary.currencies),
        "attempted": sum(c.attempted for c in summary.currencies),
        "successful": sum(c.successful for c in summary.currencies),
        "failed": sum(c.failed for c in summary.currencies),
        "refunds": sum(c.refunds.count for c in summary.currencies),
        "disputes": sum(c.disputes for c in summary.currencies),
    }
    totals["success_rate"] = _ratio(totals["successful"], totals["attempted"])
    return {
        "period": period,
        "periods": [(key, label) for key, (label, _days) in PERIODS.items()],
        "start": start,
        "end": end,
        "summary": summary,
        "totals": totals,
        "fraud": fraud,
        "queues": _queues(),
        "webhooks": _webhook_totals(start, end),
        "provider_cards": _provider_cards(start, end),
        "chart": _chart(start, request.GET.get("currency")),
        "refreshed_at": timezone.now(),
    }


@staff_view
def overview(request: HttpRequest) -> HttpResponse:
    return render_page(
        request, "paydesk/dashboard/overview.html", _live_context(request), section="overview"
    )


@staff_view
def overview_live(request: HttpRequest) -> HttpResponse:
    """The overview's numbers alone, for htmx polling."""
    return render_page(
        request,
        "paydesk/dashboard/_overview_live.html",
        _live_context(request),
        section="overview",
    )


urlpatterns = [
    path("", overview, name="overview"),
    path("overview/live/", overview_live, name="overview-live"),
]
