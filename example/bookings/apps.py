from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Demo bookings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from paydesk import signals

        from . import receivers

        signals.payment_confirmed.connect(
            receivers.booking_paid, dispatch_uid="bookings.booking_paid"
        )
        signals.payment_refunded.connect(
            receivers.booking_refunded, dispatch_uid="bookings.booking_refunded"
        )
