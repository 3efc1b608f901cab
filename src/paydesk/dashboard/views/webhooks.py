"""Dashboard area: the webhook monitor — providers, the public URL, deliveries, replays, tests.

This module owns one decision: what staff see of the webhook pipeline and which operations
they may start from the page. The provider cards reuse ``paydesk.webhooks.info`` (the same
list and URLs as ``<prefix>/webhooks/providers/``) with the 7-day success rate and backlog
counted in one grouped query over the stored deliveries (same definitions as the ``stats`` and
``health`` endpoints); the cards refresh live through ``webhooks/live/``.

Operations are POSTs with CSRF and the webhook model's ``change`` permission
(``paydesk.change_webhookevent`` by default), audited, and run through the pipeline's own code:

* *replay* one delivery, or every failed/dead one (of one provider or all), goes through
  ``paydesk.webhooks.replay.WebhookReplayer`` (so ``process_webhook``: a delivery is never
  applied twice), and shows its ``{total, success, failed}``;
* *send test webhook* asks the provider to sign a sample event with its configured secret
  (``PaymentProvider.build_test_webhook``) and hands the signed bytes and headers to
  ``paydesk.webhooks.pipeline.handle`` in-process, from this server's loopback address, exactly
  as ``POST <prefix>/webhooks/<alias>/`` would: allowlist, rate limit, the real
  ``verify_webhook``, storage, processing. No network, no bypass. The sample is of paydesk's
  test type (``TEST_WEBHOOK_EVENT_TYPE``) with a ``paydesk_test_`` id, which no provider's
  ``parse_webhook`` acts on: it is stored and marked ``ignored`` and can never change a
  payment. Providers that cannot be signed locally (PayPal) say why instead of a button.

Stored payloads, headers and errors come from the internet: they are only ever rendered
through Django's autoescaping (pretty-printed JSON inside ``<pre>``), never marked safe.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from ...conf import paydesk_settings, resolve
from ...exceptions import ConfigurationError, PaydeskError
from ...models import AbstractWebhookEvent, WebhookStatus
from ...providers.base import new_test_webhook_id
from ...providers.registry import providers
from ...security.audit import AuditLogger, audit_request_ip
from ...security.ipfilter import allowlist_for_provider
from ...services.webhooks import webhook_model
from ...webhooks.info import (
    BACKLOG_STATUSES,
    FAILING_STATUSES,
    FINISHED_STATUSES,
    webhook_provider_list,
)
from ...webhooks.pipeline import WebhookRequest, handle
from ...webhooks.replay import WebhookReplayer
from ..access import require_perm, staff_view
from .common import page_of, render_page

__all__ = [
    "STATS_DAYS",
    "TEST_SENDER_IP",
    "DeliveryFilterForm",
    "delivery_detail",
    "public_url_info",
    "replay_delivery",
    "replay_failed",
    "send_test_webhook",
    "urlpatterns",
    "webhook_perm",
    "webhooks_live",
    "webhooks_monitor",
]

View = TypeVar("View", bound=Callable[..., HttpResponse])

#: The success rate on the cards covers deliveries received this many days back.
STATS_DAYS = 7
#: A test delivery is handed to the pipeline in-process, as coming from this server itself.
TEST_SENDER_IP = "127.0.0.1"
#: "Replay all failed" processes at most this many deliveries per click (oldest first).
REPLAY_LIMIT = 500
#: Where the outcome of the last test delivery waits for the page after the redirect.
TEST_RESULT_KEY = "paydesk_dashboard_test_webhook"
#: Host names that never resolve on the public internet.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".test", ".invalid")


def webhook_perm(action: str) -> Callable[[View], View]:
    """``require_perm`` for ``action`` on the configured webhook model, read per request
    (``PAYDESK["WEBHOOK_MODEL"]`` is a setting: nothing reads settings at import time)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            opts = webhook_model()._meta
            checked = require_perm(f"{opts.app_label}.{action}_{opts.model_name}")(view)
            return checked(request, *args, **kwargs)

        return cast(View, wrapper)

    return decorator


# -- provider cards ---------------------------------------------------------------------------


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _delivery_figures(now: dt.datetime) -> dict[str, dict[str, Any]]:
    """Per provider: the window's success rate inputs, the backlog, failures, last delivery.

    One grouped query (providers are few), whatever the number of cards.
    """
    since = now - dt.timedelta(days=STATS_DAYS)
    recent = Q(created_at__gte=since)
    rows = (
        webhook_model()
        .objects.order_by()
        .values("provider")
        .annotate(
            received=Count("pk", filter=recent),
            finished=Count("pk", filter=recent & Q(status__in=FINISHED_STATUSES)),
            succeeded=Count(
                "pk",
                filter=recent & Q(status__in=(WebhookStatus.PROCESSED, WebhookStatus.IGNORED)),
            ),
            backlog=Count("pk", filter=Q(status__in=BACKLOG_STATUSES)),
            failing=Count("pk", filter=Q(status__in=FAILING_STATUSES)),
            dead=Count("pk", filter=Q(status=WebhookStatus.DEAD)),
            last=Max("created_at"),
        )
    )
    return {row["provider"]: dict(row) for row in rows}


def _test_availability(alias: str) -> str:
    """ "" when a test delivery can be sent for ``alias``; else why not, for the card."""
    try:
        provider = providers[alias]
    except ConfigurationError as exc:
        return exc.message
    problem = provider.test_webhook_unavailable()
    if problem:
        return problem
    try:
        allowed = allowlist_for_provider(alias).allows(TEST_SENDER_IP)
    except ConfigurationError as exc:
        return exc.message
    if not allowed:
        return _(
            "its webhook IP allowlist does not include this server's own address (%(ip)s), "
            "which a test delivery comes from, so the pipeline would refuse it; add %(ip)s to "
            'OPTIONS["WEBHOOK_IP_ALLOWLIST"] to test here.'
        ) % {"ip": TEST_SENDER_IP}
    return ""


def _cards(request: HttpRequest) -> list[dict[str, Any]]:
    figures = _delivery_figures(timezone.now())
    empty = {"received": 0, "finished": 0, "succeeded": 0, "backlog": 0, "failing": 0, "dead": 0}
    cards = []
    for entry in webhook_provider_list(request):
        counts = figures.get(entry["name"], {**empty, "last": None})
        cards.append(
            {
                **entry,
                **counts,
                "success_rate": _ratio(counts["succeeded"], counts["finished"]),
                "test_unavailable": _test_availability(entry["name"]),
            }
        )
    return cards


def _totals(cards: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("received", "backlog", "failing", "dead")
    return {key: sum(int(card[key]) for card in cards) for key in keys}


# -- public URL -------------------------------------------------------------------------------


def _host_problem(host: str) -> str:
    """Why providers on the internet cannot reach ``host`` ("" when nothing says they can't)."""
    host = host.strip("[]").lower()
    if not host:
        return _("the URL has no host name")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
            return _("%(host)s only exists on this machine or local network") % {"host": host}
        if "." not in host:
            return _("%(host)s is a local host name, not one on the internet") % {"host": host}
        return ""
    if address.is_loopback:
        return _("%(host)s is this machine's loopback address") % {"host": host}
    if not address.is_global:
        return _("%(host)s is a private or reserved address") % {"host": host}
    return ""


def public_url_info(request: HttpRequest) -> dict[str, Any]:
    """Which base URL webhooks are advertised with, where it comes from, and whether
    providers on the internet can plausibly reach it."""
    configured = resolve(paydesk_settings.PUBLIC_BASE_URL)
    base = str(configured).rstrip("/") if configured else request.build_absolute_uri("/")[:-1]
    parts = urlsplit(base)
    return {
        "base_url": base,
        "from_setting": bool(configured),
        "problem": _host_problem(parts.hostname or ""),
        "https": parts.scheme == "https",
    }


# -- deliveries list --------------------------------------------------------------------------


class DeliveryFilterForm(forms.Form):
    provider = forms.ChoiceField(label=gettext_lazy("Provider"), required=False)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("Any status")), *WebhookStatus.choices],
    )
    event_type = forms.CharField(label=gettext_lazy("Event type"), required=False, max_length=120)

    def __init__(self, *args: Any, aliases: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider = cast(forms.ChoiceField, self.fields["provider"])
        provider.choices = [("", _("Any provider")), *((a, a) for a in aliases)]

    def filter(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data.get("provider"):
            queryset = queryset.filter(provider=data["provider"])
        if data.get("status"):
            queryset = queryset.filter(status=data["status"])
        if data.get("event_type"):
            queryset = queryset.filter(event_type=data["event_type"].strip())
        return queryset


#: The list shows these columns only; payloads, bodies and tracebacks wait for the detail page.
_LIST_FIELDS = (
    "pk",
    "provider",
    "event_type",
    "event_id",
    "status",
    "attempts",
    "deliveries",
    "next_retry_at",
    "error_message",
    "payment_id",
    "created_at",
)


def _list_context(request: HttpRequest, aliases: list[str]) -> dict[str, Any]:
    form = DeliveryFilterForm(request.GET or None, aliases=aliases)
    queryset = form.filter(
        webhook_model().objects.only(*_LIST_FIELDS).order_by("-created_at", "-pk")
    )
    page = page_of(request, queryset)
    query = {k: v for k, v in request.GET.items() if k != "page" and v}
    return {
        "filter_form": form,
        "page": page,
        "deliveries": list(page.object_list),
        "filter_query": urlencode(query),
        "filtered": bool(query),
    }


def _live_context(request: HttpRequest) -> dict[str, Any]:
    cards = _cards(request)
    return {"cards": cards, "totals": _totals(cards), "refreshed_at": timezone.now()}


@staff_view
def webhooks_monitor(request: HttpRequest) -> HttpResponse:
    context = _live_context(request)
    aliases = sorted({card["name"] for card in context["cards"]} | set(providers.aliases()))
    context.update(_list_context(request, aliases))
    context["public_url"] = public_url_info(request)
    context["test_result"] = request.session.pop(TEST_RESULT_KEY, None)
    context["can_act"] = _may_act(request)
    return render_page(request, "paydesk/dashboard/webhooks.html", context, section="webhooks")


@staff_view
def webhooks_live(request: HttpRequest) -> HttpResponse:
    """The provider cards and counts alone, for htmx polling."""
    context = _live_context(request)
    context["can_act"] = _may_act(request)
    return render_page(
        request, "paydesk/dashboard/_webhooks_live.html", context, section="webhooks"
    )


def _may_act(request: HttpRequest) -> bool:
    opts = webhook_model()._meta
    return bool(request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"))


# -- delivery detail --------------------------------------------------------------------------


def _pretty(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _payment_url(payment_id: str) -> str:
    if not payment_id:
        return ""
    try:
        return reverse("paydesk_dashboard:payment-detail", args=[payment_id])
    except NoReverseMatch:  # a project that overrides the payments area
        return ""


@staff_view
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(webhook_model(), pk=pk)
    headers = delivery.headers if isinstance(delivery.headers, dict) else {}
    return render_page(
        request,
        "paydesk/dashboard/webhook_delivery.html",
        {
            "delivery": delivery,
            "payload_pretty": _pretty(delivery.payload) if delivery.payload is not None else "",
            "headers": sorted((str(k), str(v)) for k, v in headers.items()),
            "replayable": _replayable(delivery),
            "payment_url": _payment_url(delivery.payment_id),
            "can_act": _may_act(request),
        },
        section="webhooks",
    )


def _replayable(delivery: AbstractWebhookEvent) -> bool:
    return not delivery.success and delivery.payload is not None


# -- operations -------------------------------------------------------------------------------


def _monitor_url(**query: str) -> str:
    url = reverse("paydesk_dashboard:webhooks")
    kept = {k: v for k, v in query.items() if v}
    return f"{url}?{urlencode(kept)}" if kept else url


def _stats_message(request: HttpRequest, stats: dict[str, int], what: str) -> None:
    text = _("%(what)s: %(total)s replayed, %(success)s succeeded, %(failed)s failed.") % {
        "what": what,
        **stats,
    }
    if stats["failed"]:
        messages.warning(request, text)
    elif stats["total"]:
        messages.success(request, text)
    else:
        messages.info(request, _("%(what)s: nothing to replay.") % {"what": what})


def _audit(request: HttpRequest, action: str, *, provider: str = "", **details: Any) -> None:
    AuditLogger().log(
        action=action,
        object_type="webhook",
        object_id=str(details.get("delivery", "")),
        actor=request.user,
        provider=provider,
        ip_address=audit_request_ip(request),
        details=details,
    )


@transaction.non_atomic_requests
@require_POST
@webhook_perm("change")
def replay_delivery(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(webhook_model(), pk=pk)
    if not _replayable(delivery):
        messages.info(
            request,
            _("This delivery was handled already (%(status)s); nothing to replay.")
            % {"status": delivery.status}
            if delivery.success
            else _("This delivery has no readable payload, so it can never be processed."),
        )
    else:
        stats = WebhookReplayer().replay_ids([delivery.pk])
        _audit(
            request, "webhook_replayed", provider=delivery.provider, delivery=delivery.pk, **stats
        )
        _stats_message(request, stats, _("Delivery %(id)s") % {"id": delivery.event_id})
    return HttpResponseRedirect(reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk]))


@transaction.non_atomic_requests
@require_POST
@webhook_perm("change")
def replay_failed(request: HttpRequest) -> HttpResponse:
    alias = request.POST.get("provider", "").strip()
    if alias and alias not in providers.aliases():
        raise Http404("No such provider.")
    stats = WebhookReplayer().replay_failed(provider=alias or None, limit=REPLAY_LIMIT)
    _audit(request, "webhooks_replayed", provider=alias, scope=alias or "all", **stats)
    what = (
        _("Failed deliveries of %(provider)s") % {"provider": alias}
        if alias
        else _("All failed deliveries")
    )
    _stats_message(request, stats, what)
    if stats["total"] >= REPLAY_LIMIT:
        messages.info(
            request,
            _("At most %(limit)s deliveries are replayed per click; replay again for the rest.")
            % {"limit": REPLAY_LIMIT},
        )
    return HttpResponseRedirect(_monitor_url(provider=alias))


def _outcome_label(status: int, body: dict[str, Any]) -> str:
    if 200 <= status < 300:
        return str(body.get("status") or "ok")
    return str(body.get("code") or body.get("status") or "error")


@transaction.non_atomic_requests
@require_POST
@webhook_perm("change")
def send_test_webhook(request: HttpRequest, alias: str) -> HttpResponse:
    listed = {entry["name"]: entry for entry in webhook_provider_list(request)}
    if alias not in listed:
        raise Http404("No provider receiving webhooks has this alias.")
    problem = _test_availability(alias)
    if problem:
        messages.error(
            request,
            _("No test webhook was sent to %(provider)s: %(reason)s")
            % {"provider": listed[alias]["display_name"], "reason": problem},
        )
        return HttpResponseRedirect(_monitor_url())
    event_id = new_test_webhook_id()
    try:
        headers, body = providers[alias].build_test_webhook(event_id=event_id)
    except PaydeskError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(_monitor_url())
    response = handle(
        WebhookRequest(alias=alias, body=body, headers=headers, remote_addr=TEST_SENDER_IP)
    )
    stored_id = str(response.body.get("id") or "")
    delivery = (
        webhook_model().objects.filter(provider=alias, event_id=stored_id).first()
        if stored_id
        else None
    )
    result = {
        "provider": alias,
        "display_name": str(listed[alias]["display_name"]),
        "http_status": response.status,
        "outcome": _outcome_label(response.status, response.body),
        "message": str(response.body.get("message") or ""),
        "ok": 200 <= response.status < 300,
        "delivery_pk": delivery.pk if delivery is not None else None,
        "delivery_status": delivery.status if delivery is not None else "",
        "event_id": stored_id or event_id,
    }
    request.session[TEST_RESULT_KEY] = result
    _audit(
        request,
        "webhook_test_sent",
        provider=alias,
        delivery=result["delivery_pk"] or "",
        http_status=response.status,
        outcome=result["outcome"],
    )
    return HttpResponseRedirect(_monitor_url() + "#test-result")


urlpatterns = [
    path("webhooks/", webhooks_monitor, name="webhooks"),
    path("webhooks/live/", webhooks_live, name="webhooks-live"),
    path("webhooks/replay-failed/", replay_failed, name="webhooks-replay-failed"),
    path("webhooks/deliveries/<int:pk>/", delivery_detail, name="webhook-delivery"),
    path("webhooks/deliveries/<int:pk>/replay/", replay_delivery, name="webhook-replay"),
    path("webhooks/test/<str:alias>/", send_test_webhook, name="webhook-test"),
]
