"""paydesk's URLs: mount under a prefix, e.g. ``path("paydesk/", include("paydesk.urls"))``."""

from django.urls import include, path

from . import health, metrics, views
from .providers.bank_transfer import views as bank_transfer_views
from .providers.easypay import views as easypay_views
from .providers.iyzico import views as iyzico_views
from .providers.sandbox import views as sandbox_views
from .webhooks import info as webhook_info
from .webhooks import views as webhook_views

app_name = "paydesk"

urlpatterns = [
    # First, because providers call it most (URL resolution tries the patterns in order).
    # The info endpoints come before the universal one: their segments are reserved
    # (system check paydesk.E011).
    path("webhooks/providers/", webhook_info.webhook_providers, name="webhook-providers"),
    path("webhooks/health/", webhook_info.webhook_health, name="webhook-health"),
    path("webhooks/stats/", webhook_info.webhook_stats, name="webhook-stats"),
    path("webhooks/<str:alias>/", webhook_views.webhook, name="webhook"),
    # The REST API (paydesk.api): namespace "paydesk:api".
    path("api/v1/", include("paydesk.api.urls")),
    path("return/<str:payment_id>/", views.payment_return, name="payment-return"),
    # Operations (docs/operations.md): provider health (public summary, staff detail) and
    # Prometheus metrics (staff or a bearer token).
    path("health/", health.health_view, name="health"),
    path("metrics/", metrics.metrics_view, name="metrics"),
    # KICC POSTs its window's result here (returnUrl); see providers/easypay/views.py.
    path("easypay/return/<str:payment_id>/", easypay_views.payment_return, name="easypay-return"),
    path("sandbox/checkout/<str:charge_id>/", sandbox_views.checkout, name="sandbox-checkout"),
    path("sandbox/3ds/<str:charge_id>/", sandbox_views.challenge, name="sandbox-3ds"),
    path(
        "iyzico/callback/<str:alias>/<str:payment_id>/",
        iyzico_views.callback,
        name="iyzico-callback",
    ),
    path(
        "bank-transfer/<str:payment_id>/",
        bank_transfer_views.instructions,
        name="bank-transfer",
    ),
]
