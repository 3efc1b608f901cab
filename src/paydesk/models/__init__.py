"""paydesk's persistence: summary rows plus the append-only ledger.

Only ``paydesk.services`` writes these tables. A ``Payment`` row's status and amounts are a
cache of ``paydesk.states.fold`` over its ``TransactionLog`` rows, refreshed in the same
transaction that appends.
"""

from .apikey import APIIdempotencyKey, APIKey, APIKeyScope
from .audit import AuditLog
from .eft import BankTransfer, BankTransferStatus
from .fraud import (
    AutoRefund,
    AutoRefundStatus,
    BlocklistEntry,
    BlocklistKind,
    FraudAssessment,
    FraudCheck,
    FraudDecision,
    FraudLock,
    FraudRuleHit,
    ReviewStatus,
)
from .idempotency import IdempotencyRecord
from .ledger import AppendOnlyError, LedgerQuerySet, TransactionLog
from .method import PaymentMethod, PaymentMethodType
from .payment import Payment
from .rates import ExchangeRate
from .refund import Refund
from .sandbox import SandboxCharge
from .webhook import AbstractWebhookEvent, WebhookEvent, WebhookStatus

__all__ = [
    "APIIdempotencyKey",
    "APIKey",
    "APIKeyScope",
    "AbstractWebhookEvent",
    "AppendOnlyError",
    "AuditLog",
    "AutoRefund",
    "AutoRefundStatus",
    "BankTransfer",
    "BankTransferStatus",
    "BlocklistEntry",
    "BlocklistKind",
    "ExchangeRate",
    "FraudAssessment",
    "FraudCheck",
    "FraudDecision",
    "FraudLock",
    "FraudRuleHit",
    "IdempotencyRecord",
    "LedgerQuerySet",
    "Payment",
    "PaymentMethod",
    "PaymentMethodType",
    "Refund",
    "ReviewStatus",
    "SandboxCharge",
    "TransactionLog",
    "WebhookEvent",
    "WebhookStatus",
]
