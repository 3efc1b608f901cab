"""Decisions a host project customises, behind an adapter class named in settings.

This module owns one decision: whether a refund is allowed by the merchant's business rules
(e.g. "no refunds after the event started"). paydesk's own invariants (never refund more
than was captured) are enforced by the services whatever the policy says; the policy can
only refuse more. Point ``PAYDESK["REFUND_POLICY"]`` at a subclass::

    class BookingRefundPolicy(RefundPolicy):
        def check_refund(self, *, payment, amount, user):
            booking = payment.content_object
            if booking and booking.event.starts_at <= timezone.now():
                raise RefundNotAllowed("The event has started; refunds are closed.")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from .conf import paydesk_settings
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .models import Payment
    from .money import Money


class RefundPolicy:
    """Allows every refund the services' own invariants allow."""

    def check_refund(self, *, payment: Payment, amount: Money, user: Any | None) -> None:
        """Raise ``paydesk.exceptions.RefundNotAllowed`` to refuse the refund."""


def get_refund_policy() -> RefundPolicy:
    path = paydesk_settings.REFUND_POLICY
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f'PAYDESK["REFUND_POLICY"] = {path!r} cannot be imported: {exc}'
        ) from exc
    return cls()
