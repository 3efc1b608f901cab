"""Automatic refunds: rules pick payments to refund, the refund service refunds them, once.

This module owns one decision: how a rule's choice becomes a refund exactly once. A rule
(``PAYDESK["AUTO_REFUNDS"]["RULES"]``) finds candidate payments with one query; for each,
``run_auto_refunds`` claims the pair *(payment, rule)* with an ``AutoRefund`` row (unique),
reserves the refund through ``create_refund`` in the same transaction, commits, and only then
sends it with ``process_refund``. Running the rules twice, or on two workers at once, refunds
a payment once per rule: the second run finds the claim. A refund left pending (the provider
timed out) is sent again by the next run with the same idempotency key. Every claim's
outcome is written to the audit log.

Run them with ``paydesk.tasks.enqueue_auto_refunds()`` (a Django Task) from a scheduler, or
right after the event that makes payments refundable (an event cancelled), or call
``run_auto_refunds()`` directly.

Built-in rules:

``duplicate_reference``
    Several successful payments with the same non-empty ``reference`` and currency: every
    one but the first is refunded in full. Options: ``within_days`` (30), ``reason``.
``content_objects``
    Successful payments for objects matching a queryset, e.g. bookings of cancelled events:
    ``{"model": "bookings.Booking", "filter": {"event__cancelled": True}}``; the payment is
    found through its generic relation (``content_object``) or, with ``payment_field``,
    through a foreign key on the model. Options: ``model``, ``filter``, ``exclude``,
    ``payment_field``, ``reason``.

A project rule is a dotted path to an ``AutoRefundRule`` subclass or to a function
``fn(*, limit) -> iterable of Candidate or Payment``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.module_loading import import_string

from ..conf import paydesk_settings
from ..exceptions import (
    ConfigurationError,
    InvalidTransition,
    PaydeskError,
    PaymentInProgress,
    ProviderError,
)
from ..models import AutoRefund, AutoRefundStatus, Payment, Refund
from ..money import Money
from ..security.audit import AuditLogger
from ..states import PaymentStatus, RefundStatus
from .refunds import create_refund, process_refund

__all__ = [
    "AutoRefundReport",
    "AutoRefundRule",
    "Candidate",
    "ContentObjectRule",
    "DuplicateReferenceRule",
    "load_rules",
    "run_auto_refunds",
]

ACTOR = "system:auto-refund"
REFUNDABLE_STATUSES = (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED)


@dataclass(frozen=True)
class Candidate:
    """A payment a rule wants refunded: ``amount`` (default: all that is left) and why."""

    payment: Payment
    reason: str = ""
    amount: Money | None = None


@dataclass
class AutoRefundReport:
    refunded: int = 0  # refunds completed in this run
    pending: int = 0  # reserved or sent, not completed yet (a later run checks again)
    skipped: int = 0  # nothing left to refund, or not refundable any more
    failed: int = 0  # the refund service or the provider refused
    already: int = 0  # claimed by an earlier run: nothing done
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, rule: str, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        per_rule = self.by_rule.setdefault(rule, {})
        per_rule[outcome] = per_rule.get(outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "refunded": self.refunded,
            "pending": self.pending,
            "skipped": self.skipped,
            "failed": self.failed,
            "already": self.already,
            "by_rule": self.by_rule,
        }


# -- rules --------------------------------------------------------------------------------


def refundable_payments() -> QuerySet[Payment]:
    """Successful payments with something left to refund."""
    return Payment.objects.filter(status__in=REFUNDABLE_STATUSES).filter(
        captured_amount__gt=F("refunded_amount") + F("refund_reserved_amount")
    )


class AutoRefundRule:
    """Base class: ``candidates(limit=...)`` returns the payments to refund (one query).

    ``self.unclaimed(queryset)`` leaves out payments this rule already claimed, so a rule
    does not return the same payments run after run.
    """

    name: ClassVar[str] = ""
    default_reason: ClassVar[str] = "automatic refund"

    def __init__(self, *, name: str | None = None, reason: str | None = None) -> None:
        self.rule_name: str = name or self.name or type(self).__name__
        self.reason: str = reason or self.default_reason

    def candidates(self, *, limit: int) -> Iterable[Candidate | Payment]:
        raise NotImplementedError

    def unclaimed(self, payments: QuerySet[Payment]) -> QuerySet[Payment]:
        return payments.exclude(
            Exists(AutoRefund.objects.filter(payment=OuterRef("pk"), rule=self.rule_name))
        )


class DuplicateReferenceRule(AutoRefundRule):
    """Refund every successful payment but the first for the same reference and currency."""

    name = "duplicate_reference"
    default_reason = "duplicate payment"

    def __init__(self, *, within_days: int = 30, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.within_days = int(within_days)

    def candidates(self, *, limit: int) -> Iterable[Candidate | Payment]:
        since = timezone.now() - dt.timedelta(days=self.within_days)
        # The payment that stands: the earliest one still holding its money (one a person
        # refunded in full no longer counts, so its duplicate is kept instead).
        earlier = Payment.objects.filter(
            reference=OuterRef("reference"),
            currency=OuterRef("currency"),
            status__in=REFUNDABLE_STATUSES,
        ).filter(
            Q(created_at__lt=OuterRef("created_at"))
            | Q(created_at=OuterRef("created_at"), pk__lt=OuterRef("pk"))
        )
        duplicates = (
            self.unclaimed(refundable_payments())
            .exclude(reference="")
            .filter(created_at__gte=since)
            .filter(Exists(earlier))
            .order_by("created_at", "pk")
        )
        return [
            Candidate(payment, reason=f"{self.reason} (reference {payment.reference})")
            for payment in duplicates[:limit]
        ]


class ContentObjectRule(AutoRefundRule):
    """Refund payments for the objects a queryset selects (bookings of a cancelled event)."""

    name = "content_objects"
    default_reason = "automatic refund"

    def __init__(
        self,
        *,
        model: str,
        filter: Mapping[str, Any] | None = None,
        exclude: Mapping[str, Any] | None = None,
        payment_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.model = apps.get_model(model)
        except (LookupError, ValueError) as exc:
            raise ConfigurationError(
                f"Auto-refund rule {self.rule_name!r}: model {model!r} is not an installed "
                "model (use 'app_label.ModelName')."
            ) from exc
        self.filter = dict(filter or {})
        self.exclude = dict(exclude or {})
        self.payment_field = payment_field

    def objects(self) -> QuerySet[Any]:
        queryset = self.model._default_manager.filter(**self.filter)
        return queryset.exclude(**self.exclude) if self.exclude else queryset

    def candidates(self, *, limit: int) -> Iterable[Candidate | Payment]:
        if self.payment_field:
            linked = refundable_payments().filter(pk__in=self.objects().values(self.payment_field))
        else:
            content_type = ContentType.objects.get_for_model(self.model)
            keys = self.objects().annotate(_key=Cast("pk", CharField())).values("_key")
            linked = refundable_payments().filter(content_type=content_type, object_id__in=keys)
        payments = self.unclaimed(linked).order_by("created_at", "pk")[:limit]
        return [Candidate(payment, reason=self.reason) for payment in payments]


class _FunctionRule(AutoRefundRule):
    def __init__(self, function: Any, **kwargs: Any) -> None:
        kwargs.setdefault("name", getattr(function, "__name__", "custom"))
        super().__init__(**kwargs)
        self.function = function

    def candidates(self, *, limit: int) -> Iterable[Candidate | Payment]:
        return list(self.function(limit=limit))


BUILTIN_RULES: dict[str, type[AutoRefundRule]] = {
    "duplicate_reference": DuplicateReferenceRule,
    "content_objects": ContentObjectRule,
}


def load_rules(entries: Iterable[Any] | None = None) -> list[AutoRefundRule]:
    """The configured rules (``PAYDESK["AUTO_REFUNDS"]["RULES"]`` unless ``entries``)."""
    if entries is None:
        entries = paydesk_settings.AUTO_REFUNDS.get("RULES") or []
    rules: list[AutoRefundRule] = []
    for index, entry in enumerate(entries):
        where = f'PAYDESK["AUTO_REFUNDS"]["RULES"][{index}]'
        if isinstance(entry, AutoRefundRule):
            rules.append(entry)
            continue
        if isinstance(entry, str):
            entry = {"RULE": entry}
        if not isinstance(entry, Mapping) or not entry.get("RULE"):
            raise ConfigurationError(
                f'{where} must be {{"RULE": "<alias or dotted path>", "OPTIONS": {{...}}}}; '
                f"built-in aliases: {', '.join(BUILTIN_RULES)}."
            )
        path = str(entry["RULE"])
        options = dict(entry.get("OPTIONS") or {})
        target: Any = BUILTIN_RULES.get(path)
        if target is None:
            try:
                target = import_string(path)
            except ImportError as exc:
                raise ConfigurationError(f"{where}: {path!r} cannot be imported ({exc}).") from exc
        try:
            if isinstance(target, type) and issubclass(target, AutoRefundRule):
                rules.append(target(**options))
            elif callable(target) and not isinstance(target, type):
                rules.append(_FunctionRule(target, **options))
            else:
                raise ConfigurationError(
                    f"{where}: {path!r} is not an AutoRefundRule subclass or a function."
                )
        except TypeError as exc:
            raise ConfigurationError(f"{where} ({path}): bad OPTIONS: {exc}") from exc
    names = [rule.rule_name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(
            f'PAYDESK["AUTO_REFUNDS"]["RULES"] names {", ".join(duplicates)} more than once; '
            'give each a distinct OPTIONS["name"].'
        )
    return rules


# -- running ------------------------------------------------------------------------------


def _audit(claim: AutoRefund, refund: Refund | None, *, success: bool, **details: Any) -> None:
    AuditLogger().log_refund(
        refund=refund,
        payment=claim.payment if refund is None else None,
        actor=ACTOR,
        success=success,
        auto_refund_rule=claim.rule,
        reason=claim.reason,
        **details,
    )


def _settle(claim: AutoRefund, refund: Refund) -> str:
    """Bring the claim up to date with its refund; return the report's outcome."""
    if refund.status == RefundStatus.COMPLETED:
        status, outcome, detail = AutoRefundStatus.REFUNDED, "refunded", ""
    elif refund.status in (RefundStatus.FAILED, RefundStatus.CANCELLED):
        status, outcome = AutoRefundStatus.FAILED, "failed"
        detail = f"{refund.failure_code}: {refund.failure_message}".strip(": ")
    else:
        return "pending"
    AutoRefund.objects.filter(pk=claim.pk).update(
        status=status, detail=detail, updated_at=timezone.now()
    )
    claim.status, claim.detail = status, detail
    _audit(claim, refund, success=status == AutoRefundStatus.REFUNDED, outcome=refund.status)
    return outcome


def _send(claim: AutoRefund, refund: Refund) -> str:
    """Send a reserved refund (outside any transaction) and settle the claim."""
    if refund.status == RefundStatus.PENDING:
        try:
            refund = process_refund(refund=refund)
        except PaymentInProgress:
            return "pending"  # another worker is sending it right now
        except InvalidTransition:
            pass  # another worker sent it meanwhile: settle from what it recorded
        except ProviderError as exc:
            if exc.retryable:
                return "pending"  # unknown outcome: the next run sends it again, same key
            raise
    return _settle(claim, Refund.objects.get(pk=refund.pk))


def refund_once(rule: str, candidate: Candidate) -> str:
    """Claim ``candidate.payment`` for ``rule`` and refund it, unless already claimed.

    Returns ``"refunded"``, ``"pending"``, ``"skipped"``, ``"failed"`` or ``"already"``.
    """
    payment = candidate.payment
    with transaction.atomic():
        claim, created = AutoRefund.objects.select_for_update().get_or_create(
            payment=payment, rule=rule, defaults={"reason": candidate.reason[:255]}
        )
        if not created:
            # Claimed before: done, or being sent by the run that claimed it (a run that
            # died mid-way leaves it pending, and the next run's leftovers pass sends it).
            return "already" if claim.status != AutoRefundStatus.PENDING else "pending"
        try:
            with transaction.atomic():
                refund = create_refund(
                    payment=payment,
                    amount=candidate.amount,
                    reason=claim.reason,
                    user=None,
                    process=False,
                )
        except PaydeskError as exc:
            # Fully refunded meanwhile, no longer refundable, refused by the refund policy
            # or the provider's capabilities: recorded, never retried by itself.
            refused = exc.code in ("refund_exceeds_captured", "invalid_transition")
            claim.status = AutoRefundStatus.SKIPPED if refused else AutoRefundStatus.FAILED
            claim.detail = f"{exc.code}: {exc.message}"
            claim.save(update_fields=["status", "detail", "updated_at"])
            _audit(claim, None, success=False, error=exc.code, message=exc.message)
            return "skipped" if refused else "failed"
        claim.refund = refund
        claim.save(update_fields=["refund", "updated_at"])
        _audit(claim, refund, success=True, outcome="reserved")
    return _send(claim, refund)


def _as_candidate(item: Candidate | Payment, rule: AutoRefundRule) -> Candidate:
    if isinstance(item, Candidate):
        return item if item.reason else Candidate(item.payment, rule.reason, item.amount)
    return Candidate(item, reason=rule.reason)


def run_auto_refunds(
    *, rules: Iterable[str] | None = None, limit: int | None = None
) -> AutoRefundReport:
    """Run the configured rules (all, or those named in ``rules``) and refund what they pick.

    First re-sends the refunds earlier runs left pending, then asks each rule for up to
    ``limit`` (``PAYDESK["AUTO_REFUNDS"]["BATCH_SIZE"]``) new candidates. Idempotent.
    """
    selected = load_rules()
    if rules is not None:
        wanted = set(rules)
        unknown = wanted - {rule.rule_name for rule in selected}
        if unknown:
            raise ConfigurationError(
                f"No automatic refund rule named {', '.join(sorted(unknown))} in "
                'PAYDESK["AUTO_REFUNDS"]["RULES"].'
            )
        selected = [rule for rule in selected if rule.rule_name in wanted]
    batch = int(limit or paydesk_settings.AUTO_REFUNDS["BATCH_SIZE"])
    report = AutoRefundReport()
    names = [rule.rule_name for rule in selected]
    leftovers = (
        AutoRefund.objects.filter(rule__in=names, status=AutoRefundStatus.PENDING)
        .exclude(refund=None)
        .select_related("refund", "payment")
        .order_by("created_at")[:batch]
    )
    for claim in leftovers:
        assert claim.refund is not None
        report.count(claim.rule, _send(claim, claim.refund))
    for rule in selected:
        for item in rule.candidates(limit=batch):
            report.count(rule.rule_name, refund_once(rule.rule_name, _as_candidate(item, rule)))
    return report
