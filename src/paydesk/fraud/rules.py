"""paydesk's built-in fraud rules.

This module owns one decision: what each built-in rule counts and when it fires. Every rule
asks the database (never a cache or process memory), so its answer is the same on every
worker; the velocity rule's counts are also exact under concurrency, because screening
locks its keys before it counts (see ``paydesk.services.fraud``).

=====================  ============================================================  =====
alias                  fires when                                                    score
=====================  ============================================================  =====
``velocity``           ``limit`` or more attempts by the same user / email / IP /     50
                       card fingerprint (``by``) in the last ``window`` seconds
``amount_limit``       the amount is above ``limits[currency]``                       50
``failed_attempts``    the last ``count`` finished payments of this user / email /    50
                       IP / card (``by``) all failed, counting earlier failed
                       attempts of this payment
``country_mismatch``   the card's (BIN) country differs from the IP's or the          30
                       billing country (``pairs``)
``blocklist``          the email, its domain, the IP or the card fingerprint is on    100,
                       the blocklist (admin: Paydesk > Blocklist)                     block
``first_purchase``     no earlier successful payment by this user (guests: email)     40
                       and the amount is above ``thresholds[currency]``
=====================  ============================================================  =====
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q
from django.utils import timezone

from ..exceptions import ConfigurationError
from ..money import Money
from .base import FraudContext, Rule, RuleHit

__all__ = [
    "BUILTIN_RULES",
    "AmountLimitRule",
    "BlocklistRule",
    "CountryMismatchRule",
    "FailedAttemptsRule",
    "FirstPurchaseRule",
    "VelocityRule",
]

#: FraudCheck columns a velocity-style rule counts on, by the ``by`` option.
_CHECK_FIELDS = {
    "user": "user_id",
    "email": "email",
    "ip": "ip_address",
    "card": "card_fingerprint",
}
_LABELS = {"user": "user", "email": "email address", "ip": "IP address", "card": "card"}
# A payment in one of these has not finished: it neither succeeded nor failed yet.
_UNFINISHED = ("pending", "requires_action", "processing")


def _by(rule: str, by: str) -> str:
    if by not in _CHECK_FIELDS:
        raise ConfigurationError(
            f"Fraud rule {rule!r}: by must be one of {', '.join(_CHECK_FIELDS)}, not {by!r}."
        )
    return by


def _seconds(rule: str, window: Any) -> int:
    seconds = int(window.total_seconds()) if isinstance(window, dt.timedelta) else int(window)
    if seconds <= 0:
        raise ConfigurationError(f"Fraud rule {rule!r}: window must be a positive number.")
    return seconds


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _amounts(rule: str, option: str, values: Mapping[str, Any]) -> dict[str, Money]:
    """``{"USD": "1000"}`` as exact ``Money`` per currency; floats are refused."""
    if not isinstance(values, Mapping) or not values:
        raise ConfigurationError(
            f'Fraud rule {rule!r}: {option} must be a dict such as {{"USD": "1000.00"}}.'
        )
    out: dict[str, Money] = {}
    for currency, amount in values.items():
        if isinstance(amount, float):
            raise ConfigurationError(
                f"Fraud rule {rule!r}: {option}[{currency!r}] is a float; write it as a string "
                'such as "1000.00".'
            )
        try:
            out[str(currency).upper()] = Money(Decimal(str(amount)), str(currency).upper())
        except (InvalidOperation, ValueError) as exc:
            raise ConfigurationError(
                f"Fraud rule {rule!r}: {option}[{currency!r}] = {amount!r} is not an amount "
                f"in {currency} ({exc})."
            ) from exc
    return out


def _key(by: str, value: Any) -> str:
    return f"{by}:{value}"


class VelocityRule(Rule):
    """Too many attempts by one user, email, IP or card in a sliding window.

    Counts earlier screened attempts (``FraudCheck`` rows), whatever their decision: a
    card-testing run that keeps getting blocked keeps counting. Exact under concurrency.
    """

    name = "velocity"

    def __init__(
        self,
        *,
        by: str = "user",
        limit: int = 5,
        window: int | dt.timedelta = 3600,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or f"velocity_{by}", **kwargs)
        self.by = _by(self.rule_name, by)
        self.limit = int(limit)
        if self.limit < 1:
            raise ConfigurationError(f"Fraud rule {self.rule_name!r}: limit must be at least 1.")
        self.window = _seconds(self.rule_name, window)

    def lock_keys(self, context: FraudContext) -> Iterable[str]:
        value = context.identifier(self.by)
        return [_key(self.by, value)] if value else []

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        from ..models import FraudCheck

        value = context.identifier(self.by)
        if not value:
            return None
        now = context.now or timezone.now()
        since = now - dt.timedelta(seconds=self.window)
        count = FraudCheck.objects.filter(
            **{_CHECK_FIELDS[self.by]: value, "created_at__gte": since}
        ).count()
        if count < self.limit:
            return None
        return self.hit(
            f"{count} earlier attempts by this {_LABELS[self.by]} in the last "
            f"{_duration(self.window)} (limit {self.limit})."
        )


class AmountLimitRule(Rule):
    """The amount is above the limit set for its currency (currencies not listed pass)."""

    name = "amount_limit"

    def __init__(self, *, limits: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = _amounts(self.rule_name, "limits", limits)

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        limit = self.limits.get(context.amount.currency)
        if limit is None or context.amount.amount <= limit.amount:
            return None
        return self.hit(f"{context.amount} is above the limit of {limit}.")


class FailedAttemptsRule(Rule):
    """Many failed attempts in a row by one user, email, IP or card.

    The streak is this payment's earlier failed attempts (a retry follows a failure) plus
    the most recent finished payments of the same identifier, newest first, up to the first
    one that did not fail, within ``window`` seconds.
    """

    name = "failed_attempts"

    def __init__(
        self,
        *,
        by: str = "user",
        count: int = 3,
        window: int | dt.timedelta = 86400,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or f"failed_attempts_{by}", **kwargs)
        self.by = _by(self.rule_name, by)
        self.count = int(count)
        if self.count < 1:
            raise ConfigurationError(f"Fraud rule {self.rule_name!r}: count must be at least 1.")
        self.window = _seconds(self.rule_name, window)

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        from ..models import FraudCheck, Payment

        value = context.identifier(self.by)
        streak = max(context.attempt - 1, 0)
        if value and streak < self.count:
            since = (context.now or timezone.now()) - dt.timedelta(seconds=self.window)
            if self.by == "user":
                payments = Payment.objects.filter(user_id=value, created_at__gte=since)
            else:
                checked = FraudCheck.objects.filter(
                    **{_CHECK_FIELDS[self.by]: value, "created_at__gte": since}
                ).values("payment_id")
                payments = Payment.objects.filter(pk__in=checked)
            statuses = (
                payments.exclude(pk=context.payment.pk)
                .exclude(status__in=_UNFINISHED)
                .order_by("-created_at")
                .values_list("status", flat=True)[: self.count - streak]
            )
            for status in statuses:
                if status != "failed":
                    break
                streak += 1
        if streak < self.count:
            return None
        return self.hit(
            f"{streak} failed attempts in a row by this {_LABELS[self.by]} (limit {self.count})."
        )


class CountryMismatchRule(Rule):
    """The card's country differs from the IP's or the billing country.

    ``pairs`` names what to compare (default ``["card:ip", "card:billing"]``; also
    ``"ip:billing"``). A pair with an unknown side is skipped. Fires once, listing every
    mismatch.
    """

    name = "country_mismatch"
    default_score = 30
    _SIDES = ("card", "ip", "billing")

    def __init__(
        self, *, pairs: Iterable[str] = ("card:ip", "card:billing"), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pairs: list[tuple[str, str]] = []
        for pair in pairs:
            left, _, right = str(pair).partition(":")
            if left not in self._SIDES or right not in self._SIDES or left == right:
                raise ConfigurationError(
                    f"Fraud rule {self.rule_name!r}: pair {pair!r} must be two of "
                    f"{', '.join(self._SIDES)} joined by ':' (e.g. 'card:ip')."
                )
            self.pairs.append((left, right))

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        countries = {
            "card": context.card_country,
            "ip": context.ip_country,
            "billing": context.billing_country,
        }
        found = [
            f"{left} country {countries[left]} vs {right} country {countries[right]}"
            for left, right in self.pairs
            if countries[left] and countries[right] and countries[left] != countries[right]
        ]
        if not found:
            return None
        return self.hit("Country mismatch: " + "; ".join(found) + ".")


class BlocklistRule(Rule):
    """The email, its domain, the IP (or a network holding it) or the card is blocklisted.

    One query: exact matches for emails, domains and fingerprints, and every active IP
    network entry (matched here, so IPv4 and IPv6 networks work on every database).
    """

    name = "blocklist"
    default_score = 100
    default_action = "block"

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        from ..models import BlocklistEntry, BlocklistKind

        now = context.now or timezone.now()
        wanted = Q(kind=BlocklistKind.IP_NETWORK) if context.ip_address else Q()
        if context.email:
            wanted |= Q(kind=BlocklistKind.EMAIL, value=context.email)
            domain = context.email.rpartition("@")[2]
            if domain:
                wanted |= Q(kind=BlocklistKind.EMAIL_DOMAIN, value=domain)
        if context.card_fingerprint:
            wanted |= Q(kind=BlocklistKind.CARD_FINGERPRINT, value=context.card_fingerprint)
        if not wanted:
            return None
        entries = (
            BlocklistEntry.objects.filter(is_active=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .filter(wanted)
            .values_list("kind", "value")
        )
        address = ipaddress.ip_address(context.ip_address) if context.ip_address else None
        matched = []
        for kind, value in entries:
            if kind == BlocklistKind.IP_NETWORK:
                try:
                    network = ipaddress.ip_network(value, strict=False)
                except ValueError:
                    continue
                if address is None or address.version != network.version:
                    continue
                if address not in network:
                    continue
            matched.append(f"{BlocklistKind(kind).label} {value}")
        if not matched:
            return None
        return self.hit("Blocklisted: " + ", ".join(sorted(matched)) + ".")


class FirstPurchaseRule(Rule):
    """A customer's first successful payment is above the threshold for its currency."""

    name = "first_purchase"
    default_score = 40

    def __init__(self, *, thresholds: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.thresholds = _amounts(self.rule_name, "thresholds", thresholds)

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        from ..models import Payment

        threshold = self.thresholds.get(context.amount.currency)
        if threshold is None or context.amount.amount <= threshold.amount:
            return None
        if context.user_id is not None:
            earlier = Payment.objects.filter(user_id=context.user_id)
        elif context.email:
            earlier = Payment.objects.filter(customer_email__iexact=context.email)
        else:
            earlier = None  # an anonymous guest has no history to trust
        if (
            earlier is not None
            and earlier.exclude(pk=context.payment.pk).filter(captured_amount__gt=0).exists()
        ):
            return None
        return self.hit(
            f"First purchase of {context.amount}, above the first-purchase threshold of "
            f"{threshold}."
        )


BUILTIN_RULES: dict[str, type[Rule]] = {
    "velocity": VelocityRule,
    "amount_limit": AmountLimitRule,
    "failed_attempts": FailedAttemptsRule,
    "country_mismatch": CountryMismatchRule,
    "blocklist": BlocklistRule,
    "first_purchase": FirstPurchaseRule,
}
