"""Who may see the dashboard, and who may act in it.

This module owns one decision: the dashboard is for active staff. Anonymous visitors are sent
to a login page (``PAYDESK["DASHBOARD"]["LOGIN_URL"]``, else the admin's login when the admin
is installed, else ``settings.LOGIN_URL``); a signed-in user who is not active staff gets
403. Actions additionally need a Django permission (``require_perm``), so a project can give
support staff a read-only dashboard by granting no permissions; superusers have them all.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from ..conf import paydesk_settings, resolve

__all__ = ["is_dashboard_user", "login_url", "require_perm", "staff_view"]

View = TypeVar("View", bound=Callable[..., HttpResponse])


def is_dashboard_user(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.is_staff)


def login_url() -> str:
    configured = resolve(paydesk_settings.DASHBOARD.get("LOGIN_URL"))
    if configured:
        return str(configured)
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return str(settings.LOGIN_URL)


def _refuse(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "paydesk/dashboard/forbidden.html", {"message": message}, status=403)


def staff_view(view: View) -> View:
    """Active staff only; everyone else is sent to log in (anonymous) or refused (403)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url())
        if not is_dashboard_user(user):
            return _refuse(request, _("The paydesk dashboard is for staff only."))
        return view(request, *args, **kwargs)

    return cast(View, never_cache(wrapper))


def require_perm(*perms: str) -> Callable[[View], View]:
    """Staff with every one of ``perms`` (e.g. ``"paydesk.add_refund"``); else 403."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perms(perms):
                return _refuse(
                    request,
                    _("You need the permission %(perms)s for this action.")
                    % {"perms": ", ".join(perms)},
                )
            return view(request, *args, **kwargs)

        return staff_view(cast(View, wrapper))

    return decorator
