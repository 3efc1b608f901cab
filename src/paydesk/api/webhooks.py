"""The webhook pipeline's read-only facts under the API: providers, health, stats.

The same figures as ``paydesk.webhooks.info`` (its functions compute them; who may see the
provider list and the stats is still decided by ``can_view_webhook_info``: active staff,
and through an API key its ``read`` scope), with the API's authentication and error body.
Health needs no login and answers 503 when the pipeline is unhealthy.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from ..webhooks.info import (
    MAX_STATS_DAYS,
    can_view_webhook_info,
    pipeline_health,
    pipeline_stats,
    webhook_provider_list,
)
from .base import PaydeskAPIView
from .permissions import HasRequiredScope, IsAuthenticatedActive

__all__ = ["WebhookHealthView", "WebhookProvidersView", "WebhookStatsView"]


class CanViewWebhookInfo(BasePermission):
    message = "Only staff (or a staff member's API key with the read scope) may view this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return can_view_webhook_info(request)


class WebhookProviderSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    icon = serializers.CharField()
    webhook_url = serializers.CharField()
    signature_header = serializers.CharField()
    signature_algorithm = serializers.CharField()
    configured = serializers.BooleanField()


class WebhookProvidersSerializer(serializers.Serializer):
    providers = WebhookProviderSerializer(many=True)


class WebhookHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unhealthy"])
    backlog = serializers.IntegerField()
    oldest_pending_age_seconds = serializers.FloatField(allow_null=True)
    failure_rate_1h = serializers.FloatField()
    dead = serializers.IntegerField()


class WebhookStatsSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    since = serializers.DateTimeField()
    total = serializers.IntegerField()
    by_provider = serializers.DictField(child=serializers.IntegerField())
    by_event_type = serializers.DictField(child=serializers.IntegerField())
    by_status = serializers.DictField(child=serializers.IntegerField())
    success_rate = serializers.FloatField(allow_null=True)
    median_latency_seconds = serializers.FloatField(allow_null=True)


class WebhookStatsQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=MAX_STATS_DAYS, default=7)


_STAFF = [IsAuthenticatedActive, HasRequiredScope, CanViewWebhookInfo]


class WebhookProvidersView(PaydeskAPIView):
    permission_classes = _STAFF

    @extend_schema(
        summary="Providers that receive webhooks, with the URL to register (staff)",
        tags=["webhooks"],
        responses={200: WebhookProvidersSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response({"providers": webhook_provider_list(request)})


class WebhookHealthView(PaydeskAPIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Webhook pipeline health (no login; numbers only)",
        tags=["webhooks"],
        responses={
            200: WebhookHealthSerializer,
            503: OpenApiResponse(WebhookHealthSerializer, description="Unhealthy."),
        },
    )
    def get(self, request: Request) -> Response:
        report = pipeline_health()
        return Response(report, status=200 if report["status"] == "ok" else 503)


class WebhookStatsView(PaydeskAPIView):
    permission_classes = _STAFF

    @extend_schema(
        summary="Webhook deliveries by provider, event type and outcome (staff)",
        tags=["webhooks"],
        parameters=[WebhookStatsQuery],
        responses={200: WebhookStatsSerializer},
    )
    def get(self, request: Request) -> Response:
        query = WebhookStatsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(pipeline_stats(days=query.validated_data["days"]))
