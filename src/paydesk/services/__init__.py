"""The only code that writes payment, refund and ledger state.

Every function is keyword-only and typed. Each state change locks the payment row, appends
to the ledger and refreshes the payment's cached fold in one transaction; provider calls
happen between such transactions, never inside one, so no row lock is held across the
network. Signals are sent on commit.
"""

from .methods import add_payment_method, deactivate_payment_method, set_default_payment_method
from .payments import (
    cancel_payment,
    capture_payment,
    confirm_payment,
    create_payment,
    process_payment,
    retry_payment,
    sync_payment,
)
from .refunds import create_refund, process_refund, record_refund_result

__all__ = [
    "add_payment_method",
    "cancel_payment",
    "capture_payment",
    "confirm_payment",
    "create_payment",
    "create_refund",
    "deactivate_payment_method",
    "process_payment",
    "process_refund",
    "record_refund_result",
    "retry_payment",
    "set_default_payment_method",
    "sync_payment",
]
