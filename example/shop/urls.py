from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.product_list, name="product-list"),
    path("products/<int:pk>/", views.product_detail, name="product-detail"),
    path("orders/<str:public_id>/", views.order_detail, name="order-detail"),
    path("orders/<str:public_id>/retry/", views.order_retry, name="order-retry"),
    # An async view (services.async_sync_payment); see docs/operations.md#async.
    path("async-status/<str:public_id>/", views.order_status, name="order-status"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="shop/login.html", next_page="shop:product-list"
        ),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page="shop:product-list"),
        name="logout",
    ),
]
