"""The demo's URLs: the shop at /, bookings at /bookings/, paydesk at /paydesk/, admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("paydesk/", include("paydesk.urls")),
    path("dashboard/", include("paydesk.dashboard.urls")),
    path("bookings/", include("bookings.urls")),
    path("", include("shop.urls")),
]
