"""Lifecycle notifications, sent after the transaction that caused them commits.

This module owns one decision: how the outside world hears about payment state changes.
Signals are notifications, not hooks into the decision: they are sent from
``transaction.on_commit`` (so a rolled-back change is never announced), once per real state
change, through ``send_robust`` (so one failing receiver cannot stop the others or undo the
payment); each receiver failure is logged with its traceback.

Every signal is sent with ``sender`` (the ``Payment`` class), ``payment`` (the ``Payment``
row), ``provider`` (the alias) and ``result`` (the provider's ``PaymentResult`` /
``RefundResult``, or ``None`` when the change did not come from a provider call). Extra
arguments:

=========================  ==========================================================
signal                     extra keyword arguments
=========================  ==========================================================
payment_created            —
payment_requires_action    ``next_action`` (dict: type, redirect_url / client_secret)
payment_registered         ``next_action``, ``redirect_url``: the provider registered the
                           payment and the customer must be sent to its page (a redirect
                           next action); sent right after ``payment_requires_action``
payment_confirmed          — (completed or authorized); ``payment_approved`` is an alias
payment_failed             ``error_code``, ``error_message``
payment_cancelled          —
payment_refunded           ``refund``, ``amount`` (Decimal), ``reason``
refund_failed              ``refund``, ``error_code``, ``error_message``
webhook_received           ``event_type``, ``result`` ("processed" or "ignored"),
                           ``payload``, ``delivery``; ``sender`` is the webhook model and
                           there is no ``payment`` (the deliveries' effects send their own)
eft_approved               ``transfer`` (``BankTransfer``), ``approved_by`` (the staff
                           user), ``approval_service`` (the ``EFTApprovalService``);
                           ``payment_confirmed`` is sent for the same change
eft_rejected               ``transfer``, ``rejected_by``, ``reason``,
                           ``approval_service``; ``payment_failed`` is sent too
payment_flagged            ``assessment`` (``FraudAssessment``), ``score``, ``reasons``:
                           the fraud rules held the payment for a staff review
payment_blocked            ``assessment``, ``score``, ``reasons``: the fraud rules refused
                           the payment; ``payment_failed`` is sent too
=========================  ==========================================================
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

__all__ = [
    "eft_approved",
    "eft_rejected",
    "payment_approved",
    "payment_blocked",
    "payment_cancelled",
    "payment_confirmed",
    "payment_created",
    "payment_failed",
    "payment_flagged",
    "payment_refunded",
    "payment_registered",
    "payment_requires_action",
    "refund_failed",
    "send_on_commit",
    "webhook_received",
]

logger = logging.getLogger("paydesk.signals")

payment_created = Signal()
payment_requires_action = Signal()
#: A redirect next action (hosted page: KICC's authPageUrl, a NOWPayments invoice); the name
#: the django-easypay guide uses for "transaction registered, send the customer to the window".
payment_registered = Signal()
payment_confirmed = Signal()
#: Alias kept for projects following the django-payments-tr guide's name.
payment_approved = payment_confirmed
payment_failed = Signal()
payment_cancelled = Signal()
payment_refunded = Signal()
refund_failed = Signal()
webhook_received = Signal()
#: A staff member approved / rejected a manual bank transfer (``paydesk.services.eft``).
eft_approved = Signal()
eft_rejected = Signal()
#: The fraud rules held a payment for review / refused it (``paydesk.services.fraud``).
payment_flagged = Signal()
payment_blocked = Signal()


def _send(signal: Signal, sender: Any, kwargs: dict[str, Any]) -> None:
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "paydesk signal receiver %r failed; the payment change it reports is committed",
                receiver,
                exc_info=(type(response), response, response.__traceback__),
            )


def send_on_commit(signal: Signal, *, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction commits (immediately if none is open)."""
    transaction.on_commit(lambda: _send(signal, sender, kwargs), robust=False)
