"""Who may call which API endpoint.

This module owns one decision: what an authenticated principal may do. Every endpoint needs
an authenticated, active user. A view names the scope an action needs (``required_scope``;
by default ``read`` for GET/HEAD/OPTIONS and ``write`` otherwise):

* a request authenticated with an API key needs that scope among the key's scopes (``write``
  and ``refund`` imply ``read``);
* any other authenticated user (session, token, JWT) has ``read`` and ``write``; ``refund``
  is for staff only.

Which *objects* a user sees is decided by the views' querysets (``owned_by``): a user sees
their own payment methods, payments and refunds, staff see all, and anything else answers
404 exactly as a missing object does.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from ..models import APIKeyScope
from .authentication import api_key_from_request
from .keys import effective_scopes

__all__ = [
    "HasRequiredScope",
    "IsAuthenticatedActive",
    "default_scope_for",
    "has_scope",
    "is_staff",
    "owned_by",
]


def is_staff(request: Request | Any) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def default_scope_for(method: str) -> str:
    return APIKeyScope.READ if method in SAFE_METHODS else APIKeyScope.WRITE


def has_scope(request: Request | Any, scope: str) -> bool:
    """Whether the request's principal holds ``scope``."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    key = api_key_from_request(request)
    if key is not None:
        return scope in effective_scopes(key.scopes)
    if scope == APIKeyScope.REFUND:
        return bool(user.is_staff)
    return scope in (APIKeyScope.READ, APIKeyScope.WRITE)


def owned_by(queryset: QuerySet[Any], request: Request | Any, field: str = "user") -> QuerySet[Any]:
    """``queryset`` narrowed to what the request's user may see: staff all, others their own."""
    if is_staff(request):
        return queryset
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return queryset.none()
    return queryset.filter(**{field: user})


class IsAuthenticatedActive(BasePermission):
    message = "Authenticate with a session, a token or an API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated and user.is_active)


class HasRequiredScope(BasePermission):
    """The view's ``get_required_scope()`` must be held (see the module docstring)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        getter = getattr(view, "get_required_scope", None)
        scope = getter() if getter else default_scope_for(request.method or "GET")
        if scope is None:
            return True
        if has_scope(request, scope):
            return True
        key = api_key_from_request(request)
        if key is not None:
            self.message = f"This API key lacks the '{scope}' scope."
        elif scope == APIKeyScope.REFUND:
            self.message = "Only staff, or an API key with the 'refund' scope, may refund."
        else:
            self.message = "You may not do this."
        return False
