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
* Idempotency: a POST with an ``Idempotency-Key`` header runs once per key and principal
  (``idempotency.py``), after authentication, permissions and throttling.
* JSON only, in and out (``parser_classes`` / ``renderer_classes``).
* OpenAPI: ``schema.PaydeskAutoSchema`` adds the error responses, the ``Idempotency-Key``
  header and the security schemes to every operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from rest_framework import viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from .authentication import APIKeyAuthentication
from .exceptions import exception_handler
from .idempotency import header_key, run_idempotently
from .permissions import HasRequiredScope, IsAuthenticatedActive, default_scope_for
from .schema import PaydeskAutoSchema
from .throttling import WriteRateThrottle, principal_of

__all__ = ["PaydeskAPIMixin", "PaydeskAPIView", "PaydeskGenericViewSet"]


class PaydeskAPIMixin:
    """Shared by :class:`PaydeskAPIView` and :class:`PaydeskGenericViewSet`."""

    #: The scope this view (or action) needs; None: ``read`` for safe methods, else ``write``.
    required_scope: str | None = None
    #: Scopes per viewset action (``{"create": "refund"}``); wins over ``required_scope``.
    action_scopes: dict[str, str | None] = {}
    permission_classes: Sequence[Any] = [IsAuthenticatedActive, HasRequiredScope]
    parser_classes: Sequence[Any] = [JSONParser]
    renderer_classes: Sequence[Any] = [JSONRenderer]
    schema: Any = PaydeskAutoSchema()

    request: Any
    args: Any
    kwargs: Any
    headers: Any
    response: Any

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

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # DRF's APIView.dispatch, with the handler run through the Idempotency-Key layer.
        view: Any = self
        self.args = args
        self.kwargs = kwargs
        drf_request = view.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = view.default_response_headers
        try:
            view.initial(drf_request, *args, **kwargs)
            method = (drf_request.method or "").lower()
            if method in view.http_method_names:
                handler = getattr(self, method, view.http_method_not_allowed)
            else:
                handler = view.http_method_not_allowed
            response = self._run(drf_request, handler, *args, **kwargs)
        except Exception as exc:
            response = view.handle_exception(exc)
        self.response = view.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    def _run(self, request: Request, handler: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        key = header_key(request) if request.method == "POST" else None
        principal = principal_of(request) if key else None
        if key is None or principal is None:
            return handler(request, *args, **kwargs)
        view: Any = self

        def run() -> Response:
            try:
                response: Response = handler(request, *args, **kwargs)
            except Exception as exc:
                # Errors the handler maps (4xx, paydesk's tree) are responses to store;
                # anything else propagates (a 500) and releases the claim.
                response = view.handle_exception(exc)
            return response

        return run_idempotently(request, principal=principal, key=key, run=run)


class PaydeskAPIView(PaydeskAPIMixin, APIView):
    """A single-endpoint view (``config/``, webhook info, ...)."""


class PaydeskGenericViewSet(PaydeskAPIMixin, viewsets.GenericViewSet):
    """A resource (payment methods, payments, refunds, ...); add DRF's mixins as needed."""
