from django.contrib import admin

from .models import Booking, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["title", "starts_at", "price", "currency"]
    search_fields = ["title"]


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "email", "status", "user", "created_at"]
    list_filter = ["status", "event"]
    search_fields = ["public_id", "email", "user__username"]
    # Status and payment follow paydesk's signals; refunds go through the booking page.
    readonly_fields = ["public_id", "status", "payment", "created_at"]
    raw_id_fields = ["user"]
