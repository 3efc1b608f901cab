"""Keep bookings in step with their payments; connected in ``BookingsConfig.ready``."""

from __future__ import annotations

from typing import Any

from paydesk.models import Payment
from paydesk.states import PaymentStatus
from shop.checkout import paid_objects

from .models import Booking


def booking_paid(sender: Any, *, payment: Payment, **kwargs: Any) -> None:
    """``payment_confirmed``: the booking is paid once its payment is captured (completed)."""
    if payment.status != PaymentStatus.COMPLETED:
        return
    paid_objects(payment, Booking).filter(status=Booking.Status.PENDING).update(
        status=Booking.Status.PAID, payment=payment
    )


def booking_refunded(sender: Any, *, payment: Payment, **kwargs: Any) -> None:
    """``payment_refunded``: the booking is refunded only when the whole payment is."""
    if payment.status != PaymentStatus.REFUNDED:
        return
    paid_objects(payment, Booking).exclude(status=Booking.Status.REFUNDED).update(
        status=Booking.Status.REFUNDED
    )
