"""Reconciliation: compare paydesk's books with what the providers say, and settle the gaps.

This module owns one decision: when paydesk stops waiting. A payment can stay ``pending``,
``processing`` or ``requires_action`` for ever if a webhook is lost, a worker dies between
the provider's answer and its recording, or the customer walks away from a redirect; a refund
can stay in flight the same way. ``reconcile`` finds them once they are older than a
threshold, asks each provider (a read-only status call), and:

* records what the provider knows and paydesk missed, through ``sync_payment`` and
  ``record_refund_result`` (the same ledger keys as the API answer and the webhook, so
  nothing is counted twice);
* reports *drift*: status differences, amount differences, refunds the provider has that
  paydesk does not and the reverse (where the provider can list refunds; otherwise the
  report says "not checked");
* gives up on a payment whose current attempt is older than the final timeout, through
  ``expire_payment``: it appends a ``payment_failed`` (or ``cancellation``) fact saying why,
  under the payment's lock. A late capture still wins: the ledger fold ranks captured
  money above a failure, so an expired payment the provider did charge becomes
  ``completed`` when that news arrives.

A payment whose provider could not be asked (an error, a timeout) is reported and left as
it is: paydesk never gives up on a payment because the provider was unreachable.

With ``dry_run=True`` the provider is still asked, but nothing is written.

Providers may implement two optional read-only methods that reconciliation uses when present
(``RefundStatusReader`` and ``RefundLister`` below; the sandbox, Stripe and PayPal do). Refunds
in flight at a provider without them are reported for a person to check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from ..conf import paydesk_settings
from ..exceptions import ConfigurationError, InvalidTransition, PaydeskError, PaymentInProgress
from ..metrics import observe_provider_call
from ..models import Payment, Refund, TransactionLog
from ..money import Money
from ..providers.base import PaymentProvider
from ..providers.registry import get_payment_provider
from ..states import (
    ACTIVE_REFUND_STATUSES,
    REFUNDABLE,
    LedgerKind,
    PaymentStatus,
    RefundStatus,
)
from ..types import (
    Capability,
    PaymentResult,
    ProviderFailure,
    ProviderRefund,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
)
from . import ledger
from .payments import _provider_key, sync_payment
from .refunds import record_refund_result

__all__ = [
    "STUCK_STATUSES",
    "Drift",
    "ProviderRefund",
    "ReconcileReport",
    "RefundLister",
    "RefundStatusReader",
    "expire_payment",
    "reconcile",
]

#: Statuses a payment should not stay in for long.
STUCK_STATUSES = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION}
)
#: What paydesk's status is once a provider status is recorded (captured: money moved).
_EXPECTED = {
    ProviderStatus.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    ProviderStatus.PROCESSING: PaymentStatus.PROCESSING,
    ProviderStatus.AUTHORIZED: PaymentStatus.AUTHORIZED,
    ProviderStatus.CAPTURED: PaymentStatus.COMPLETED,
    ProviderStatus.FAILED: PaymentStatus.FAILED,
    ProviderStatus.CANCELLED: PaymentStatus.CANCELLED,
}
_CAPTURED = frozenset(
    {PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)
FINAL_STATUSES = ("failed", "cancelled")


# -- optional provider methods ------------------------------------------------------------


@runtime_checkable
class RefundStatusReader(Protocol):
    """A provider that can say what became of one refund (read-only).

    ``request`` is the one ``process_refund`` sent (same idempotency key), with
    ``provider_refund_id`` set when paydesk already has the provider's id. Answer a
    ``RefundResult`` with status ``completed``, ``failed``, ``pending``, or ``not_found``
    when the provider never received it. A call that fails raises a ``ProviderError``.
    """

    def get_refund_status(self, request: RefundRequest) -> RefundResult: ...


@runtime_checkable
class RefundLister(Protocol):
    """A provider that can list every refund of one payment (read-only), each a
    ``paydesk.types.ProviderRefund``, including refunds made outside paydesk (its dashboard).
    """

    def list_payment_refunds(self, request: StatusRequest) -> Sequence[ProviderRefund]: ...


# -- the report ---------------------------------------------------------------------------


@dataclass(slots=True)
class Drift:
    """One difference between paydesk's books and the provider's answer.

    ``kind``: ``status``, ``amount``, ``refund_status``, ``refund_amount``,
    ``refund_missing_here`` (the provider has it, paydesk does not),
    ``refund_missing_at_provider`` (the reverse), ``not_checked`` (the provider cannot be
    asked), ``error`` (asking failed) or ``expired`` (given up after the final timeout).
    ``fixed`` says whether this run recorded the provider's truth (never in a dry run).
    """

    kind: str
    payment_id: str
    provider: str
    ours: str = ""
    theirs: str = ""
    detail: str = ""
    fixed: bool = False
    refund_id: str = ""

    def describe(self) -> str:
        what = (
            f"refund {self.refund_id} of payment {self.payment_id}"
            if self.refund_id
            else f"payment {self.payment_id}"
        )
        line = f"[{self.kind}] {what} ({self.provider})"
        if self.ours or self.theirs:
            line += f": paydesk {self.ours or '-'} / provider {self.theirs or '-'}"
        if self.detail:
            line += f" - {self.detail}"
        return line + (" [fixed]" if self.fixed else "")


@dataclass(slots=True)
class ReconcileReport:
    dry_run: bool
    started_at: dt.datetime
    older_than: dt.timedelta
    final_timeout: dt.timedelta
    payments_checked: int = 0
    refunds_checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    #: What could not be compared at all (e.g. providers that cannot list refunds).
    notes: list[str] = field(default_factory=list)

    @property
    def expired(self) -> list[str]:
        return [d.payment_id for d in self.drift if d.kind == "expired"]

    @property
    def errors(self) -> list[Drift]:
        return [d for d in self.drift if d.kind == "error"]

    @property
    def clean(self) -> bool:
        """No finding at all (an unsettled payment or refund that could not be checked
        counts: someone should look at it)."""
        return not self.drift

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (a task's return value)."""
        return {
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "older_than_seconds": self.older_than.total_seconds(),
            "final_timeout_seconds": self.final_timeout.total_seconds(),
            "payments_checked": self.payments_checked,
            "refunds_checked": self.refunds_checked,
            "drift": [asdict(d) for d in self.drift],
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        head = "DRY RUN: nothing was changed. " if self.dry_run else ""
        out = [
            f"{head}Checked {self.payments_checked} payments and {self.refunds_checked} "
            f"refunds unsettled for more than {self.older_than}; "
            f"{len(self.drift)} findings."
        ]
        out.extend(d.describe() for d in self.drift)
        out.extend(f"note: {note}" for note in self.notes)
        return out


# -- giving up ----------------------------------------------------------------------------


def final_status_for(provider: PaymentProvider | None, alias: str) -> str | None:
    """What a payment of ``alias`` becomes after the final timeout: failed, cancelled, or
    ``None`` (never given up on)."""
    rules = paydesk_settings.RECONCILE.get("FINAL_STATUS") or {}
    if alias in rules:
        rule = rules[alias]
    else:
        from ..providers.bank_transfer import BankTransferProvider

        # A transfer may sit with a receipt awaiting staff review for days: only
        # expire_bank_transfers (which knows the transfer's own deadline) decides those.
        rule = None if isinstance(provider, BankTransferProvider) else "failed"
    if rule is not None and rule not in FINAL_STATUSES:
        raise ConfigurationError(
            f'PAYDESK["RECONCILE"]["FINAL_STATUS"][{alias!r}] = {rule!r}; use "failed", '
            '"cancelled" or None.'
        )
    return rule


def expire_payment(*, payment: Payment | str, reason: str, status: str = "failed") -> Payment:
    """Give up on a payment that is still ``pending``/``processing``/``requires_action``.

    Appends, under the payment's lock, a ``payment_failed`` fact with failure code
    ``payment_expired`` (``status="failed"``: the customer may retry) or a ``cancellation``
    (``status="cancelled"``: final), each with ``reason`` in the ledger, and sends
    ``payment_failed`` / ``payment_cancelled`` on commit. A payment that settled meanwhile is
    returned unchanged; one with a provider call under way raises ``PaymentInProgress``.
    """
    if status not in FINAL_STATUSES:
        raise InvalidTransition(
            f"expire_payment can mark a payment failed or cancelled, not {status!r}."
        )
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        if locked.status not in STUCK_STATUSES:
            return locked
        if not ledger.lease_expired(locked):
            raise PaymentInProgress(
                f"Payment {locked.pk} is being sent to its provider right now; it is not stuck."
            )
        old = locked.status
        raw = {"reconcile": True, "reason": reason, "previous_status": str(old)}
        if status == "cancelled":
            ledger.append(
                locked,
                kind=LedgerKind.NOTE,
                key=f"attempt-{locked.attempt}:reconcile:expired",
                attempt=locked.attempt,
                provider_data=raw,
                message=reason,
            )
            result = PaymentResult(status=ProviderStatus.CANCELLED, raw=raw)
        else:
            result = PaymentResult(
                status=ProviderStatus.FAILED,
                failure=ProviderFailure(code="payment_expired", message=reason),
                raw=raw,
            )
        ledger.record_result(locked, result, attempt=locked.attempt, source="reconcile")
        ledger.announce(locked, old, result=None)
    return locked


# -- reconciling ----------------------------------------------------------------------------


def _attempt_started(payment: Payment) -> dt.datetime:
    """When the payment's current attempt began (its first ledger row), not ``updated_at``:
    every sync saves the row, so ``updated_at`` would never grow old."""
    started = TransactionLog.objects.filter(payment=payment, attempt=payment.attempt).aggregate(
        at=Min("created_at")
    )["at"]
    return started or payment.created_at


def _status_request(payment: Payment) -> StatusRequest:
    return StatusRequest(
        payment_id=payment.pk,
        provider_payment_id=payment.provider_payment_id,
        idempotency_key=_provider_key(payment, "create", payment.attempt),
        amount=payment.money,
    )


def _provider(alias: str, report: ReconcileReport, payment_id: str) -> PaymentProvider | None:
    try:
        return get_payment_provider(alias)
    except ConfigurationError as exc:
        report.drift.append(Drift("error", payment_id, alias, detail=exc.message))
        return None


def _amount_drift(payment: Payment, result: PaymentResult, *, recorded: bool) -> list[Drift]:
    """Amounts the provider reports that differ from the ledger's (once ``result`` is
    ``recorded``: before, in a dry run, the ledger has not seen them) or from the payment's."""
    out = []
    checks = []
    if result.status == ProviderStatus.CAPTURED and result.amount_captured is not None:
        checks.append(("captured", result.amount_captured, payment.captured_amount))
    if (
        result.status in (ProviderStatus.AUTHORIZED, ProviderStatus.CAPTURED)
        and result.amount_authorized is not None
    ):
        checks.append(("authorized", result.amount_authorized, payment.authorized_amount))
    for what, theirs, ours in checks:
        mine = Money(ours, payment.currency)
        if recorded and (theirs.currency != payment.currency or theirs.amount != ours):
            out.append(
                Drift(
                    "amount",
                    payment.pk,
                    payment.provider,
                    ours=f"{what} {mine}",
                    theirs=f"{what} {theirs}",
                )
            )
        elif theirs != payment.money:
            out.append(
                Drift(
                    "amount",
                    payment.pk,
                    payment.provider,
                    ours=f"asked {payment.money}",
                    theirs=f"{what} {theirs}",
                    detail="the provider moved a different amount than the payment is for",
                )
            )
    return out


def _reconcile_payment(
    payment: Payment, report: ReconcileReport, *, now: dt.datetime, dry_run: bool
) -> None:
    alias = payment.provider
    provider = _provider(alias, report, payment.pk)
    if provider is None:
        return
    ours = str(payment.status)
    settled = False
    if payment.status != PaymentStatus.PENDING:  # pending: never sent, nothing to ask
        if not provider.supports(Capability.SYNC):
            report.drift.append(
                Drift(
                    "not_checked",
                    payment.pk,
                    alias,
                    ours=ours,
                    detail="the provider cannot report a payment's status; its webhooks or "
                    "staff must settle it",
                )
            )
        else:
            try:
                with observe_provider_call(alias, "reconcile_status"):
                    result = provider.get_payment_status(_status_request(payment))
            except PaydeskError as exc:
                report.drift.append(
                    Drift("error", payment.pk, alias, ours=ours, detail=exc.message)
                )
                return  # never give up on a payment because its provider did not answer
            settled = _compare_and_sync(payment, result, report, dry_run=dry_run)
    if settled:
        return
    current = payment if dry_run else Payment.objects.get(pk=payment.pk)
    if current.status not in STUCK_STATUSES:
        return
    started = _attempt_started(current)
    if now - started < report.final_timeout:
        return
    rule = final_status_for(provider, alias)
    if rule is None:
        return
    reason = (
        f"No final answer from {alias} since {started:%Y-%m-%d %H:%M} UTC "
        f"(final timeout {report.final_timeout}); marked {rule} by reconciliation."
    )
    drift = Drift(
        "expired", current.pk, alias, ours=str(current.status), theirs=rule, detail=reason
    )
    if not dry_run:
        try:
            expired = expire_payment(payment=current, reason=reason, status=rule)
        except PaymentInProgress as exc:
            drift = Drift("error", current.pk, alias, ours=str(current.status), detail=exc.message)
        else:
            drift.fixed = expired.status == rule
    report.drift.append(drift)


def _compare_and_sync(
    payment: Payment, result: PaymentResult, report: ReconcileReport, *, dry_run: bool
) -> bool:
    """Record ``result`` if it says something new; report the difference. Returns whether the
    payment is settled (no longer stuck) afterwards."""
    alias = payment.provider
    ours = str(payment.status)
    if result.status == ProviderStatus.NOT_FOUND:
        if payment.status == PaymentStatus.PROCESSING and ledger.lease_expired(payment):
            # sync_payment records this as a failure: the submission never arrived.
            drift = Drift(
                "status",
                payment.pk,
                alias,
                ours=ours,
                theirs="not_found",
                detail="the provider never received this payment",
            )
            if not dry_run:
                after = sync_payment(payment=payment)
                drift.fixed = after.status not in STUCK_STATUSES
            report.drift.append(drift)
            return drift.fixed
        report.drift.append(
            Drift(
                "status",
                payment.pk,
                alias,
                ours=ours,
                theirs="not_found",
                detail="the provider does not know this payment",
            )
        )
        return False
    expected = _EXPECTED.get(result.status)
    after = payment
    if expected is not None and expected != payment.status:
        drift = Drift("status", payment.pk, alias, ours=ours, theirs=str(result.status))
        if not dry_run:
            after = sync_payment(payment=payment)
            drift.fixed = after.status == expected or (
                expected == PaymentStatus.COMPLETED and after.status in _CAPTURED
            )
            if not drift.fixed:
                drift.detail = f"recorded; the ledger still makes it {after.status}"
        report.drift.append(drift)
    pending = dry_run and expected is not None and expected != payment.status
    report.drift.extend(_amount_drift(after, result, recorded=not pending))
    if dry_run and expected is not None:
        return expected not in STUCK_STATUSES  # what recording it would have made of it
    return after.status not in STUCK_STATUSES


def _refund_request(refund: Refund, payment: Payment) -> RefundRequest:
    return RefundRequest(
        refund_id=refund.pk,
        payment_id=payment.pk,
        provider_payment_id=payment.provider_payment_id,
        amount=Money(refund.amount, refund.currency),
        idempotency_key=f"paydesk:{refund.pk}:refund",  # what process_refund sent
        reason=refund.reason,
        captured=Money(payment.captured_amount, payment.currency),
        provider_refund_id=refund.provider_refund_id,
    )


def _reconcile_refund(refund: Refund, report: ReconcileReport, *, dry_run: bool) -> None:
    payment = refund.payment
    alias = payment.provider
    provider = _provider(alias, report, payment.pk)
    if provider is None:
        return
    ours = str(refund.status)
    if not isinstance(provider, RefundStatusReader):
        detail = "the provider cannot report a refund's status; check it in the provider's "
        detail += "dashboard, then process_refund (same idempotency key) or wait for its webhook"
        if refund.failure_code:
            detail = f"last attempt: {refund.failure_code}; " + detail
        report.drift.append(
            Drift("not_checked", payment.pk, alias, ours=ours, detail=detail, refund_id=refund.pk)
        )
        return
    try:
        with observe_provider_call(alias, "reconcile_refund"):
            result = provider.get_refund_status(_refund_request(refund, payment))
    except PaydeskError as exc:
        report.drift.append(
            Drift("error", payment.pk, alias, ours=ours, detail=exc.message, refund_id=refund.pk)
        )
        return
    if result.status == "not_found":
        report.drift.append(
            Drift(
                "refund_status",
                payment.pk,
                alias,
                ours=ours,
                theirs="not_found",
                detail="the provider never received it; process_refund sends it again with "
                "the same idempotency key",
                refund_id=refund.pk,
            )
        )
        return
    if result.status not in ("completed", "failed"):
        return  # still pending at the provider too: nothing to record yet
    drift = Drift(
        "refund_status", payment.pk, alias, ours=ours, theirs=result.status, refund_id=refund.pk
    )
    if not dry_run:
        drift.fixed = record_refund_result(refund=refund, result=result).status == result.status
    report.drift.append(drift)


def _compare_refund_lists(
    payment: Payment,
    provider: RefundLister,
    report: ReconcileReport,
    *,
    dry_run: bool,
    handled: set[str],
) -> None:
    alias = payment.provider
    try:
        with observe_provider_call(alias, "reconcile_refund_list"):
            theirs = list(provider.list_payment_refunds(_status_request(payment)))
    except PaydeskError as exc:
        report.drift.append(Drift("error", payment.pk, alias, detail=exc.message))
        return
    ours = list(Refund.objects.filter(payment=payment))
    matched: set[str] = set()
    for listed in theirs:
        mine = next(
            (
                r
                for r in ours
                if (listed.provider_refund_id and r.provider_refund_id == listed.provider_refund_id)
                or (listed.refund_id and r.pk == listed.refund_id)
            ),
            None,
        )
        if mine is None:
            if listed.status == "completed":
                report.drift.append(
                    Drift(
                        "refund_missing_here",
                        payment.pk,
                        alias,
                        theirs=f"{listed.provider_refund_id} {listed.amount}",
                        detail="refunded at the provider (its dashboard?) but not in paydesk; "
                        "replay its webhook to record it",
                    )
                )
            continue
        matched.add(mine.pk)
        if listed.amount != Money(mine.amount, mine.currency):
            report.drift.append(
                Drift(
                    "refund_amount",
                    payment.pk,
                    alias,
                    ours=str(Money(mine.amount, mine.currency)),
                    theirs=str(listed.amount),
                    refund_id=mine.pk,
                )
            )
        if mine.pk in handled:
            continue  # in flight: its status was asked for (and reported) on its own
        if listed.status != mine.status and listed.status in ("completed", "failed"):
            drift = Drift(
                "refund_status",
                payment.pk,
                alias,
                ours=str(mine.status),
                theirs=listed.status,
                refund_id=mine.pk,
            )
            if not dry_run and mine.status in ACTIVE_REFUND_STATUSES:
                result = RefundResult(
                    status=listed.status,
                    provider_refund_id=listed.provider_refund_id,
                    raw={"reconcile": True},
                )
                drift.fixed = (
                    record_refund_result(refund=mine, result=result).status == listed.status
                )
            report.drift.append(drift)
    for mine in ours:
        if mine.pk not in matched and mine.status == RefundStatus.COMPLETED:
            report.drift.append(
                Drift(
                    "refund_missing_at_provider",
                    payment.pk,
                    alias,
                    ours=f"{mine.status} {Money(mine.amount, mine.currency)}",
                    detail="paydesk counts this refund as done; the provider does not list it",
                    refund_id=mine.pk,
                )
            )


def reconcile(
    *,
    older_than: dt.timedelta | None = None,
    final_timeout: dt.timedelta | None = None,
    dry_run: bool = False,
    provider: str | None = None,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> ReconcileReport:
    """Check unsettled payments and refunds against their providers; see the module doc.

    ``older_than`` (default ``RECONCILE["OLDER_THAN_MINUTES"]``) picks what is checked,
    ``final_timeout`` (default ``RECONCILE["FINAL_TIMEOUT_HOURS"]``) when a payment still
    unsettled is given up on; ``provider`` limits the run to one alias.
    """
    config = paydesk_settings.RECONCILE
    now = now or timezone.now()
    if older_than is None:
        older_than = dt.timedelta(minutes=float(config["OLDER_THAN_MINUTES"]))
    if final_timeout is None:
        final_timeout = dt.timedelta(hours=float(config["FINAL_TIMEOUT_HOURS"]))
    if final_timeout < older_than:
        raise ConfigurationError(
            f"The final timeout ({final_timeout}) is shorter than the threshold ({older_than}); "
            "payments would be given up on before they are ever checked."
        )
    limit = int(limit if limit is not None else config["LIMIT"])
    report = ReconcileReport(
        dry_run=dry_run, started_at=now, older_than=older_than, final_timeout=final_timeout
    )
    cutoff = now - older_than

    payments = Payment.objects.filter(status__in=STUCK_STATUSES, created_at__lte=cutoff)
    refunds = Refund.objects.filter(
        status__in=ACTIVE_REFUND_STATUSES, created_at__lte=cutoff
    ).select_related("payment")
    if provider:
        payments = payments.filter(provider=provider)
        refunds = refunds.filter(payment__provider=provider)
    for payment in payments.order_by("created_at")[:limit]:
        report.payments_checked += 1
        _reconcile_payment(payment, report, now=now, dry_run=dry_run)
    refund_payments: dict[str, Payment] = {}
    handled_refunds: set[str] = set()
    for refund in refunds.order_by("created_at")[:limit]:
        report.refunds_checked += 1
        handled_refunds.add(refund.pk)
        refund_payments[refund.payment_id] = refund.payment
        _reconcile_refund(refund, report, dry_run=dry_run)

    # Refund lists: payments with refunds in flight, and those settled recently.
    days = config.get("REFUND_LIST_DAYS") or 0
    recent = Payment.objects.filter(
        status__in=REFUNDABLE | {PaymentStatus.REFUNDED},
        processed_at__gte=now - dt.timedelta(days=float(days)),
    )
    if provider:
        recent = recent.filter(provider=provider)
    listed: dict[str, Payment] = dict(refund_payments)
    if days:
        listed.update({p.pk: p for p in recent.order_by("-processed_at")[:limit]})
    unlisted: set[str] = set()
    for payment in listed.values():
        try:
            backend = get_payment_provider(payment.provider)
        except ConfigurationError:
            continue  # reported above where it matters
        if isinstance(backend, RefundLister):
            _compare_refund_lists(
                payment, backend, report, dry_run=dry_run, handled=handled_refunds
            )
        else:
            unlisted.add(payment.provider)
    report.notes.extend(
        f"{alias}: refund lists not checked (the provider cannot list a payment's refunds)"
        for alias in sorted(unlisted)
    )
    return report
