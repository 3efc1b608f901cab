"""OpenAPI for the API (drf-spectacular): the schema view, Swagger UI, ReDoc, and what every
operation has in common.

This module owns one decision: how the API describes itself. ``PaydeskAutoSchema`` (set on
every paydesk view by ``base.py``) adds to each operation the ``{"error": {...}}`` responses
it can give, the ``Idempotency-Key`` header on POSTs, and the API-key security scheme. The
schema at ``schema/`` covers paydesk's API only (under whatever prefix it is mounted), and
the documentation pages load Swagger UI and ReDoc from ``drf-spectacular-sidecar``'s static
files, never from a CDN (nor web fonts), whatever ``SPECTACULAR_SETTINGS`` says.
"""

from __future__ import annotations

from typing import Any

from django.template import engines
from django.urls import URLPattern, URLResolver, get_script_prefix, include, path, reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import is_serializer
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)
from drf_spectacular.views import (
    _get_sidecar_url as sidecar_url,
)
from rest_framework.permissions import AllowAny
from rest_framework.renderers import TemplateHTMLRenderer

__all__ = [
    "APIKeyScheme",
    "PaydeskAutoSchema",
    "PaydeskRedocView",
    "PaydeskSchemaView",
    "PaydeskSwaggerView",
]

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "paydesk API",
    "DESCRIPTION": (
        "Payments, refunds and saved payment methods. Amounts are decimal strings; every "
        'error is {"error": {"type", "code", "message", "param"}}; POSTs accept an '
        "Idempotency-Key header. See docs/api.md."
    ),
    "VERSION": "1",
    "COMPONENT_SPLIT_REQUEST": True,
}

_ERROR_DESCRIPTIONS = {
    "400": "Invalid request (validation, malformed JSON, a JSON number as amount, ...).",
    "401": "Not authenticated, or the API key is invalid, revoked or expired.",
    "402": "The payment was declined or needs the customer's authentication.",
    "403": "Authenticated, but not allowed (scope, staff only).",
    "404": "No such object, or it belongs to someone else.",
    "409": "The object's state forbids this, or the same Idempotency-Key is in flight.",
    "422": "This Idempotency-Key was used for a different request.",
    "429": "Too many write requests; retry after the Retry-After header's seconds.",
    "502": "The provider failed.",
    "503": "The provider is unavailable; retry with the same Idempotency-Key.",
}

_EXAMPLE_ERRORS = {
    "400": ("invalid_request_error", "invalid_amount", "amount"),
    "401": ("authentication_error", "not_authenticated", None),
    "402": ("card_error", "card_declined", None),
    "403": ("permission_error", "permission_denied", None),
    "404": ("not_found_error", "not_found", None),
    "409": ("state_error", "invalid_transition", None),
    "422": ("idempotency_error", "idempotency_key_reused", "Idempotency-Key"),
    "429": ("rate_limit_error", "rate_limited", None),
    "502": ("provider_error", "processing_error", None),
    "503": ("provider_error", "provider_unavailable", None),
}


def error_response(status: str) -> OpenApiResponse:
    from .serializers import ErrorSerializer

    type_, code, param = _EXAMPLE_ERRORS[status]
    return OpenApiResponse(
        response=ErrorSerializer,
        description=_ERROR_DESCRIPTIONS[status],
        examples=[
            OpenApiExample(
                f"{code}",
                value={
                    "error": {
                        "type": type_,
                        "code": code,
                        "message": _ERROR_DESCRIPTIONS[status],
                        "param": param,
                    }
                },
                status_codes=[status],
                response_only=True,
            )
        ],
    )


class PaydeskAutoSchema(AutoSchema):
    """spectacular's AutoSchema plus the error responses and headers every endpoint shares."""

    def _writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    def _touches_provider(self) -> bool:
        # A view calling a provider everywhere says ``calls_provider = True``; a viewset
        # names the actions that do (``provider_actions``). Those may answer 402/502/503.
        if getattr(self.view, "calls_provider", False):
            return True
        actions = getattr(self.view, "provider_actions", ())
        return getattr(self.view, "action", None) in actions

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(
                OpenApiParameter(
                    name="Idempotency-Key",
                    type=str,
                    location=OpenApiParameter.HEADER,
                    required=False,
                    description=(
                        "Any unique string (a UUID) up to 255 characters: a retry with the "
                        "same key and body replays the first response instead of acting "
                        "twice. Kept for PAYDESK['API']['IDEMPOTENCY_TTL_HOURS'] (24)."
                    ),
                )
            )
            parameters.append(
                OpenApiParameter(
                    name="Idempotent-Replayed",
                    type=str,
                    location=OpenApiParameter.HEADER,
                    response=[200, 201],
                    description='"true" when this response is a replay of a stored one.',
                )
            )
        return parameters

    def _has_query_parameters(self) -> bool:
        for parameter in self.get_override_parameters():
            if isinstance(parameter, OpenApiParameter):
                if parameter.location == OpenApiParameter.QUERY:
                    return True
            elif is_serializer(parameter):
                return True  # parameters=[SomeQuerySerializer]
        return False

    def _error_codes(self) -> list[str]:
        validates = self._writes() or self._is_list_view() or self._has_query_parameters()
        codes = ["400"] if validates else []
        public = any(isinstance(permission, AllowAny) for permission in self.view.get_permissions())
        codes.append("401")
        if not public:
            codes.append("403")
        if "{" in self.path or self._is_list_view():
            codes.append("404")  # no such object (or not yours); a page past the end
        if self._writes():
            codes.extend(["409", "429"])
        if self.method == "POST":
            codes.append("422")
        if self._touches_provider():
            codes.extend(["402", "502", "503"])
        return codes

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        for status in self._error_codes():
            if status not in responses:
                responses[status] = self._get_response_for_code(
                    error_response(status), status, direction=direction
                )
        return dict(sorted(responses.items()))


class APIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "paydesk.api.authentication.APIKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": (
                "An API key pdk_<prefix>_<secret>, in X-Api-Key or as "
                "'Authorization: Api-Key pdk_...'. Its scopes (read, write, refund) limit "
                "what it may do as its owner."
            ),
        }


def api_prefix() -> str:
    """Where the API is mounted, relative to the site root: e.g. ``paydesk/api/v1/``."""
    schema_path = reverse("paydesk:api:schema")
    script = get_script_prefix()
    if schema_path.startswith(script):
        schema_path = schema_path[len(script) :]
    return schema_path[: -len("schema/")]


class PaydeskSchemaView(SpectacularAPIView):
    """The OpenAPI document of paydesk's API alone, with its real paths."""

    custom_settings = SCHEMA_SETTINGS

    def _get_schema_response(self, request: Any) -> Any:
        from . import urls as api_urls

        patterns: list[URLPattern | URLResolver] = [
            path(api_prefix(), include((api_urls.urlpatterns, "api"))),
        ]
        self.patterns = patterns
        return super()._get_schema_response(request)


class PaydeskSwaggerView(SpectacularSwaggerView):
    url_name = "paydesk:api:schema"
    title = "paydesk API"

    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return str(sidecar_url(f"swagger-ui-dist/{filename}"))

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return str(sidecar_url("swagger-ui-dist/favicon-32x32.png"))


# spectacular's ReDoc page loads Google Fonts; this one keeps its head to local files.
_REDOC_PAGE = """{% extends "drf_spectacular/redoc.html" %}{% block head %}
    <title>{{ title|default:"Redoc" }}</title>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style>body { margin: 0; padding: 0; }</style>
{% endblock head %}"""


class _LocalRedocRenderer(TemplateHTMLRenderer):
    def resolve_template(self, template_names: Any) -> Any:
        return engines["django"].from_string(_REDOC_PAGE)


class PaydeskRedocView(SpectacularRedocView):
    url_name = "paydesk:api:schema"
    title = "paydesk API"
    renderer_classes = [_LocalRedocRenderer]

    @staticmethod
    def _redoc_standalone() -> str:
        return str(sidecar_url("redoc/bundles/redoc.standalone.js"))
