"""The API's URLs, mounted by ``paydesk.urls`` at ``api/v1/`` (namespace ``paydesk:api``).

Resources come from a DRF router (``payment-methods/``, ``payments/``, ``refunds/``);
``config/``, the webhook facts and the OpenAPI pages are single views; the currencies and
rates endpoints are appended from ``currencies.py``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import config, schema, views, webhooks
from .analytics import urlpatterns as analytics_urlpatterns
from .currencies import urlpatterns as currency_urlpatterns

app_name = "api"

router = SimpleRouter()
router.register("payment-methods", views.PaymentMethodViewSet, basename="payment-method")
router.register("payments", views.PaymentViewSet, basename="payment")
router.register("refunds", views.RefundViewSet, basename="refund")

urlpatterns: list[Any] = [
    path("config/", config.ConfigView.as_view(), name="config"),
    path(
        "webhooks/providers/",
        webhooks.WebhookProvidersView.as_view(),
        name="webhook-providers",
    ),
    path("webhooks/health/", webhooks.WebhookHealthView.as_view(), name="webhook-health"),
    path("webhooks/stats/", webhooks.WebhookStatsView.as_view(), name="webhook-stats"),
    path("schema/", schema.PaydeskSchemaView.as_view(), name="schema"),
    path("docs/", schema.PaydeskSwaggerView.as_view(), name="docs"),
    path("redoc/", schema.PaydeskRedocView.as_view(), name="redoc"),
    *router.urls,
]
urlpatterns += currency_urlpatterns
urlpatterns += analytics_urlpatterns
