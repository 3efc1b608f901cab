"""The demo's URLs: the landing page at /, the shop at /shop/, bookings at /bookings/, paydesk
at /paydesk/, paydesk's staff dashboard at /dashboard/, the admin."""

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("paydesk/", include("paydesk.urls")),
    path("dashboard/", include("paydesk.dashboard.urls")),
    path("shop/", include("shop.urls")),
    path("bookings/", include("bookings.urls")),
]
