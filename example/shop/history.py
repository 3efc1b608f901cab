"""Ninety days of made-up payment history for the demo, so a staff dashboard has numbers.

``seed_history()`` writes some four thousand payments (the exact number follows from the
seed) spread over the last 90 days: three provider aliases, six currencies, successes,
declines, 3-D Secure, retries, manual captures, partial and full refunds, a failed refund,
disputes, fraud screening (allow, review, block, staff decisions), bank transfers (approved,
rejected, expired, still open), the sandbox's webhook deliveries (processed, ignored, a few
failed or dead-lettered with their error, a few still pending) and audit log entries. Daily
volume grows over the period, dips at weekends and has two sale days, so a chart has a shape.

Why not through paydesk's services, like every other write in the demo
------------------------------------------------------------------------

paydesk's rule is that services are the only writers, and the rest of the demo keeps it. This
module is the one deliberate exception, for two reasons:

* **Time.** Services stamp ``timezone.now()`` on every row they write (``auto_now_add``,
  ``processed_at``, the fraud check's time, the webhook's arrival), so history cannot be
  *backdated* through them; a dashboard showing four thousand payments all made in the last
  minute shows nothing.
* **Speed.** Going through the services costs one provider call, several transactions and
  dozens of queries per payment: minutes for the whole history, against a budget of seconds
  for ``make demo``. Here every table gets one ``bulk_create`` (in batches), a few dozen
  queries in all.

What keeps it honest: each payment's story is written as *ledger rows first*, with the same
kinds, idempotency keys, refs and amounts the services write (``created``,
``attempt-1:submitted``, ``capture:<provider id>``, ``refund:<id>:completed``, ...), and the
payment's cached status and amounts are then computed by ``paydesk.states.fold`` over exactly
those rows, as ``services.ledger.refresh`` does. Refund statuses come from ``fold_refund``.
``tests/test_demo.py`` folds every seeded payment's stored ledger again and compares.

The simulated provider side is written too (``SandboxCharge`` rows for the two sandbox
aliases, ``BankTransfer`` rows for bank transfers), and webhook deliveries carry bodies signed
with the sandbox's real signer, so what staff do with a seeded payment in the dashboard or the
admin (refund, capture or cancel a recent authorization, sync, replay a failed delivery)
goes through the real services and providers and works.

The two items a staff member is meant to *act on* are not made here: the payment held for a
fraud review and the bank transfer waiting for approval (with its uploaded receipt) are made
by ``seed_demo`` through ``create_payment``/``process_payment``, the fraud rules and
``services.eft.record_receipt``, exactly as a customer's checkout would make them.

Providers: history uses only aliases the demo configures and that work offline: ``sandbox``
(USD, JPY, KRW cards), ``sandbox_eu`` (a second sandbox alias standing for a European
acquiring account: EUR, GBP, TRY) and ``bank_transfer`` (EUR, GBP, TRY). The env-driven
aliases (Stripe, PayPal, ...) get no history: without credentials a dashboard would show
payments for providers that cannot be reached.

Idempotent: every seeded payment's ``reference`` starts with ``hist-``; when one exists,
``seed_history`` writes nothing. Deterministic: the same ``seed`` and ``now`` give the same
rows (ids included). The ``created_at``/``updated_at`` fields are ``auto_now(_add)``; they are
switched off around the inserts (``_backdated``) and restored afterwards.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import math
import random
import string
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from paydesk.models import (
    AuditLog,
    BankTransfer,
    BlocklistEntry,
    BlocklistKind,
    FraudAssessment,
    FraudCheck,
    FraudRuleHit,
    Payment,
    Refund,
    SandboxCharge,
    TransactionLog,
    WebhookEvent,
)
from paydesk.models.eft import REFERENCE_ALPHABET
from paydesk.money import Money, currency_exponent
from paydesk.providers.bank_transfer import rejection_message
from paydesk.providers.registry import get_payment_provider
from paydesk.providers.sandbox import SandboxProvider
from paydesk.providers.sandbox.webhooks import signed_delivery
from paydesk.services.fraud import DECLINED_MESSAGE
from paydesk.services.payments import processing_fee
from paydesk.states import LedgerFact, LedgerKind, PaymentStatus, fold, fold_refund

__all__ = [
    "CURRENCY_MIX",
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "HISTORY_PREFIX",
    "HistoryReport",
    "history_exists",
    "seed_history",
]

#: Every seeded payment's ``reference`` starts with this; it is also the "already seeded" test.
HISTORY_PREFIX = "hist-"
DEFAULT_SEED = 9090
DEFAULT_DAYS = 90
BATCH = 500

#: (provider alias, currency, share of payments, median amount, rounding step).
CURRENCY_MIX: tuple[tuple[str, str, int, str, str], ...] = (
    ("sandbox", "USD", 36, "48", "0.01"),
    ("sandbox", "JPY", 9, "5200", "10"),
    ("sandbox", "KRW", 6, "56000", "100"),
    ("sandbox_eu", "EUR", 20, "42", "0.01"),
    ("sandbox_eu", "GBP", 9, "36", "0.01"),
    ("sandbox_eu", "TRY", 8, "1450", "0.01"),
    ("bank_transfer", "EUR", 6, "260", "0.01"),
    ("bank_transfer", "TRY", 4, "6400", "0.01"),
    ("bank_transfer", "GBP", 2, "210", "0.01"),
)
SANDBOX_ALIASES = frozenset({"sandbox", "sandbox_eu"})

COUNTRIES = {
    "USD": ("US",),
    "JPY": ("JP",),
    "KRW": ("KR",),
    "EUR": ("DE", "FR", "NL", "ES", "IT", "IE", "PT"),
    "GBP": ("GB",),
    "TRY": ("TR",),
}
FIRST_NAMES = (
    "ada alan grace linus barbara ken dennis margaret edsger frances john radia tim guido "
    "yuki hana minji jisoo emre elif ayse mehmet lea lucas sofia mateo chloe oliver amelia "
    "noah mia liam"
)  # space-separated
LAST_NAMES = (
    "lovelace turing hopper torvalds liskov thompson ritchie hamilton dijkstra allen backus "
    "perlman berners rossum tanaka sato kim park yilmaz kaya demir martin garcia rossi smith "
    "jones"
)  # space-separated
DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "shop.example")
PRODUCTS = (
    "Paydesk T-shirt",
    "Espresso beans, 1 kg",
    "Matcha tin",
    "Sticker pack",
    "Ticket: Django payments workshop",
    "Ticket: Ledger design meetup",
    "Gift card",
    "Annual membership",
)

# (failure code, message, weight) for cards the sandbox declines.
DECLINES = (
    ("card_declined", "Your card was declined.", 45),
    ("insufficient_funds", "Your card has insufficient funds.", 25),
    ("expired_card", "Your card has expired.", 10),
    ("incorrect_cvc", "Your card's security code is incorrect.", 12),
    (
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
        8,
    ),
)
SCENARIO_FOR_CODE = {
    "card_declined": "declined",
    "insufficient_funds": "insufficient",
    "expired_card": "expired",
    "incorrect_cvc": "incorrect_cvc",
    "processing_error": "processing_error",
}
REFUND_REASONS = (
    ("requested_by_customer", 40),
    ("damaged", 15),
    ("not as described", 12),
    ("duplicate", 8),
    ("late delivery", 10),
    ("changed plans", 15),
)
DISPUTE_REASONS = ("fraudulent", "product_not_received", "duplicate", "subscription_canceled")
TRANSFER_REJECTIONS = (
    "The amount received did not match the order.",
    "No transfer with this reference arrived.",
    "The sender's name does not match the customer.",
)
REVIEW_NOTES = (
    "Called the customer; confirmed the order.",
    "Known customer, large order before.",
    "Billing address verified by email.",
)
REVIEW_REJECTIONS = (
    "Card country and IP country differ, customer did not answer.",
    "Shipping address is a freight forwarder used in earlier chargebacks.",
)
WEBHOOK_FAILURES = (
    "WebhookError: No {alias} payment matches id='{payment}' / provider id='{ppid}'; will retry.",
    "OperationalError: database is locked",
    "ProviderUnavailable: the provider did not answer within 10 s; will retry.",
)

# The demo's fraud rules (demo.settings PAYDESK["FRAUD"]), so the history's checks read as
# theirs: the same scores, thresholds, limits and blocklisted domain.
REVIEW_THRESHOLD = 50
BLOCK_THRESHOLD = 100
BLOCKED_DOMAIN = "mailinator.example"
AMOUNT_LIMITS = {"USD": "1500", "EUR": "1500", "GBP": "1200", "JPY": "200000",
                 "KRW": "2000000", "TRY": "50000"}  # fmt: skip
FIRST_PURCHASE = {"USD": "400", "EUR": "400", "GBP": "350", "JPY": "60000",
                  "KRW": "550000", "TRY": "15000"}  # fmt: skip


@dataclass
class HistoryReport:
    """What ``seed_history`` wrote (empty when history already existed)."""

    created: bool
    payments: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    currencies: Counter[str] = field(default_factory=Counter)
    providers: Counter[str] = field(default_factory=Counter)
    ledger_rows: int = 0
    refunds: int = 0
    disputes: int = 0
    fraud_checks: Counter[str] = field(default_factory=Counter)
    bank_transfers: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    audit_entries: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    def lines(self) -> list[str]:
        if not self.created:
            return ["Payment history: already seeded (payments with reference hist-*); kept."]

        def counts(counter: Counter[str]) -> str:
            return ", ".join(f"{name} {n}" for name, n in counter.most_common())

        return [
            f"Payment history: {self.payments} payments from {self.first:%Y-%m-%d} to "
            f"{self.last:%Y-%m-%d}, {self.ledger_rows} ledger rows.",
            f"  providers: {counts(self.providers)}",
            f"  currencies: {counts(self.currencies)}",
            f"  statuses: {counts(self.statuses)}",
            f"  {self.refunds} refunds, {self.disputes} disputes, "
            f"fraud checks: {counts(self.fraud_checks)}",
            f"  bank transfers: {counts(self.bank_transfers)}",
            f"  webhook deliveries: {counts(self.webhooks)}; {self.audit_entries} audit entries",
        ]


def history_exists() -> bool:
    return Payment.objects.filter(reference__startswith=HISTORY_PREFIX).exists()


# -- randomness ----------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


class _Rng(random.Random):
    def token(self, length: int, alphabet: str = _ALNUM) -> str:
        return "".join(self.choice(alphabet) for _ in range(length))

    def hex(self, length: int) -> str:
        return f"{self.getrandbits(length * 4):0{length}x}"

    def weighted(self, options: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
        return self.choices(options, weights=[o[-1] for o in options])[0]

    def seconds(self, low: float, high: float) -> dt.timedelta:
        return dt.timedelta(seconds=self.uniform(low, high))


# -- one payment's story -------------------------------------------------------------------


@dataclass
class _Story:
    """Rows for one payment, built in time order; the payment row comes from its fold."""

    payment: Payment
    alias: str
    now: dt.datetime
    ledger: list[TransactionLog] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    webhooks: list[WebhookEvent] = field(default_factory=list)
    audit: list[AuditLog] = field(default_factory=list)
    charges: list[SandboxCharge] = field(default_factory=list)
    transfer: BankTransfer | None = None
    check_rows: list[tuple[FraudCheck, list[FraudRuleHit]]] = field(default_factory=list)
    assessment: FraudAssessment | None = None
    failure: tuple[str, str] | None = None
    next_action: dict[str, str] | None = None
    # Ledger rows that name a webhook delivery, patched with its primary key after insert.
    delivery_links: list[tuple[TransactionLog, WebhookEvent]] = field(default_factory=list)

    def add(
        self,
        at: dt.datetime,
        kind: LedgerKind,
        key: str,
        *,
        attempt: int = 1,
        amount: Decimal | None = None,
        ref: str = "",
        refund: Refund | None = None,
        data: dict[str, Any] | None = None,
        message: str = "",
    ) -> TransactionLog:
        row = TransactionLog(
            payment_id=self.payment.pk,
            refund_id=refund.pk if refund else None,
            kind=kind,
            amount=amount,
            currency=self.payment.currency,
            attempt=attempt,
            ref=ref,
            idempotency_key=key,
            provider_data=data or {},
            message=message,
            created_at=at,
        )
        self.ledger.append(row)
        return row

    def facts(self) -> list[LedgerFact]:
        return [
            LedgerFact(
                kind=LedgerKind(r.kind),
                key=r.idempotency_key,
                attempt=r.attempt,
                amount=r.amount,
                ref=r.ref,
            )
            for r in self.ledger
        ]


def _patch_times(
    obj: models.Model, created: dt.datetime, updated: dt.datetime | None = None
) -> None:
    obj.created_at = created  # type: ignore[attr-defined]
    if hasattr(obj, "updated_at"):
        obj.updated_at = updated or created


class _Builder:
    """Makes the rows of the whole history; nothing touches the database until ``save``."""

    def __init__(self, *, now: dt.datetime, seed: int, days: int, staff: Any) -> None:
        self.now = now
        self.rng = _Rng(seed)
        self.days = days
        self.staff = staff
        self.staff_name = staff.get_username() if staff is not None else "staff"
        self.stories: list[_Story] = []
        self.extra_audit: list[AuditLog] = []
        self.used_refs: set[str] = set()
        self.customers = self._customers(700)
        self.providers: dict[str, SandboxProvider] = {}
        for alias in SANDBOX_ALIASES:
            backend = get_payment_provider(alias)
            if not isinstance(backend, SandboxProvider):
                raise ImproperlyConfigured(
                    f"The seeded history needs PAYDESK['PROVIDERS'][{alias!r}] to be the "
                    "sandbox (paydesk.providers.sandbox.SandboxProvider); see demo/settings.py."
                )
            self.providers[alias] = backend
        self.receipt_name = ""
        self.mix = CURRENCY_MIX
        self.mix_weights = [m[2] for m in CURRENCY_MIX]

    # -- identities ----------------------------------------------------------------------

    def _customers(self, count: int) -> list[tuple[str, str]]:
        out = []
        for i in range(count):
            first = self.rng.choice(FIRST_NAMES.split())
            last = self.rng.choice(LAST_NAMES.split())
            email = f"{first}.{last}{i}@{self.rng.choice(DOMAINS)}"
            ip = self.rng.choice(("192.0.2.", "198.51.100.", "203.0.113."))
            out.append((email, ip + str(self.rng.randint(1, 254))))
        return out

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.token(22)}"

    def _reference(self) -> str:
        while True:
            body = self.rng.token(8, REFERENCE_ALPHABET)
            ref = f"PD-{body[:4]}-{body[4:]}"
            if ref not in self.used_refs:
                self.used_refs.add(ref)
                return ref

    # -- the calendar --------------------------------------------------------------------

    def moments(self) -> Iterator[dt.datetime]:
        """Creation times of every payment, oldest first."""
        today = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        weekday = (1.0, 1.05, 1.05, 1.1, 1.2, 0.8, 0.65)  # Monday first
        # Busier afternoons and evenings (UTC): weights of the 24 hours.
        hours = [1, 1, 1, 1, 1, 2, 3, 4, 6, 8, 9, 10, 11, 11, 10, 10, 11, 12, 12, 11, 9, 6, 4, 2]
        cumulative = [sum(hours[: i + 1]) for i in range(24)]
        sale_days = {self.days - 52: 2.1, self.days - 19: 1.6}
        for back in range(self.days - 1, -1, -1):
            start = today - dt.timedelta(days=back)
            index = self.days - 1 - back
            growth = 30 + 26 * index / max(self.days - 1, 1)
            level = growth * weekday[start.weekday()] * sale_days.get(index, 1.0)
            count = max(0, round(level * self.rng.gauss(1.0, 0.12)))
            end = min(start + dt.timedelta(days=1), self.now - dt.timedelta(minutes=2))
            if end <= start:
                continue
            day_share = (end - start) / dt.timedelta(days=1)
            count = round(count * day_share)
            times = []
            for _ in range(count):
                while True:
                    hour = bisect.bisect_left(cumulative, self.rng.uniform(0, cumulative[-1]))
                    moment = start + dt.timedelta(hours=hour, seconds=self.rng.uniform(0, 3600))
                    if moment < end:
                        break
                times.append(moment)
            yield from sorted(times)

    # -- amounts -------------------------------------------------------------------------

    def amount(self, currency: str, median: str, step: str, *, spread: float = 0.75) -> Decimal:
        value = Decimal(str(round(math.exp(self.rng.gauss(math.log(float(median)), spread)), 4)))
        quantum = Decimal(step)
        value = (value / quantum).to_integral_value(ROUND_HALF_UP) * quantum
        value = max(value, quantum * (100 if currency in ("JPY", "KRW") else 300))
        return value.quantize(Decimal(1).scaleb(-currency_exponent(currency)))

    # -- building ------------------------------------------------------------------------

    def build(self) -> None:
        for number, created in enumerate(self.moments(), start=1):
            alias, currency, _, median, step = self.rng.choices(self.mix, weights=self.mix_weights)[
                0
            ]
            email, ip = self.rng.choice(self.customers)
            fate = "allow"
            if alias in SANDBOX_ALIASES:
                fate = self.rng.choices(
                    ("allow", "mismatch", "review", "block"), weights=(940, 35, 17, 8)
                )[0]
            if fate == "review":  # a first purchase above the threshold, from abroad
                amount = self.amount(currency, FIRST_PURCHASE[currency], step, spread=0.25)
                amount = max(amount, Decimal(FIRST_PURCHASE[currency]) + Decimal(step))
                amount = min(amount, Decimal(AMOUNT_LIMITS[currency]))
            else:
                amount = self.amount(currency, median, step)
            if fate == "block":
                email = f"{email.partition('@')[0]}@{BLOCKED_DOMAIN}"
            product = self.rng.choice(PRODUCTS)
            payment = Payment(
                id=self._id("pay"),
                reference=f"{HISTORY_PREFIX}{number:05d}",
                provider=alias,
                amount=amount,
                currency=currency,
                description=f"Order {number + 10400}: {product}",
                processing_fee=processing_fee(Money(amount, currency)).amount,
                customer_email=email,
                metadata={"seeded": "demo-history"},
                created_at=created,
            )
            story = _Story(payment=payment, alias=alias, now=self.now)
            story.add(
                created, LedgerKind.PAYMENT_CREATED, "created", amount=amount,
                message=payment.description,
            )  # fmt: skip
            if alias in SANDBOX_ALIASES:
                self.card_story(story, email, ip, fate)
            else:
                self.transfer_story(story, email, ip)
            self.finish(story)
            self.stories.append(story)
        self.signature_failures()

    def screen(
        self, story: _Story, at: dt.datetime, attempt: int, email: str, ip: str, fate: str
    ) -> str:
        """A fraud check for ``attempt`` at ``at`` whose rules fire as ``fate`` says (allow,
        mismatch, review or block), worded as the demo's rules word them; the decision."""
        payment = story.payment
        money = Money(payment.amount, payment.currency)
        card_country = self.rng.choice(COUNTRIES[payment.currency])
        ip_country = card_country
        hits: list[tuple[str, int, str]] = []
        if fate == "block":
            domain = email.rpartition("@")[2]
            hits.append(("blocklist", 100, f"Blocklisted: Email domain {domain}."))
        if fate in ("mismatch", "review"):
            ip_country = self.rng.choice(("NG", "BR", "VN", "ID", "US", "NL"))
            if ip_country == card_country:
                ip_country = "NG"
            hits.append(
                ("country_mismatch", 30,
                 f"Country mismatch: card country {card_country} vs ip country {ip_country}.")
            )  # fmt: skip
        if fate == "review":
            threshold = Money(FIRST_PURCHASE[payment.currency], payment.currency)
            hits.append(
                ("first_purchase", 40,
                 f"First purchase of {money}, above the first-purchase threshold of "
                 f"{threshold}.")
            )  # fmt: skip
        score = sum(h[1] for h in hits)
        decision = "allow"
        if score >= BLOCK_THRESHOLD:
            decision = "block"
        elif score >= REVIEW_THRESHOLD:
            decision = "review"
        reasons = [{"rule": r, "score": s, "reason": why} for r, s, why in hits]
        check = FraudCheck(
            payment_id=payment.pk,
            attempt=attempt,
            decision=decision,
            score=score,
            amount=payment.amount,
            currency=payment.currency,
            email=email,
            ip_address=ip,
            card_fingerprint=f"fp_{hashlib.sha256(email.encode()).hexdigest()[:16]}",
            card_country=card_country,
            ip_country=ip_country,
            billing_country=card_country,
            created_at=at,
        )
        story.check_rows.append(
            (check, [FraudRuleHit(rule=r, score=s, reason=why) for r, s, why in hits])
        )
        held = decision == "review"
        assessment = FraudAssessment(
            payment_id=payment.pk,
            attempt=attempt,
            decision=decision,
            score=score,
            reasons=reasons,
            review_status="pending" if held else "",
            held_at=at if held else None,
        )
        _patch_times(assessment, story.assessment.created_at if story.assessment else at, at)
        story.assessment = assessment
        story.add(
            at,
            LedgerKind.FRAUD_CHECK,
            f"attempt-{attempt}:fraud_check",
            attempt=attempt,
            data={"decision": decision, "score": score, "reasons": reasons},
            message=f"fraud screening: {decision} (score {score})",
        )
        return decision

    def review(self, story: _Story, at: dt.datetime, attempt: int, *, approve: bool) -> None:
        payment = story.payment
        assessment = story.assessment
        assert assessment is not None
        note = self.rng.choice(REVIEW_NOTES if approve else REVIEW_REJECTIONS)
        assessment.review_status = "approved" if approve else "rejected"
        assessment.reviewed_by = self.staff
        assessment.reviewed_at = at
        assessment.review_note = note
        assessment.updated_at = at
        story.add(
            at,
            LedgerKind.FRAUD_REVIEW,
            f"attempt-{attempt}:fraud_review",
            attempt=attempt,
            data={"review": "approved" if approve else "rejected", "by": self.staff_name},
            message=note,
        )
        if not approve:
            self.fail(
                story, at, attempt, "fraud_rejected", DECLINED_MESSAGE,
                {"source": "paydesk_review"},
            )  # fmt: skip
        story.audit.append(
            self.audit_row(
                at,
                "fraud_review_approved" if approve else "fraud_review_rejected",
                payment,
                amount=payment.amount,
                details={
                    "score": assessment.score,
                    "reasons": assessment.reasons,
                    "note" if approve else "reason": note,
                },
            )
        )

    def fail(
        self,
        story: _Story,
        at: dt.datetime,
        attempt: int,
        code: str,
        message: str,
        raw: dict[str, Any],
    ) -> None:
        story.failure = (code, message)
        story.add(
            at,
            LedgerKind.PAYMENT_FAILED,
            f"attempt-{attempt}:failed",
            attempt=attempt,
            data={**raw, "failure_code": code},
            message=message,
        )

    def audit_row(
        self,
        at: dt.datetime,
        action: str,
        payment: Payment,
        *,
        actor: Any = "staff",
        amount: Decimal | None = None,
        details: dict[str, Any] | None = None,
        success: bool = True,
    ) -> AuditLog:
        user = self.staff if actor == "staff" else None
        label = self.staff_name if actor == "staff" else str(actor or "system")
        return AuditLog(
            created_at=at,
            actor=user,
            actor_label=label,
            action=action,
            object_type="payment",
            object_id=payment.pk,
            provider=payment.provider,
            success=success,
            amount=amount,
            currency=payment.currency if amount is not None else "",
            details=json.loads(json.dumps(details or {}, default=str)),
        )

    # -- the sandbox side ----------------------------------------------------------------

    def charge(
        self, story: _Story, at: dt.datetime, attempt: int, scenario: str, *, capture: bool
    ) -> SandboxCharge:
        payment = story.payment
        charge = SandboxCharge(
            id=f"pi_sb_{self.rng.hex(20)}",
            idempotency_key=f"paydesk:{payment.pk}:attempt-{attempt}:create",
            payment_ref=payment.pk,
            amount=payment.amount,
            currency=payment.currency,
            status="requires_action",
            scenario=scenario,
            capture=capture,
            return_url=reverse("paydesk:payment-return", args=[payment.pk]),
        )
        _patch_times(charge, at, self.now)
        story.charges.append(charge)
        return charge

    def snapshot(self, charge: SandboxCharge, message: str = "") -> dict[str, Any]:
        data = {
            "id": charge.id,
            "object": "sandbox_charge",
            "payment_id": charge.payment_ref,
            "amount": str(charge.amount),
            "currency": charge.currency,
            "status": charge.status,
            "captured_amount": str(charge.captured_amount or 0),
            "refunded_amount": str(charge.refunded_amount or 0),
            "scenario": charge.scenario,
            "failure_code": charge.failure_code,
            "failure_message": message if charge.failure_code else "",
        }
        if charge.status == "requires_action":
            data["next_action_url"] = reverse("paydesk:sandbox-3ds", args=[charge.id])
        return data

    def webhook(
        self,
        story: _Story,
        at: dt.datetime,
        event_type: str,
        obj: dict[str, Any],
        *,
        attempt: int = 1,
        extra: dict[str, Any] | None = None,
        outcome: str = "processed",
    ) -> WebhookEvent | None:
        """A sandbox delivery of ``event_type`` arriving at ``at``; the ledger notes it if it
        was processed. ``outcome``: processed, ignored, failed, dead or pending."""
        if at >= self.now:
            return None
        event_id = f"evt_sb_{self.rng.hex(24)}"
        event = {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(at.timestamp()),
            "livemode": False,
            "data": {"object": dict(obj), **(extra or {})},
        }
        body, headers = signed_delivery(
            self.providers[story.alias], event, timestamp=int(at.timestamp())
        )
        header = self.providers[story.alias].webhook_signature_header
        done = outcome in ("processed", "ignored")
        delivery = WebhookEvent(
            provider=story.alias,
            event_type=event_type,
            event_id=event_id,
            payload=event,
            body=body.decode(),
            headers=headers,
            signature=headers[header],
            ip_address="127.0.0.1",
            status=outcome,
            processed=done or outcome == "dead",
            success=done,
            attempts=0 if outcome == "pending" else 1,
            payment_id=story.payment.pk if done else "",
            created_at=at,
            processed_at=at + self.rng.seconds(0.02, 0.4) if done else None,
        )
        if outcome in ("failed", "dead"):
            template = self.rng.choice(WEBHOOK_FAILURES)
            delivery.error_message = template.format(
                alias=story.alias, payment=obj.get("payment_id", ""), ppid=obj.get("id", "")
            )
            delivery.traceback = (
                "Traceback (most recent call last):\n"
                '  File "paydesk/services/webhooks.py", in process_webhook\n'
                f"{delivery.error_message}\n"
            )
            delivery.attempts = 8 if outcome == "dead" else self.rng.randint(1, 3)
            if outcome == "failed":
                delivery.next_retry_at = self.now + self.rng.seconds(60, 1800)
        story.webhooks.append(delivery)
        if outcome == "processed":
            row = story.add(
                delivery.created_at,
                LedgerKind.WEBHOOK_RECEIVED,
                f"webhook:{story.alias}:{event_id}",
                attempt=attempt,
                data={"event_type": event_type, "delivery": None},
                message=event_type,
            )
            story.delivery_links.append((row, delivery))
        return delivery

    def webhook_outcome(self, at: dt.datetime) -> str:
        """Mostly processed; in the last days a few failed, dead or still pending."""
        age = self.now - at
        roll = self.rng.random()
        if age < dt.timedelta(hours=3) and roll < 0.3:
            return "pending"
        if age < dt.timedelta(days=3) and roll < 0.02:
            return "failed"
        if age < dt.timedelta(days=10) and roll < 0.004:
            return "dead"
        return "processed"

    def sandbox_result(
        self, story: _Story, at: dt.datetime, attempt: int, charge: SandboxCharge
    ) -> None:
        """Record what the sandbox answered (and emit its webhook)."""
        raw = {"id": charge.id, "status": charge.status, "scenario": charge.scenario}
        amount = story.payment.amount
        if charge.status in ("authorized", "captured"):
            story.add(
                at, LedgerKind.AUTHORIZATION, f"authorization:{charge.id}", attempt=attempt,
                amount=amount, ref=charge.id, data=raw, message="via process",
            )  # fmt: skip
            if charge.status == "captured":
                story.add(
                    at, LedgerKind.CAPTURE, f"capture:{charge.id}", attempt=attempt,
                    amount=amount, ref=charge.id, data=raw, message="via process",
                )  # fmt: skip
            story.failure = None
        elif charge.status == "failed":
            _, message, _ = (
                next(d for d in DECLINES if d[0] == charge.failure_code)
                if (charge.failure_code in SCENARIO_FOR_CODE)
                else ("", "The customer failed 3-D Secure authentication.", 0)
            )
            self.fail(story, at, attempt, charge.failure_code, message, raw)
        elif charge.status == "requires_action":
            url = reverse("paydesk:sandbox-3ds", args=[charge.id])
            story.next_action = {"type": "redirect", "redirect_url": url}
            story.add(
                at, LedgerKind.REQUIRES_ACTION, f"attempt-{attempt}:requires_action",
                attempt=attempt, data=raw, message="via process",
            )  # fmt: skip
        event = {
            "requires_action": "payment.requires_action",
            "authorized": "payment.authorized",
            "captured": "payment.succeeded",
            "failed": "payment.failed",
        }[charge.status]
        message = story.failure[1] if story.failure else ""
        if self.rng.random() < 0.015:  # an event type paydesk does not act on: ignored
            self.webhook(
                story, at + self.rng.seconds(0.01, 0.04), "payment.updated",
                self.snapshot(charge, message), attempt=attempt, outcome="ignored",
            )  # fmt: skip
        self.webhook(
            story,
            at + self.rng.seconds(0.05, 0.6),
            event,
            self.snapshot(charge, message),
            attempt=attempt,
            outcome=self.webhook_outcome(at),
        )

    def card_story(self, story: _Story, email: str, ip: str, fate: str) -> None:
        payment = story.payment
        rng = self.rng
        at = payment.created_at
        manual = payment.currency == "USD" and rng.random() < 0.06
        payment.capture_method = "manual" if manual else "automatic"
        payment.payment_method_token = "pm_sandbox_visa"  # what the customer's card gave
        attempt = 1
        while True:
            at += rng.seconds(0.2, 1.5)
            decision = self.screen(story, at, attempt, email, ip, fate if attempt == 1 else "allow")
            if decision == "block":
                self.fail(
                    story, at, attempt, "fraud_blocked", DECLINED_MESSAGE,
                    {"source": "paydesk_fraud", "score": story.assessment.score},  # type: ignore[union-attr]
                )  # fmt: skip
                return
            if decision == "review":
                at += rng.seconds(600, 20 * 3600)
                if at >= self.now - dt.timedelta(minutes=1):
                    return  # still waiting for staff: stays pending (a real held payment)
                approve = rng.random() < 0.72
                self.review(story, at, attempt, approve=approve)
                if not approve:
                    return
                at += rng.seconds(0.2, 2)
            story.add(
                at, LedgerKind.SUBMITTED, f"attempt-{attempt}:submitted", attempt=attempt,
                message="sent to the provider",
            )  # fmt: skip
            roll = rng.random()
            at += rng.seconds(0.4, 3.5)
            if roll < 0.085:  # declined
                code, _, _ = rng.weighted(DECLINES)
                charge = self.charge(
                    story, at, attempt, SCENARIO_FOR_CODE[code], capture=not manual
                )
                payment.payment_method_token = f"pm_sandbox_{charge.scenario}"
                charge.status, charge.failure_code = "failed", code
                self.sandbox_result(story, at, attempt, charge)
                if rng.random() < 0.4 and at + dt.timedelta(minutes=30) < self.now:
                    at += rng.seconds(60, 1800)
                    attempt += 1
                    story.add(
                        at, LedgerKind.ATTEMPT_STARTED, f"attempt-{attempt}:started",
                        attempt=attempt, message="retry",
                    )  # fmt: skip
                    story.failure = None
                    continue
                payment.provider_payment_id = charge.id
                return
            if roll < 0.115:  # 3-D Secure
                charge = self.charge(story, at, attempt, "3ds", capture=not manual)
                payment.payment_method_token = "pm_sandbox_3ds"
                self.sandbox_result(story, at, attempt, charge)
                payment.provider_payment_id = charge.id
                second = rng.random()
                done = at + rng.seconds(20, 240)
                if done >= self.now or (second < 0.08 and self.now - at < dt.timedelta(days=1)):
                    return  # the customer is still on (or left) the challenge page
                if second < 0.3:
                    charge.status, charge.failure_code = "failed", "authentication_required"
                    self.sandbox_result(story, done, attempt, charge)
                    return
                charge.status = "authorized" if manual else "captured"
                charge.captured_amount = Decimal(0) if manual else payment.amount
                self.sandbox_result(story, done, attempt, charge)
                at = done
            else:
                token = rng.choice(("visa", "visa", "mastercard"))
                charge = self.charge(story, at, attempt, token, capture=not manual)
                payment.payment_method_token = f"pm_sandbox_{token}"
                charge.status = "authorized" if manual else "captured"
                charge.captured_amount = Decimal(0) if manual else payment.amount
                self.sandbox_result(story, at, attempt, charge)
            payment.provider_payment_id = charge.id
            if manual:
                captured_at = self.capture_later(story, at, attempt, charge)
                if captured_at is None:
                    return
                at = captured_at
            self.after_capture(story, at, attempt, charge=charge)
            return

    def capture_later(
        self, story: _Story, at: dt.datetime, attempt: int, charge: SandboxCharge
    ) -> dt.datetime | None:
        """An authorization captured (or cancelled) by staff later; recent ones wait."""
        later = at + self.rng.seconds(3600, 3 * 86400)
        if later >= self.now:
            return None  # still authorized: staff can capture or cancel it
        raw = {"id": charge.id, "status": "captured", "scenario": charge.scenario}
        if self.rng.random() < 0.1:
            charge.status = "cancelled"
            story.add(
                later, LedgerKind.CANCELLATION, f"cancellation:{charge.id}", attempt=attempt,
                data={**raw, "status": "cancelled"}, message="via cancel",
            )  # fmt: skip
            self.webhook(story, later, "payment.cancelled", self.snapshot(charge), attempt=attempt)
            story.audit.append(
                self.audit_row(
                    later, "admin.cancel", story.payment, details={"reason": "out of stock"}
                )
            )
            return None
        charge.status, charge.captured_amount = "captured", story.payment.amount
        story.add(
            later, LedgerKind.CAPTURE, f"capture:{charge.id}", attempt=attempt,
            amount=story.payment.amount, ref=charge.id, data=raw, message="via capture",
        )  # fmt: skip
        self.webhook(story, later, "payment.captured", self.snapshot(charge), attempt=attempt)
        story.audit.append(
            self.audit_row(later, "admin.capture", story.payment, amount=story.payment.amount)
        )
        return later

    def after_capture(
        self,
        story: _Story,
        at: dt.datetime,
        attempt: int,
        *,
        charge: SandboxCharge | None = None,
        transfer: BankTransfer | None = None,
    ) -> None:
        """Refunds (partial, full, the odd failure) and disputes of a captured payment."""
        rng = self.rng
        payment = story.payment
        roll = rng.random()
        plans: list[Decimal] = []
        quantum = Decimal(1).scaleb(-currency_exponent(payment.currency))
        if roll < 0.035:
            plans = [payment.amount]
        elif roll < 0.055:
            first = (payment.amount * Decimal(rng.uniform(0.2, 0.6))).quantize(quantum)
            plans = [first, payment.amount - first] if first > 0 else [payment.amount]
        elif roll < 0.125:
            part = (payment.amount * Decimal(rng.uniform(0.1, 0.5))).quantize(quantum)
            plans = [part] if part > 0 else []
        when = at
        refunded = Decimal(0)
        for amount in plans:
            when = when + rng.seconds(3600, 12 * 86400)
            if when >= self.now - dt.timedelta(minutes=5):
                break
            failed = charge is not None and rng.random() < 0.03
            self.refund(
                story, when, attempt, amount, charge=charge, transfer=transfer, failed=failed
            )
            if failed:
                break
            refunded += amount
        if charge is not None and refunded < payment.amount and rng.random() < 0.006:
            self.dispute(story, at + rng.seconds(86400 * 3, 86400 * 40), attempt, charge)

    def refund(
        self,
        story: _Story,
        at: dt.datetime,
        attempt: int,
        amount: Decimal,
        *,
        charge: SandboxCharge | None,
        transfer: BankTransfer | None,
        failed: bool,
    ) -> None:
        rng = self.rng
        payment = story.payment
        (reason, _) = rng.weighted(REFUND_REASONS)
        by_staff = rng.random() < 0.7
        refund = Refund(
            id=self._id("re"),
            payment_id=payment.pk,
            amount=amount,
            currency=payment.currency,
            reason=reason,
            processed_by=self.staff if by_staff else None,
        )
        key = f"paydesk:{refund.pk}:refund"
        done = at + rng.seconds(0.3, 2.5)
        story.add(
            at, LedgerKind.REFUND_REQUESTED, f"refund:{refund.pk}:requested", attempt=attempt,
            amount=amount, ref=refund.pk, refund=refund, message=reason,
        )  # fmt: skip
        if failed:
            message = "Refund amount exceeds what remains of the charge."
            refund.failure_code = "invalid_request"
            refund.failure_message = message
            story.add(
                done, LedgerKind.REFUND_FAILED, f"refund:{refund.pk}:failed", attempt=attempt,
                ref=refund.pk, refund=refund, message=message,
            )  # fmt: skip
        elif charge is not None:
            record = {
                "id": f"re_sb_{rng.hex(20)}",
                "amount": str(amount),
                "currency": payment.currency,
                "reason": reason,
                "status": "succeeded",
            }
            charge.refunds = {**(charge.refunds or {}), key: record}
            charge.refunded_amount = (charge.refunded_amount or Decimal(0)) + amount
            refund.provider_refund_id = record["id"]
            refund.provider_response = record
            self.webhook(
                story, done - dt.timedelta(milliseconds=300), "refund.succeeded",
                self.snapshot(charge), attempt=attempt,
                extra={"refund": record, "refund_id": refund.pk},
            )  # fmt: skip
            story.add(
                done, LedgerKind.REFUND_COMPLETED, f"refund:{refund.pk}:completed",
                attempt=attempt, amount=amount, ref=refund.pk, refund=refund, data=record,
                message=reason,
            )  # fmt: skip
        else:
            assert transfer is not None
            number = len(transfer.refunds) + 1
            record = {
                "id": f"manual-{transfer.reference}" + ("" if number == 1 else f"-{number}"),
                "refund_id": refund.pk,
                "reference": transfer.reference,
                "amount": str(amount),
                "currency": payment.currency,
                "reason": reason,
                "refunded_by": self.staff_name if by_staff else "",
                "refunded_by_id": getattr(self.staff, "pk", None) if by_staff else None,
                "manual": True,
                "note": "Recorded only: send the money back from the bank account by hand.",
                "created_at": done.isoformat(),
            }
            transfer.refunds = {**transfer.refunds, key: record}
            transfer.updated_at = done
            refund.provider_refund_id = record["id"]
            refund.provider_response = record
            story.add(
                done, LedgerKind.REFUND_COMPLETED, f"refund:{refund.pk}:completed",
                attempt=attempt, amount=amount, ref=refund.pk, refund=refund, data=record,
                message=reason,
            )  # fmt: skip
        refund.processed_at = None if failed else done
        _patch_times(refund, at, done)
        story.refunds.append(refund)
        if by_staff:
            story.audit.append(
                self.audit_row(
                    at, "admin.refund", payment, amount=amount, success=not failed,
                    details={"refund_id": refund.pk, "reason": reason},
                )
            )  # fmt: skip

    def dispute(self, story: _Story, at: dt.datetime, attempt: int, charge: SandboxCharge) -> None:
        if at >= self.now:
            return
        payment = story.payment
        record = {
            "id": f"dp_sb_{self.rng.hex(20)}",
            "amount": str(payment.amount),
            "currency": payment.currency,
            "reason": self.rng.choice(DISPUTE_REASONS),
            "status": "needs_response",
        }
        for state, when in (
            ("opened", at),
            ("closed", at + self.rng.seconds(86400 * 7, 86400 * 30)),
        ):
            if when >= self.now:
                break
            data = dict(record, status="needs_response" if state == "opened" else "won")
            event = "dispute.created" if state == "opened" else "dispute.closed"
            self.webhook(
                story, when, event, self.snapshot(charge), attempt=attempt, extra={"dispute": data}
            )
            story.add(
                when + dt.timedelta(milliseconds=5),
                LedgerKind.DISPUTE_OPENED if state == "opened" else LedgerKind.DISPUTE_CLOSED,
                f"dispute:{record['id']}:{state}", attempt=attempt, amount=payment.amount,
                ref=record["id"], data=data, message=record["reason"],
            )  # fmt: skip

    # -- bank transfers ------------------------------------------------------------------

    def transfer_story(self, story: _Story, email: str, ip: str) -> None:
        rng = self.rng
        payment = story.payment
        at = payment.created_at + rng.seconds(0.2, 1.5)
        self.screen(story, at, 1, email, ip, "allow")  # bank transfers are screened too
        story.add(at, LedgerKind.SUBMITTED, "attempt-1:submitted", message="sent to the provider")
        reference = self._reference()
        expires = at + dt.timedelta(hours=72)
        transfer = BankTransfer(
            payment_id=payment.pk,
            reference=reference,
            idempotency_key=f"paydesk:{payment.pk}:attempt-1:create",
            amount=payment.amount,
            currency=payment.currency,
            bank_details={
                "account_holder": "Paydesk Demo Shop Ltd",
                "iban": "DE89 3704 0044 0532 0130 00",
                "bic": "COBADEFFXXX",
                "bank_name": "Demo Bank",
                "account_number": "",
                "instructions": "Demo only: do not send real money.",
            },
            status="awaiting_transfer",
            expires_at=expires,
            refunds={},
        )
        _patch_times(transfer, at)
        story.transfer = transfer
        payment.provider_payment_id = reference
        raw = {
            "reference": reference,
            "status": "awaiting_transfer",
            "amount": str(payment.amount),
            "currency": payment.currency,
            "expires_at": expires.isoformat(),
        }
        story.add(
            at, LedgerKind.REQUIRES_ACTION, "attempt-1:requires_action", data=raw,
            message="via process",
        )  # fmt: skip
        story.next_action = {
            "type": "redirect",
            "redirect_url": reverse("paydesk:bank-transfer", args=[payment.pk]),
        }
        roll = rng.random()
        decided = at + rng.seconds(2 * 3600, 60 * 3600)
        if roll < 0.8 and decided < self.now:
            if rng.random() < 0.6:  # the customer uploaded a receipt first
                uploaded = at + (decided - at) * rng.uniform(0.2, 0.8)
                transfer.receipt.name = self.receipt_name
                transfer.receipt_content_type = "application/pdf"
                transfer.receipt_size = len(_receipt_pdf("PD-XXXX-XXXX", "0", "EUR"))
                transfer.receipt_uploaded_at = uploaded
                story.add(
                    uploaded, LedgerKind.NOTE, f"eft:receipt:{uploaded.timestamp():.6f}:0",
                    data={"reference": reference, "receipt": self.receipt_name},
                    message="receipt uploaded by the customer",
                )  # fmt: skip
                story.audit.append(
                    self.audit_row(
                        uploaded, "eft_receipt_uploaded", payment, actor="anonymous",
                        details={"reference": reference, "receipt": self.receipt_name,
                                 "content_type": "application/pdf", "replaced": ""},
                    )
                )  # fmt: skip
            transfer.decided_by = self.staff
            transfer.decided_at = decided
            transfer.updated_at = decided
            story.next_action = None
            if roll < 0.72:
                transfer.status = "approved"
                raw = {"reference": reference, "status": "approved",
                       "approved_by": self.staff_name, "note": ""}  # fmt: skip
                for kind, key in (
                    (LedgerKind.AUTHORIZATION, f"authorization:{reference}"),
                    (LedgerKind.CAPTURE, f"capture:{reference}"),
                ):
                    story.add(
                        decided, kind, key, amount=payment.amount, ref=reference, data=raw,
                        message="via eft_approval",
                    )  # fmt: skip
                story.audit.append(
                    self.audit_row(
                        decided, "eft_approved", payment, amount=payment.amount,
                        details={"reference": reference, "transfer_id": None, "note": ""},
                    )
                )  # fmt: skip
                self.after_capture(story, decided, 1, transfer=transfer)
            else:
                reason = rng.choice(TRANSFER_REJECTIONS)
                transfer.status = "rejected"
                transfer.reason = reason
                self.fail(
                    story, decided, 1, "transfer_rejected", rejection_message(reason),
                    {"reference": reference, "status": "rejected",
                     "rejected_by": self.staff_name, "reason": reason},
                )  # fmt: skip
                story.audit.append(
                    self.audit_row(
                        decided, "eft_rejected", payment, amount=payment.amount,
                        details={"reference": reference, "transfer_id": None, "reason": reason},
                    )
                )  # fmt: skip
        elif expires < self.now:
            moment = expires + rng.seconds(60, 3600)
            if moment >= self.now:
                return
            transfer.status = "expired"
            transfer.decided_at = moment
            transfer.updated_at = moment
            transfer.reason = f"No transfer arrived by {expires:%Y-%m-%d %H:%M} UTC."
            story.next_action = None
            story.add(
                moment, LedgerKind.CANCELLATION, f"cancellation:{reference}",
                data={"reference": reference, "status": "expired", "reason": transfer.reason},
                message="via eft_expiry",
            )  # fmt: skip
            story.audit.append(
                self.audit_row(
                    moment, "eft_expired", payment, actor=None, amount=payment.amount,
                    details={"reference": reference, "transfer_id": None,
                             "reason": transfer.reason},
                )
            )  # fmt: skip
        # otherwise: still awaiting the transfer, and staff may approve it

    # -- webhook refusals (signature failures) --------------------------------------------

    def signature_failures(self) -> None:
        """A handful of refused deliveries in the audit log (a rotated secret, a scanner)."""
        for _ in range(6):
            at = self.now - self.rng.seconds(3600, 20 * 86400)
            self.extra_audit.append(
                AuditLog(
                    created_at=at,
                    actor_label=f"webhook:{self.rng.choice(sorted(SANDBOX_ALIASES))}",
                    action="webhook",
                    object_type="webhook_event",
                    object_id="",
                    provider="sandbox",
                    success=False,
                    ip_address=f"198.51.100.{self.rng.randint(1, 254)}",
                    details={"event_type": "", "reason": "invalid_signature"},
                )
            )

    # -- the payment row -----------------------------------------------------------------

    def finish(self, story: _Story) -> None:
        payment = story.payment
        story.ledger.sort(key=lambda row: row.created_at)
        state = fold(story.facts())
        payment.status = state.status
        payment.attempt = state.attempt
        payment.authorized_amount = state.authorized
        payment.captured_amount = state.captured
        payment.refunded_amount = state.refunded
        payment.refund_reserved_amount = state.refund_reserved
        last = story.ledger[-1].created_at
        payment.updated_at = last
        money = [
            r.created_at
            for r in story.ledger
            if r.kind in (LedgerKind.AUTHORIZATION, LedgerKind.CAPTURE)
        ]
        if money:
            payment.processed_at = min(money)
        if state.status == PaymentStatus.CANCELLED:
            payment.cancelled_at = max(
                r.created_at for r in story.ledger if r.kind == LedgerKind.CANCELLATION
            )
        payment.next_action = (
            story.next_action if state.status == PaymentStatus.REQUIRES_ACTION else None
        )
        if story.failure and not (state.captured > 0 or state.status == PaymentStatus.AUTHORIZED):
            payment.failure_code, payment.failure_message = story.failure
        facts = story.facts()
        for refund in story.refunds:
            refund.status = fold_refund(facts, refund.pk)
        for row in story.audit:
            if row.action in ("eft_approved", "eft_rejected", "eft_expired"):
                row.details["transfer_id"] = None  # patched after the transfers are inserted


# -- writing -------------------------------------------------------------------------------


@contextmanager
def _backdated(*model_classes: type[models.Model]) -> Iterator[None]:
    """Let ``bulk_create`` keep the given ``created_at``/``updated_at`` values.

    ``auto_now``/``auto_now_add`` make ``pre_save`` overwrite them with the current time,
    even in ``bulk_create``. They are turned off for the duration and always restored. Not
    thread-safe; the seed runs in a management command (or a test) on its own.
    """
    saved: list[tuple[models.DateTimeField, bool, bool]] = []
    try:
        for model in model_classes:
            for f in model._meta.concrete_fields:
                if isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add):
                    saved.append((f, f.auto_now, f.auto_now_add))
                    f.auto_now = f.auto_now_add = False
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def _receipt_pdf(reference: str, amount: str, currency: str) -> bytes:
    """A one-page PDF that looks enough like a bank's transfer confirmation."""
    text = f"Demo Bank - transfer confirmation - {reference} - {amount} {currency}"
    stream = f"BT /F1 14 Tf 50 780 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def receipt_file(reference: str, amount: str, currency: str) -> ContentFile[bytes]:
    """An uploadable receipt (what ``seed_demo`` hands to ``services.eft.record_receipt``)."""
    return ContentFile(_receipt_pdf(reference, amount, currency), name="receipt.pdf")


def seed_history(
    *,
    staff: Any = None,
    now: dt.datetime | None = None,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
) -> HistoryReport:
    """Write the history unless it exists; see the module docstring."""
    if history_exists():
        return HistoryReport(created=False)
    now = now or timezone.now()
    builder = _Builder(now=now, seed=seed, days=days, staff=staff)
    # One shared receipt file for the decided transfers of the history (they are closed, so
    # no upload can replace, and delete, it).
    builder.receipt_name = "paydesk/receipts/demo/history-receipt.pdf"
    builder.build()
    stories = builder.stories

    with transaction.atomic():
        # The history's blocked payments came from this domain; the demo's blocklist rule
        # refuses it from now on too.
        BlocklistEntry.objects.get_or_create(
            kind=BlocklistKind.EMAIL_DOMAIN,
            value=BLOCKED_DOMAIN,
            defaults={"reason": "Disposable addresses seen in card testing.", "created_by": staff},
        )
        if not default_storage.exists(builder.receipt_name):
            default_storage.save(
                builder.receipt_name, receipt_file("PD-DEMO-HIST", "260.00", "EUR")
            )
        with _backdated(Payment, Refund, WebhookEvent, TransactionLog, FraudAssessment,
                        BankTransfer, AuditLog, SandboxCharge):  # fmt: skip
            Payment.objects.bulk_create([s.payment for s in stories], batch_size=BATCH)
            transfers = [s.transfer for s in stories if s.transfer is not None]
            BankTransfer.objects.bulk_create(transfers, batch_size=BATCH)
            Refund.objects.bulk_create([r for s in stories for r in s.refunds], batch_size=BATCH)
            deliveries = sorted(
                (w for s in stories for w in s.webhooks), key=lambda w: w.created_at
            )
            WebhookEvent.objects.bulk_create(deliveries, batch_size=BATCH)
            for story in stories:
                for row, delivery in story.delivery_links:
                    row.provider_data["delivery"] = delivery.pk
            ledger = sorted((r for s in stories for r in s.ledger), key=lambda r: r.created_at)
            TransactionLog.objects.bulk_create(ledger, batch_size=BATCH)
            checks = [c for s in stories for c, _ in s.check_rows]
            FraudCheck.objects.bulk_create(checks, batch_size=BATCH)
            hits = []
            for story in stories:
                for check, rule_hits in story.check_rows:
                    for hit in rule_hits:
                        hit.fraud_check_id = check.pk
                        hits.append(hit)
            FraudRuleHit.objects.bulk_create(hits, batch_size=BATCH)
            FraudAssessment.objects.bulk_create(
                [s.assessment for s in stories if s.assessment is not None], batch_size=BATCH
            )
            charges = [c for s in stories for c in s.charges]
            SandboxCharge.objects.bulk_create(charges, batch_size=BATCH)
            audit = []
            for story in stories:
                for entry in story.audit:
                    if "transfer_id" in entry.details and story.transfer is not None:
                        entry.details["transfer_id"] = story.transfer.pk
                    audit.append(entry)
            audit += builder.extra_audit
            audit.sort(key=lambda entry: entry.created_at)
            AuditLog.objects.bulk_create(audit, batch_size=BATCH)

    report = HistoryReport(created=True, payments=len(stories))
    for story in stories:
        p = story.payment
        report.statuses[p.status] += 1
        report.currencies[p.currency] += 1
        report.providers[p.provider] += 1
        report.refunds += len(story.refunds)
        report.disputes += sum(1 for r in story.ledger if r.kind == LedgerKind.DISPUTE_OPENED)
        for check, _ in story.check_rows:
            report.fraud_checks[check.decision] += 1
        if story.transfer is not None:
            report.bank_transfers[story.transfer.status] += 1
        for delivery in story.webhooks:
            report.webhooks[delivery.status] += 1
    report.ledger_rows = len(ledger)
    report.audit_entries = len(audit)
    report.first = stories[0].payment.created_at if stories else None
    report.last = stories[-1].payment.created_at if stories else None
    return report
