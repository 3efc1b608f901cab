"""The payment lifecycle as a pure fold of the ledger.

This module owns one decision: what state a payment is in, given the facts its ledger holds.
It never looks at the order the facts arrived in. Providers deliver events late, twice and out
of order (a ``processing`` webhook after the ``succeeded`` one is ordinary); a fold over *sets*
of facts makes that harmless, so nothing here can raise on a late event.

Rules of the fold:

* Money facts (authorization, capture, refund completion) count across every attempt, each
  once per ``(kind, ref)``: the same capture reported by the API call, a webhook and a sync
  counts once.
* Progress facts (requires_action, processing, payment_failed) count only for the latest
  attempt, so a payment retried after a failure is not stuck ``failed``.
* Precedence, strongest first: captured money (then refunds decide between ``completed``,
  ``partially_refunded`` and ``refunded``) > cancellation > authorization > failure >
  processing > requires_action > submitted (shown as ``processing``: paydesk's own record
  that the attempt is in flight, outranked by whatever the provider answers) > pending.

::

    pending ──► requires_action ──► processing ──► authorized ──► completed ──► partially_refunded
       │              │                 │              │              │                 │
       │              └──────┬──────────┘              ▼              └──────┬──────────┘
       └──────────────► failed ◄─────────────────  cancelled                 ▼
                           │ (retry_payment: new attempt)                 refunded
                           └──► pending / requires_action / processing ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "ACTIVE_REFUND_STATUSES",
    "CANCELLABLE",
    "CAPTURABLE",
    "PROCESSABLE",
    "REFUNDABLE",
    "TERMINAL",
    "LedgerFact",
    "LedgerKind",
    "PaymentState",
    "PaymentStatus",
    "RefundStatus",
    "fold",
    "fold_refund",
]


class PaymentStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class LedgerKind(StrEnum):
    PAYMENT_CREATED = "payment_created"
    ATTEMPT_STARTED = "attempt_started"
    SUBMITTED = "submitted"  # paydesk sent the attempt to the provider; answer not yet recorded
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    PAYMENT_FAILED = "payment_failed"
    CANCELLATION = "cancellation"
    REFUND_REQUESTED = "refund_requested"
    REFUND_COMPLETED = "refund_completed"
    REFUND_FAILED = "refund_failed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_CLOSED = "dispute_closed"
    WEBHOOK_RECEIVED = "webhook_received"
    NOTE = "note"
    # Fraud screening (paydesk.services.fraud): the rules' decision on an attempt, and a
    # staff member's decision on an attempt held for review. Neither changes the status:
    # a held attempt stays pending, a block or rejection also appends payment_failed.
    FRAUD_CHECK = "fraud_check"
    FRAUD_REVIEW = "fraud_review"


# Which operations each status allows; services check these under the row lock.
PROCESSABLE = frozenset({PaymentStatus.PENDING})
CAPTURABLE = frozenset({PaymentStatus.AUTHORIZED})
CANCELLABLE = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.AUTHORIZED}
)
REFUNDABLE = frozenset({PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED})
RETRYABLE = frozenset({PaymentStatus.FAILED})
TERMINAL = frozenset({PaymentStatus.CANCELLED, PaymentStatus.REFUNDED})
ACTIVE_REFUND_STATUSES = frozenset({RefundStatus.PENDING, RefundStatus.PROCESSING})

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LedgerFact:
    """What the fold needs of one ledger row.

    ``ref`` names the thing a money fact is about (a refund id, a provider capture id, a
    dispute id) so the same fact reported twice under different idempotency keys still
    counts once.
    """

    kind: LedgerKind
    key: str
    attempt: int = 1
    amount: Decimal | None = None
    ref: str = ""


@dataclass(frozen=True, slots=True)
class PaymentState:
    status: PaymentStatus
    attempt: int
    authorized: Decimal
    captured: Decimal
    refunded: Decimal
    refund_reserved: Decimal
    open_disputes: int

    @property
    def refundable(self) -> Decimal:
        """What may still be refunded: captured less completed and in-flight refunds."""
        return self.captured - self.refunded - self.refund_reserved

    @property
    def capturable(self) -> Decimal:
        if self.status != PaymentStatus.AUTHORIZED:
            return _ZERO
        return self.authorized - self.captured


def _distinct(facts: Iterable[LedgerFact]) -> list[LedgerFact]:
    seen: set[str] = set()
    out = []
    for fact in facts:
        if fact.key not in seen:
            seen.add(fact.key)
            out.append(fact)
    return out


def _per_ref(facts: list[LedgerFact], kind: LedgerKind) -> dict[str, Decimal]:
    # max(), not a running sum: two reports of the same capture or refund are one movement.
    amounts: dict[str, Decimal] = {}
    for fact in facts:
        if fact.kind == kind and fact.amount is not None:
            ref = fact.ref or fact.key
            amounts[ref] = max(amounts.get(ref, _ZERO), fact.amount)
    return amounts


def fold(facts: Iterable[LedgerFact]) -> PaymentState:
    """Compute a payment's state from its ledger facts, in any order, duplicates included."""
    distinct = _distinct(facts)
    attempt = max((f.attempt for f in distinct), default=1)

    captured = sum(_per_ref(distinct, LedgerKind.CAPTURE).values(), _ZERO)
    authorized = max(sum(_per_ref(distinct, LedgerKind.AUTHORIZATION).values(), _ZERO), captured)
    completed_refunds = _per_ref(distinct, LedgerKind.REFUND_COMPLETED)
    failed_refunds = {f.ref for f in distinct if f.kind == LedgerKind.REFUND_FAILED}
    requested = _per_ref(distinct, LedgerKind.REFUND_REQUESTED)
    refunded = sum(completed_refunds.values(), _ZERO)
    reserved = sum(
        (
            amount
            for ref, amount in requested.items()
            if ref not in completed_refunds and ref not in failed_refunds
        ),
        _ZERO,
    )
    opened = {f.ref for f in distinct if f.kind == LedgerKind.DISPUTE_OPENED}
    closed = {f.ref for f in distinct if f.kind == LedgerKind.DISPUTE_CLOSED}

    kinds = {f.kind for f in distinct}
    current = {f.kind for f in distinct if f.attempt == attempt}

    if captured > _ZERO:
        if refunded >= captured:
            status = PaymentStatus.REFUNDED
        elif refunded > _ZERO:
            status = PaymentStatus.PARTIALLY_REFUNDED
        else:
            status = PaymentStatus.COMPLETED
    elif LedgerKind.CANCELLATION in kinds:
        status = PaymentStatus.CANCELLED
    elif authorized > _ZERO:
        status = PaymentStatus.AUTHORIZED
    elif LedgerKind.PAYMENT_FAILED in current:
        status = PaymentStatus.FAILED
    elif LedgerKind.PROCESSING in current:
        status = PaymentStatus.PROCESSING
    elif LedgerKind.REQUIRES_ACTION in current:
        status = PaymentStatus.REQUIRES_ACTION
    elif LedgerKind.SUBMITTED in current:
        # In flight: the provider's answer, whatever it is, outranks this.
        status = PaymentStatus.PROCESSING
    else:
        status = PaymentStatus.PENDING

    return PaymentState(
        status=status,
        attempt=attempt,
        authorized=authorized,
        captured=captured,
        refunded=refunded,
        refund_reserved=reserved,
        open_disputes=len(opened - closed),
    )


def fold_refund(facts: Iterable[LedgerFact], refund_ref: str) -> RefundStatus:
    """A refund's status from the payment's ledger: completion beats failure beats request."""
    kinds = {f.kind for f in facts if f.ref == refund_ref}
    if LedgerKind.REFUND_COMPLETED in kinds:
        return RefundStatus.COMPLETED
    if LedgerKind.REFUND_FAILED in kinds:
        return RefundStatus.FAILED
    return RefundStatus.PENDING
