"""paydesk's persistence: summary rows plus the append-only ledger.

Only ``paydesk.services`` writes these tables. A ``Payment`` row's status and amounts are a
cache of ``paydesk.states.fold`` over its ``TransactionLog`` rows, refreshed in the same
transaction that appends.
"""

from .ledger import LedgerQuerySet, TransactionLog
from .method import PaymentMethod, PaymentMethodType
from .payment import Payment
from .refund import Refund
from .sandbox import SandboxCharge

__all__ = [
    "LedgerQuerySet",
    "Payment",
    "PaymentMethod",
    "PaymentMethodType",
    "Refund",
    "SandboxCharge",
    "TransactionLog",
]
