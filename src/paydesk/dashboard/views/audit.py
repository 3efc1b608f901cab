"""Dashboard area: the audit log — who did what to which object, with what outcome.

This module owns one decision: how staff look through ``AuditLog``. The page only reads
(the log is append-only; ``paydesk.security.audit.AuditLogger`` writes it); filters are GET
parameters, an invalid one is reported and ignored, and the query count does not depend on
the page size (the actor comes with its row).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.translation import gettext_lazy

from ...models import AuditLog
from ..access import staff_view
from .common import page_of, render_page

__all__ = ["AuditFilterForm", "audit_list", "filtered_entries", "urlpatterns"]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, label=gettext_lazy("Action"))
    actor = forms.CharField(
        required=False,
        max_length=150,
        label=gettext_lazy("Actor"),
        help_text=gettext_lazy("Username or label such as system, webhook:stripe"),
    )
    provider = forms.ChoiceField(required=False, label=gettext_lazy("Provider"))
    success = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Outcome"),
        choices=[
            ("", gettext_lazy("Any")),
            ("true", gettext_lazy("Success")),
            ("false", gettext_lazy("Failure")),
        ],
    )
    object_id = forms.CharField(
        required=False,
        max_length=255,
        label=gettext_lazy("Object id"),
        widget=forms.TextInput(attrs={"type": "search"}),
    )

    def __init__(self, *args: Any, actions: list[str], providers: list[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        any_label = gettext_lazy("Any")
        action_field: Any = self.fields["action"]
        action_field.choices = [("", any_label), *((a, a) for a in actions)]
        provider_field: Any = self.fields["provider"]
        provider_field.choices = [("", any_label), *((p, p) for p in providers)]


def filtered_entries(form: AuditFilterForm) -> QuerySet[AuditLog]:
    """The entries the valid filters of ``form`` select, newest first."""
    queryset = AuditLog.objects.select_related("actor").order_by("-created_at", "-id")
    data = form.cleaned_data if form.is_bound else {}
    if data.get("action"):
        queryset = queryset.filter(action=data["action"])
    if data.get("provider"):
        queryset = queryset.filter(provider=data["provider"])
    if data.get("success") in ("true", "false"):
        queryset = queryset.filter(success=data["success"] == "true")
    actor = (data.get("actor") or "").strip()
    if actor:
        # actor_label holds the username at the time (and "system", "webhook:<alias>"...).
        queryset = queryset.filter(Q(actor_label__iexact=actor) | Q(actor_label__istartswith=actor))
    object_id = (data.get("object_id") or "").strip()
    if object_id:
        # Exact (indexed); a refund's entries also name their payment in details.
        queryset = queryset.filter(Q(object_id=object_id) | Q(details__payment_id=object_id))
    return queryset


def _distinct(field: str) -> list[str]:
    return sorted(
        value
        for value in AuditLog.objects.order_by().values_list(field, flat=True).distinct()
        if value
    )


@staff_view
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(
        request.GET or None, actions=_distinct("action"), providers=_distinct("provider")
    )
    if form.is_bound:
        form.is_valid()  # fills cleaned_data with the valid fields only
    page = page_of(request, filtered_entries(form))
    return render_page(
        request,
        "paydesk/dashboard/audit.html",
        {"form": form, "page": page, "filtered": form.is_bound},
        section="audit",
    )


urlpatterns = [path("audit/", audit_list, name="audit")]
