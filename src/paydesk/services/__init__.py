"""The only code that writes payment, refund and ledger state.

Every function is keyword-only and typed. Each state change locks the payment row, appends
to the ledger and refreshes the payment's cached fold in one transaction; provider calls
happen between such transactions, never inside one, so no row lock is held across the
network. Signals are sent on commit.

Each service that calls a provider has an async twin for Django async views
(``aprocess_payment``, ``async_sync_payment``, ``acreate_refund``...; see
``paydesk.services.async_services``).
"""

from .async_services import (
    acancel_payment,
    acapture_payment,
    aconfirm_payment,
    acreate_payment,
    acreate_refund,
    aprocess_payment,
    aprocess_refund,
    aretry_payment,
    async_sync_payment,
)
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
    "acancel_payment",
    "acapture_payment",
    "aconfirm_payment",
    "acreate_payment",
    "acreate_refund",
    "add_payment_method",
    "aprocess_payment",
    "aprocess_refund",
    "aretry_payment",
    "async_sync_payment",
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
