from django.contrib import admin

from .models import Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price", "currency"]
    search_fields = ["name"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "product",
        "quantity",
        "total",
        "currency",
        "status",
        "user",
        "created_at",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["public_id", "product__name", "user__username"]
    # Status and payment follow paydesk's signals; refunds go through the Payments admin.
    readonly_fields = ["public_id", "status", "payment", "total", "currency", "created_at"]
    raw_id_fields = ["user"]
