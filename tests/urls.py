from django.contrib import admin
from django.urls import include, path

from demo import views as demo_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("paydesk/", include("paydesk.urls")),
    path("dashboard/", include("paydesk.dashboard.urls")),
    # A host model paid through paydesk.api.payable_routes (tests/test_api_payable.py).
    path("testapp/api/", include("tests.testapp.urls")),
    # The demo project's pages, for tests/test_demo.py (laid out as in example/demo/urls.py).
    path("demo/", demo_views.home, name="home"),
    path("demo/shop/", include("shop.urls")),
    path("demo/bookings/", include("bookings.urls")),
]
