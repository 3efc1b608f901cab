from django.urls import path

from . import views

app_name = "bookings"

urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("events/<int:pk>/", views.event_detail, name="event-detail"),
    path("<str:public_id>/", views.booking_detail, name="booking-detail"),
    path("<str:public_id>/retry/", views.booking_retry, name="booking-retry"),
    path("<str:public_id>/refund/", views.booking_refund, name="booking-refund"),
]
