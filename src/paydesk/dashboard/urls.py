"""The dashboard's URLs (namespace ``paydesk_dashboard``): each page module owns its routes."""

from __future__ import annotations

from .views import approvals, audit, keys, overview, payments, webhooks

app_name = "paydesk_dashboard"

urlpatterns = [
    *overview.urlpatterns,
    *payments.urlpatterns,
    *webhooks.urlpatterns,
    *approvals.urlpatterns,
    *audit.urlpatterns,
    *keys.urlpatterns,
]
