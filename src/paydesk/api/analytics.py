"""Analytics endpoints (staff only): summary, time series, performance, fraud.

Thin views over :mod:`paydesk.services.analytics`: the query string is validated by a
serializer, the service computes everything in the database, and its ``as_dict()`` is the
body (amounts and rates as decimal strings, durations in seconds, every money figure per
currency). Who may call them: an active staff user, through a session or token, or an API
key owned by staff with the ``read`` scope. Appended to the API's URLs under
``analytics/``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from ..services import analytics
from .base import PaydeskAPIView
from .permissions import HasRequiredScope, IsAuthenticatedActive, is_staff

__all__ = [
    "FraudReportView",
    "PerformanceView",
    "SummaryView",
    "TimeSeriesView",
    "urlpatterns",
]


class IsStaffPrincipal(BasePermission):
    message = "Analytics are for staff (or an API key owned by staff, with the read scope)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_staff(request)


_STAFF = [IsAuthenticatedActive, HasRequiredScope, IsStaffPrincipal]


# -- query strings ------------------------------------------------------------------------


class RangeQuery(serializers.Serializer):
    start = serializers.DateField(help_text="First day (inclusive), e.g. 2026-03-01")
    end = serializers.DateField(help_text="Last day (inclusive), e.g. 2026-03-31")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "end must not be before start."})
        return attrs


class FilterQuery(RangeQuery):
    provider = serializers.CharField(required=False, help_text="A provider alias")
    method_type = serializers.CharField(
        required=False, help_text="A saved method type (credit_card, paypal, ...)"
    )
    currency = serializers.CharField(
        required=False, min_length=3, max_length=3, help_text="ISO 4217 code"
    )


class SummaryQuery(FilterQuery):
    convert_to = serializers.CharField(
        required=False,
        min_length=3,
        max_length=3,
        help_text="Also give totals converted to this currency",
    )
    rate_date = serializers.DateField(
        required=False, help_text="The rates to convert with: the latest on or before this day"
    )


class TimeSeriesQuery(FilterQuery):
    interval = serializers.ChoiceField(choices=list(analytics.INTERVALS), default="day")


class PerformanceQuery(FilterQuery):
    by = serializers.ChoiceField(choices=list(analytics.PERFORMANCE_KEYS), default="provider")


# -- responses (for the OpenAPI schema; the bodies are the services' as_dict()) ----------


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=19, decimal_places=4, coerce_to_string=True)


class RefundStatsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    completed = serializers.IntegerField()
    pending = serializers.IntegerField()
    failed = serializers.IntegerField()
    amount = serializers.CharField(help_text="Completed refunds, in this currency")
    average_processing_time = serializers.FloatField(
        allow_null=True, help_text="Seconds from request to completion"
    )
    reasons = ReasonSerializer(many=True)


def _amount(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(help_text=help_text or "A decimal string in this currency")


def _rate() -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text="A ratio from 0 to 1, 4 places")


class CurrencySummarySerializer(serializers.Serializer):
    currency = serializers.CharField()
    payments = serializers.IntegerField()
    attempted = serializers.IntegerField()
    successful = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = _rate()
    gross_volume = _amount()
    refunded = _amount()
    net_revenue = _amount()
    fees = _amount()
    average_order_value = serializers.CharField(allow_null=True)
    refund_rate = _rate()
    failures = serializers.DictField(child=serializers.IntegerField())
    refunds = RefundStatsSerializer()
    disputes = serializers.IntegerField()


class ConvertedSerializer(serializers.Serializer):
    currency = serializers.CharField()
    rate_date = serializers.DateField(allow_null=True)
    rates = serializers.DictField(child=serializers.CharField())
    rate_dates = serializers.DictField(child=serializers.DateField())
    gross_volume = _amount()
    refunded = _amount()
    net_revenue = _amount()
    fees = _amount()


class SummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive")
    filters = serializers.DictField(child=serializers.CharField())
    currencies = CurrencySummarySerializer(many=True)
    converted = ConvertedSerializer(allow_null=True)


class SeriesPointSerializer(serializers.Serializer):
    period = serializers.DateField()
    payments = serializers.IntegerField()
    attempted = serializers.IntegerField()
    successful = serializers.IntegerField()
    success_rate = _rate()
    gross_volume = _amount()
    refunded = _amount()
    net_revenue = _amount()
    fees = _amount()


class TimeSeriesSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    interval = serializers.ChoiceField(choices=list(analytics.INTERVALS))
    filters = serializers.DictField(child=serializers.CharField())
    series = serializers.DictField(child=SeriesPointSerializer(many=True), help_text="By currency")


class PerformanceRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    currency = serializers.CharField()
    attempted = serializers.IntegerField()
    successful = serializers.IntegerField()
    success_rate = _rate()
    gross_volume = _amount()
    median_time_to_complete = serializers.FloatField(allow_null=True, help_text="Seconds")


class PerformanceSerializer(serializers.Serializer):
    by = serializers.CharField()
    results = PerformanceRowSerializer(many=True)


class FraudReportSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    checks = serializers.IntegerField()
    decisions = serializers.DictField(child=serializers.IntegerField())
    blocked_volume = serializers.DictField(child=serializers.CharField())
    by_rule = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
    review_queue = serializers.IntegerField()
    oldest_held_for = serializers.FloatField(allow_null=True, help_text="Seconds")
    approved = serializers.IntegerField()
    rejected = serializers.IntegerField()
    false_positive_rate = _rate()
    provider_flagged = serializers.IntegerField()


# -- views --------------------------------------------------------------------------------


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


class SummaryView(PaydeskAPIView):
    permission_classes = _STAFF

    @extend_schema(
        summary="Payments, refunds and disputes per currency over a date range (staff)",
        tags=["analytics"],
        parameters=[SummaryQuery],
        responses={200: SummarySerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(analytics.summary(**_query(SummaryQuery, request)).as_dict())


class TimeSeriesView(PaydeskAPIView):
    permission_classes = _STAFF

    @extend_schema(
        summary="Payments per day, week or month, per currency (staff)",
        tags=["analytics"],
        parameters=[TimeSeriesQuery],
        responses={200: TimeSeriesSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(analytics.time_series(**_query(TimeSeriesQuery, request)).as_dict())


class PerformanceView(PaydeskAPIView):
    permission_classes = _STAFF

    @extend_schema(
        summary="Success rate and median time to complete per provider or method (staff)",
        tags=["analytics"],
        parameters=[PerformanceQuery],
        responses={200: PerformanceSerializer},
    )
    def get(self, request: Request) -> Response:
        query = _query(PerformanceQuery, request)
        rows = analytics.performance(**query)
        return Response({"by": query["by"], "results": [row.as_dict() for row in rows]})


class FraudReportView(PaydeskAPIView):
    permission_classes = _STAFF

    @extend_schema(
        summary="Fraud decisions, rules, review queue and false positives (staff)",
        tags=["analytics"],
        parameters=[RangeQuery],
        responses={200: FraudReportSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(analytics.fraud_report(**_query(RangeQuery, request)).as_dict())


urlpatterns: list[Any] = [
    path("analytics/summary/", SummaryView.as_view(), name="analytics-summary"),
    path("analytics/timeseries/", TimeSeriesView.as_view(), name="analytics-timeseries"),
    path("analytics/performance/", PerformanceView.as_view(), name="analytics-performance"),
    path("analytics/fraud/", FraudReportView.as_view(), name="analytics-fraud"),
]
