"""Dashboard area: API keys — list, create (the full key shown once), revoke.

This module owns one decision: how the full key reaches the person who created it. It is in
the body of the response to the create POST and nowhere else: not in the session, not in a
flash message, not in the audit log, not in a redirect. paydesk stores only its hash
(``paydesk.api.keys``), so a lost key cannot be shown again; revoke it and create another.
Keys are created and revoked through ``create_api_key`` / ``revoke_api_key``, with the
``paydesk.add_apikey`` and ``paydesk.change_apikey`` permissions, and each is audited.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from ...api.keys import create_api_key, revoke_api_key
from ...exceptions import PaydeskError
from ...models import APIKey, APIKeyScope
from ...security.audit import AuditLogger, audit_request_ip
from ..access import require_perm, staff_view
from .common import page_of, render_page

__all__ = ["APIKeyForm", "api_key_create", "api_key_list", "api_key_revoke", "urlpatterns"]


class APIKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label=gettext_lazy("Name"))
    scopes = forms.MultipleChoiceField(
        choices=APIKeyScope.choices,
        initial=[APIKeyScope.READ],
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("Scopes"),
        help_text=gettext_lazy("write and refund include read."),
    )
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        label=gettext_lazy("Acts as"),
        help_text=gettext_lazy("The key sees and does what this staff user may."),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner: Any = self.fields["owner"]
        model = get_user_model()
        owner.queryset = model.objects.filter(is_active=True, is_staff=True).order_by(
            model.USERNAME_FIELD
        )
        owner.initial = user.pk


def _context(request: HttpRequest, form: APIKeyForm, **extra: Any) -> dict[str, Any]:
    keys = APIKey.objects.select_related("owner").order_by("-created_at", "-id")
    user = request.user
    return {
        "form": form,
        "page": page_of(request, keys),
        "can_add": user.has_perm("paydesk.add_apikey"),
        "can_revoke": user.has_perm("paydesk.change_apikey"),
        **extra,
    }


def _page(
    request: HttpRequest, form: APIKeyForm, *, status: int = 200, **extra: Any
) -> HttpResponse:
    return render_page(
        request,
        "paydesk/dashboard/api_keys.html",
        _context(request, form, **extra),
        section="keys",
        status=status,
    )


@staff_view
def api_key_list(request: HttpRequest) -> HttpResponse:
    return _page(request, APIKeyForm(user=request.user))


@require_perm("paydesk.add_apikey")
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    """Create a key and answer with the page showing it, once (never a redirect)."""
    form = APIKeyForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form, status=400)
    data = form.cleaned_data
    try:
        key, full_key = create_api_key(
            owner=data["owner"], name=data["name"], scopes=data["scopes"]
        )
    except PaydeskError as exc:
        form.add_error(None, exc.message)
        return _page(request, form, status=400)
    AuditLogger().log(
        action="api_key.created",
        obj=key,
        actor=request.user,
        ip_address=audit_request_ip(request),
        details={
            "name": key.name,
            "prefix": key.prefix,
            "scopes": list(key.scopes),
            "owner": data["owner"].get_username(),
            "source": "dashboard",
        },
    )
    return _page(request, APIKeyForm(user=request.user), created=key, full_key=full_key)


@require_perm("paydesk.change_apikey")
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(APIKey, pk=key_id)
    revoked = revoke_api_key(key)
    AuditLogger().log(
        action="api_key.revoked",
        obj=key,
        actor=request.user,
        success=revoked,
        ip_address=audit_request_ip(request),
        details={"name": key.name, "prefix": key.prefix, "source": "dashboard"},
    )
    if revoked:
        messages.success(request, _("Revoked the key %(name)s (pdk_%(prefix)s_…).") % _names(key))
    else:
        messages.error(request, _("The key %(name)s was already revoked.") % _names(key))
    return HttpResponseRedirect(reverse("paydesk_dashboard:api-keys"))


def _names(key: APIKey) -> dict[str, str]:
    return {"name": key.name, "prefix": key.prefix}


urlpatterns = [
    path("api-keys/", api_key_list, name="api-keys"),
    path("api-keys/create/", api_key_create, name="api-key-create"),
    path("api-keys/<int:key_id>/revoke/", api_key_revoke, name="api-key-revoke"),
]
