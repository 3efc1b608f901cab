"""paydesk's URLs: mount under a prefix, e.g. ``path("paydesk/", include("paydesk.urls"))``."""

from django.urls import path

from . import views
from .providers.sandbox import views as sandbox_views
from .webhooks import views as webhook_views

app_name = "paydesk"

urlpatterns = [
    path("return/<str:payment_id>/", views.payment_return, name="payment-return"),
    path("sandbox/checkout/<str:charge_id>/", sandbox_views.checkout, name="sandbox-checkout"),
    path("sandbox/3ds/<str:charge_id>/", sandbox_views.challenge, name="sandbox-3ds"),
    path("webhooks/<str:alias>/", webhook_views.webhook, name="webhook"),
]
