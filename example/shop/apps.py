from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Demo shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from paydesk import signals

        from . import receivers

        signals.payment_confirmed.connect(receivers.order_paid, dispatch_uid="shop.order_paid")
        signals.payment_refunded.connect(
            receivers.order_refunded, dispatch_uid="shop.order_refunded"
        )
