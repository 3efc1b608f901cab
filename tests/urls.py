from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("paydesk/", include("paydesk.urls")),
    # The demo project's pages, for tests/test_demo.py.
    path("demo/", include("shop.urls")),
    path("demo/bookings/", include("bookings.urls")),
]
