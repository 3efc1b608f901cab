"""The bases every paydesk API view derives from.

This module owns one decision: what every endpoint has in common, so that no view can
forget it.

* Authentication: :class:`~paydesk.api.authentication.APIKeyAuthentication` first, then the
  project's ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` (session, token, JWT, ...),
  read when the request comes, not at import time.
* Permissions: an authenticated, active user holding the view's required scope
  (``required_scope``; None means ``read`` for safe methods and ``write`` otherwise; a view
  or an ``@action(required_scope="refund")`` may name another; ``get_required_scope()`` may
  decide per action).
* Errors: :func:`paydesk.api.exceptions.exception_handler`, whatever the project's own
  ``EXCEPTION_HANDLER`` is, so every error body is ``{"error": {...}}``.
* Throttling: the project's default throttles plus paydesk's write throttle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rest_framework import viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from .authentication import APIKeyAuthentication
from .exceptions import exception_handler
from .permissions import HasRequiredScope, IsAuthenticatedActive, default_scope_for
from .throttling import WriteRateThrottle

__all__ = ["PaydeskAPIMixin", "PaydeskAPIView", "PaydeskGenericViewSet"]


class PaydeskAPIMixin:
    """Shared by :class:`PaydeskAPIView` and :class:`PaydeskGenericViewSet`."""

    #: The scope this view (or action) needs; None: ``read`` for safe methods, else ``write``.
    required_scope: str | None = None
    #: Scopes per viewset action (``{"create": "refund"}``); wins over ``required_scope``.
    action_scopes: dict[str, str | None] = {}
    permission_classes: Sequence[Any] = [IsAuthenticatedActive, HasRequiredScope]

    request: Any

    def get_required_scope(self) -> str | None:
        action = getattr(self, "action", None)
        if action and action in self.action_scopes:
            return self.action_scopes[action]
        if self.required_scope is not None:
            return self.required_scope
        return default_scope_for(self.request.method or "GET")

    def get_authenticators(self) -> list[BaseAuthentication]:
        classes: list[Any] = [APIKeyAuthentication]
        for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
            if cls not in classes:
                classes.append(cls)
        return [cls() for cls in classes]

    def get_permissions(self) -> list[BasePermission]:
        return [permission() for permission in self.permission_classes]

    def get_throttles(self) -> list[BaseThrottle]:
        classes: list[Any] = list(api_settings.DEFAULT_THROTTLE_CLASSES)
        classes.append(WriteRateThrottle)
        return [cls() for cls in classes]

    def get_exception_handler(self) -> Callable[..., Any]:
        return exception_handler


class PaydeskAPIView(PaydeskAPIMixin, APIView):
    """A single-endpoint view (``config/``, webhook info, ...)."""


class PaydeskGenericViewSet(PaydeskAPIMixin, viewsets.GenericViewSet):
    """A resource (payment methods, payments, refunds, ...); add DRF's mixins as needed."""
