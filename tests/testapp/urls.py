"""A host project's API routes: its own ``Booking`` paid through ``payable_routes``.

Mounted at ``/testapp/api/`` by ``tests/urls.py``, with the host's own OpenAPI schema of
these routes at ``/testapp/api/schema/`` (what a host project's drf-spectacular would show).
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from paydesk.api.payable import payable_routes
from paydesk.money import Money

from .models import Booking


def visible_bookings(request: Any) -> Any:
    """Staff see every booking, customers their own: the host's own rule."""
    if request.user.is_staff:
        return Booking.objects.all()
    return Booking.objects.filter(owner=request.user)


def customer_may_refund(request: Any, booking: Booking) -> bool:
    return bool(
        request.user.is_staff or (booking.refundable and booking.owner_id == request.user.pk)
    )


booking_routes = payable_routes(
    Booking,
    lookup="public_id",
    queryset=visible_bookings,
    amount=lambda booking: Money(booking.amount, booking.currency),
    refund_permission=customer_may_refund,
    description=lambda booking: f"Booking: {booking.title}",
)

urlpatterns = [
    *booking_routes,
    path(
        "schema/",
        SpectacularAPIView.as_view(
            patterns=[path("testapp/api/", include(booking_routes))],
            custom_settings={"TITLE": "testapp bookings", "VERSION": "1"},
        ),
        name="testapp-schema",
    ),
]
