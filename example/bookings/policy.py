"""The demo's refund rule, plugged in as ``PAYDESK["REFUND_POLICY"]``.

paydesk itself already refuses refunds larger than what is left of the payment; a policy can
only refuse more. Here: no refunds for a booking once its event has started. Payments for
anything else (shop orders) are left to paydesk's own checks.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from paydesk.exceptions import RefundNotAllowed
from paydesk.models import Payment
from paydesk.money import Money
from paydesk.policy import RefundPolicy
from shop.checkout import paid_objects

from .models import Booking


class BookingRefundPolicy(RefundPolicy):
    def check_refund(self, *, payment: Payment, amount: Money, user: Any | None) -> None:
        super().check_refund(payment=payment, amount=amount, user=user)
        booking = paid_objects(payment, Booking).select_related("event").first()
        if booking is None:
            return
        starts_at = booking.event.starts_at
        if starts_at <= timezone.now():
            when = timezone.localtime(starts_at).strftime("%Y-%m-%d %H:%M %Z")
            raise RefundNotAllowed(
                f"Refunds for '{booking.event.title}' closed when the event started ({when}). "
                "Contact the organiser if you think this is wrong."
            )
