from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("paydesk/", include("paydesk.urls")),
    path("dashboard/", include("paydesk.dashboard.urls")),
    # A host model paid through paydesk.api.payable_routes (tests/test_api_payable.py).
    path("testapp/api/", include("tests.testapp.urls")),
    # The demo project's pages, for tests/test_demo.py.
    path("demo/", include("shop.urls")),
    path("demo/bookings/", include("bookings.urls")),
]
