"""Keep orders in step with their payments; connected in ``ShopConfig.ready``.

paydesk sends these signals after the payment change has committed, so a receiver only
records what happened to the host object; it decides nothing about the payment itself.
"""

from __future__ import annotations

from typing import Any

from paydesk.models import Payment
from paydesk.states import PaymentStatus

from .checkout import paid_objects
from .models import Order


def order_paid(sender: Any, *, payment: Payment, **kwargs: Any) -> None:
    """``payment_confirmed``: the order is paid once its payment is captured (completed)."""
    if payment.status != PaymentStatus.COMPLETED:
        return  # "authorized" money is not taken yet
    paid_objects(payment, Order).filter(status=Order.Status.PENDING).update(
        status=Order.Status.PAID, payment=payment
    )


def order_refunded(sender: Any, *, payment: Payment, **kwargs: Any) -> None:
    """``payment_refunded``: the order is refunded only when nothing captured is left."""
    if payment.status != PaymentStatus.REFUNDED:
        return  # a partial refund leaves the order paid
    paid_objects(payment, Order).exclude(status=Order.Status.REFUNDED).update(
        status=Order.Status.REFUNDED
    )
