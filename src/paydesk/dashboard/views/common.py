"""What every dashboard page shares: the layout context, pagination and flash messages.

This module owns one decision: how a page is rendered (the navigation, the poll interval,
the title), so page modules only gather their own data.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from ...conf import paydesk_settings

__all__ = ["NAV", "page_of", "render_page"]

#: (url name, label, section key) of the navigation, in order.
NAV = (
    ("paydesk_dashboard:overview", _("Overview"), "overview"),
    ("paydesk_dashboard:payments", _("Payments"), "payments"),
    ("paydesk_dashboard:webhooks", _("Webhooks"), "webhooks"),
    ("paydesk_dashboard:approvals", _("Approvals"), "approvals"),
    ("paydesk_dashboard:audit", _("Audit log"), "audit"),
    ("paydesk_dashboard:api-keys", _("API keys"), "keys"),
)


def _nav(section: str) -> list[dict[str, Any]]:
    return [
        {"url": reverse(name), "label": label, "key": key, "active": key == section}
        for name, label, key in NAV
    ]


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    """Render a full page, or only its fragment for an htmx request that asks for one."""
    config = paydesk_settings.DASHBOARD
    base = {
        "dashboard_title": config.get("TITLE") or "paydesk",
        "poll_seconds": int(config.get("POLL_SECONDS") or 30),
        "nav": _nav(section),
        "section": section,
    }
    return render(request, template, {**base, **context}, status=status)


def page_of(request: HttpRequest, queryset: QuerySet[Any]) -> Page:
    """The page ``?page=`` of ``queryset`` (out-of-range pages give the last one)."""
    size = int(paydesk_settings.DASHBOARD.get("PAGE_SIZE") or 50)
    return Paginator(queryset, size).get_page(request.GET.get("page"))
