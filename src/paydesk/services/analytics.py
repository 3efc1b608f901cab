"""Payment analytics: aggregate reports computed in the database, per currency.

This module owns one decision: what each reported figure means and how it is computed.
Every report is a fixed handful of aggregate queries (conditional aggregates grouped by
currency, date truncation for time series, a median aggregate), so its cost does not grow
with the number of rows Python sees and its query count does not grow with the data; no row
is ever loaded one by one. Money is never summed across currencies: every figure is per
currency, and a total in another currency exists only where a caller asks for a conversion
(``convert_to``), with the rate and its date stated.

Definitions (``start`` inclusive, ``end`` exclusive; a ``date`` for ``end`` includes that
whole day, in the current time zone):

* Payment figures are about the payments *created* in the range: ``payments`` all of them;
  ``attempted`` those sent to a provider at least once (status other than ``pending``);
  ``successful`` those whose money was captured (``completed``, ``partially_refunded``,
  ``refunded``); ``failed`` those whose last attempt failed. ``success_rate`` is
  successful / attempted. ``gross_volume`` is what they captured, ``refunded`` what has
  been refunded of them since, ``net_revenue`` the difference, ``fees`` their processing
  fees, ``average_order_value`` gross volume / successful, ``refund_rate`` the share of
  successful payments with a completed refund.
* Refund figures are about the refunds *requested* in the range (whenever their payment
  was made): counts by status, the completed amount, the average time from request to
  completion, and the most frequent reasons.
* ``disputes`` counts disputes *opened* in the range (``dispute_opened`` ledger entries).
* Performance: per provider or per saved-method type, ``median_time_to_complete`` is the
  median of ``processed_at - created_at`` over successful payments (PostgreSQL's
  ``percentile_cont``; on SQLite a median aggregate registered on the connection).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DateField,
    DurationField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    QuerySet,
    Sum,
    When,
    Window,
)
from django.db.models.functions import RowNumber, Trunc
from django.utils import timezone

from ..conf import paydesk_settings
from ..exceptions import PaymentValidationError
from ..models import (
    FraudAssessment,
    FraudCheck,
    FraudRuleHit,
    Payment,
    Refund,
    ReviewStatus,
    TransactionLog,
)
from ..money import Money, currency_exponent
from ..states import LedgerKind, PaymentStatus, RefundStatus

__all__ = [
    "INTERVALS",
    "CurrencySummary",
    "FraudReport",
    "Median",
    "PerformanceRow",
    "RefundStats",
    "SeriesPoint",
    "Summary",
    "TimeSeries",
    "fraud_report",
    "performance",
    "summary",
    "time_series",
]

INTERVALS = ("day", "week", "month")
PERFORMANCE_KEYS = {"provider": "provider", "method_type": "payment_method__type"}

SUCCESSFUL = (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
_RATE_PLACES = Decimal("0.0001")


# -- the median aggregate -------------------------------------------------------------------


class _SQLiteMedian:
    """``PAYDESK_MEDIAN(x)`` for SQLite: the median of the non-NULL values (mean of the two
    middle ones for an even count, as PostgreSQL's ``percentile_cont(0.5)``)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: Any) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> Any:
        if not self.values:
            return None
        values = sorted(self.values)
        middle = len(values) // 2
        if len(values) % 2:
            return values[middle]
        return (values[middle - 1] + values[middle]) / 2


class Median(Aggregate):
    """The median of an expression, computed by the database.

    PostgreSQL (and Oracle): ``PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x)``, which also
    takes intervals. SQLite has no median, so paydesk registers ``PAYDESK_MEDIAN`` on the
    connection the first time it is used there. To restrict the rows, wrap the expression
    in ``Case(When(condition, then=expression))`` (NULLs are ignored) rather than passing
    ``filter=``, which not every backend can put after ``WITHIN GROUP``.
    """

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        connection.ensure_connection()
        raw = connection.connection
        if isinstance(raw, sqlite3.Connection):
            raw.create_aggregate("PAYDESK_MEDIAN", 1, _SQLiteMedian)
        return self.as_sql(
            compiler,
            connection,
            function="PAYDESK_MEDIAN",
            template="%(function)s(%(expressions)s)",
            **extra_context,
        )


# -- results ------------------------------------------------------------------------------


def _rows(queryset: Any) -> list[dict[str, Any]]:
    """A ``values()`` queryset's rows as plain dicts (one query)."""
    return [dict(row) for row in queryset]


@functools.lru_cache(maxsize=256)
def _quantum(currency: str) -> tuple[Decimal, Money]:
    return Decimal(1).scaleb(-currency_exponent(currency)), Money.zero(currency)


def _money(value: Decimal | None, currency: str) -> Money:
    """A database sum as ``Money``, rounded half-even to the currency's exponent.

    Exact on PostgreSQL (sums of exact amounts); on SQLite, where sums are binary floats,
    the rounding removes their last-digit noise.
    """
    quantum, zero = _quantum(currency)
    if not value:
        return zero
    return Money(Decimal(value).quantize(quantum, ROUND_HALF_EVEN), currency)


def _net(gross: Money, refunded: Money) -> Money:
    return Money(gross.amount - refunded.amount, gross.currency)


def _ratio(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_RATE_PLACES, ROUND_HALF_EVEN)


def _seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Money):
        return str(value.amount)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return _seconds(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return value


class _Result:
    """``as_dict()``: JSON-ready (amounts and rates as strings, durations in seconds)."""

    def as_dict(self) -> dict[str, Any]:
        names = self.__dataclass_fields__  # type: ignore[attr-defined]
        return {name: _jsonable(getattr(self, name)) for name in names}


@dataclass(frozen=True)
class ReasonCount(_Result):
    reason: str
    count: int
    amount: Money


@dataclass(frozen=True)
class RefundStats(_Result):
    count: int = 0
    completed: int = 0
    pending: int = 0
    failed: int = 0
    amount: Money | None = None  # completed refunds
    average_processing_time: dt.timedelta | None = None
    reasons: list[ReasonCount] = field(default_factory=list)


@dataclass(frozen=True)
class CurrencySummary(_Result):
    currency: str
    payments: int
    attempted: int
    successful: int
    failed: int
    success_rate: Decimal | None
    gross_volume: Money
    refunded: Money
    net_revenue: Money
    fees: Money
    average_order_value: Money | None
    refund_rate: Decimal | None
    failures: dict[str, int]
    refunds: RefundStats
    disputes: int


@dataclass(frozen=True)
class Converted(_Result):
    """Totals of several currencies in one, at stated rates (``rates[code]``: 1 code = rate)."""

    currency: str
    rate_date: dt.date | None
    rates: dict[str, Decimal]
    rate_dates: dict[str, dt.date]
    gross_volume: Money
    refunded: Money
    net_revenue: Money
    fees: Money


@dataclass(frozen=True)
class Summary(_Result):
    start: dt.datetime
    end: dt.datetime
    filters: dict[str, str]
    currencies: list[CurrencySummary]
    converted: Converted | None = None

    def __getitem__(self, currency: str) -> CurrencySummary:
        for entry in self.currencies:
            if entry.currency == currency.upper():
                return entry
        raise KeyError(currency)


@dataclass(frozen=True)
class SeriesPoint(_Result):
    period: dt.date
    payments: int
    attempted: int
    successful: int
    success_rate: Decimal | None
    gross_volume: Money
    refunded: Money
    net_revenue: Money
    fees: Money


@dataclass(frozen=True)
class TimeSeries(_Result):
    start: dt.datetime
    end: dt.datetime
    interval: str
    filters: dict[str, str]
    series: dict[str, list[SeriesPoint]]  # by currency, every period present (zeros filled)


@dataclass(frozen=True)
class PerformanceRow(_Result):
    key: str  # the provider alias or the saved method's type ("" when no saved method)
    currency: str
    attempted: int
    successful: int
    success_rate: Decimal | None
    gross_volume: Money
    median_time_to_complete: dt.timedelta | None


@dataclass(frozen=True)
class FraudReport(_Result):
    start: dt.datetime
    end: dt.datetime
    checks: int
    decisions: dict[str, int]  # allow / review / block
    blocked_volume: dict[str, Money]  # by currency
    by_rule: dict[str, dict[str, int]]  # rule -> {decision: hits}
    review_queue: int
    oldest_held_for: dt.timedelta | None
    approved: int  # staff decisions in the range
    rejected: int
    false_positive_rate: Decimal | None  # approved / (approved + rejected)
    provider_flagged: int  # assessments created in the range that a provider flagged


# -- filters ------------------------------------------------------------------------------


def _moment(value: dt.datetime | dt.date | str, *, end: bool, name: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = (
                dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
            )
        except ValueError:
            raise PaymentValidationError(
                f"{name} must be a date (2026-01-31) or an ISO 8601 date-time.", field=name
            ) from None
    try:
        if isinstance(value, dt.datetime):
            return value if timezone.is_aware(value) else timezone.make_aware(value)
        day = value + dt.timedelta(days=1) if end else value
        return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    except (OverflowError, ValueError):
        raise PaymentValidationError(
            f"{name} is out of the range of dates paydesk can report on.", field=name
        ) from None


def _range(
    start: dt.datetime | dt.date | str, end: dt.datetime | dt.date | str
) -> tuple[dt.datetime, dt.datetime]:
    begin = _moment(start, end=False, name="start")
    finish = _moment(end, end=True, name="end")
    if finish <= begin:
        raise PaymentValidationError("end must be after start.", field="end")
    limit = int(paydesk_settings.ANALYTICS["MAX_RANGE_DAYS"])
    if finish - begin > dt.timedelta(days=limit):
        raise PaymentValidationError(
            f"A report covers at most {limit} days (PAYDESK['ANALYTICS']['MAX_RANGE_DAYS']); "
            "ask for a shorter range.",
            field="end",
        )
    return begin, finish


@dataclass(frozen=True)
class _Filters:
    provider: str | None = None
    method_type: str | None = None
    currency: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def q(self, prefix: str = "") -> Q:
        conditions = Q()
        if self.provider:
            conditions &= Q(**{f"{prefix}provider": self.provider})
        if self.method_type:
            conditions &= Q(**{f"{prefix}payment_method__type": self.method_type})
        return conditions


def _filters(provider: str | None, method_type: str | None, currency: str | None) -> _Filters:
    return _Filters(
        provider=provider or None,
        method_type=method_type or None,
        currency=currency.upper() if currency else None,
    )


def _payments(begin: dt.datetime, finish: dt.datetime, filters: _Filters) -> QuerySet[Payment]:
    qs = Payment.objects.filter(created_at__gte=begin, created_at__lt=finish).filter(filters.q())
    if filters.currency:
        qs = qs.filter(currency=filters.currency)
    return qs.order_by()


_SUCCESS = Q(status__in=SUCCESSFUL)


#: What payment rows are counted by: a NOT NULL column of the analytics index (not the
#: primary key, which is not in it), so that on PostgreSQL the scan stays index-only.
_ROWS = "status"


def _payment_figures() -> dict[str, Any]:
    """The conditional aggregates every payment report shares."""
    return {
        "payments": Count(_ROWS),
        "attempted": Count(_ROWS, filter=~Q(status=PaymentStatus.PENDING)),
        "successful": Count(_ROWS, filter=_SUCCESS),
        "gross": Sum("captured_amount", filter=_SUCCESS),
        "refunded": Sum("refunded_amount", filter=_SUCCESS),
        "fees": Sum("processing_fee", filter=_SUCCESS),
    }


# -- reports ------------------------------------------------------------------------------


def summary(
    *,
    start: dt.datetime | dt.date | str,
    end: dt.datetime | dt.date | str,
    provider: str | None = None,
    method_type: str | None = None,
    currency: str | None = None,
    convert_to: str | None = None,
    rate_date: dt.date | None = None,
) -> Summary:
    """Payment, refund and dispute figures per currency (see the module docstring).

    Five queries whatever the data; with ``convert_to``, one more per currency for its
    exchange rate (``paydesk.services.rates``, the rate on or before ``rate_date``).
    """
    begin, finish = _range(start, end)
    filters = _filters(provider, method_type, currency)
    top = int(paydesk_settings.ANALYTICS["TOP_REASONS"])

    # 1. payments: one row per currency.
    rows = (
        _payments(begin, finish, filters)
        .values("currency")
        .annotate(
            **_payment_figures(),
            failed=Count(_ROWS, filter=Q(status=PaymentStatus.FAILED)),
            with_refund=Count(_ROWS, filter=_SUCCESS & Q(refunded_amount__gt=0)),
        )
    )
    payments = {row["currency"]: row for row in _rows(rows)}

    # 2. failures by code.
    failures: dict[str, dict[str, int]] = {}
    for row in _rows(
        _payments(begin, finish, filters)
        .filter(status=PaymentStatus.FAILED)
        .values("currency", "failure_code")
        .annotate(count=Count("pk"))
        .order_by("currency", "-count", "failure_code")
    ):
        failures.setdefault(row["currency"], {})[row["failure_code"] or "unknown"] = row["count"]

    # 3. refunds requested in the range.
    refunds_qs = Refund.objects.filter(created_at__gte=begin, created_at__lt=finish).filter(
        filters.q("payment__")
    )
    if filters.currency:
        refunds_qs = refunds_qs.filter(currency=filters.currency)
    refunds_qs = refunds_qs.order_by()
    completed = Q(status=RefundStatus.COMPLETED)
    refund_rows = {
        row["currency"]: row
        for row in _rows(
            refunds_qs.values("currency").annotate(
                count=Count("pk"),
                completed=Count("pk", filter=completed),
                pending=Count(
                    "pk", filter=Q(status__in=(RefundStatus.PENDING, RefundStatus.PROCESSING))
                ),
                failed=Count("pk", filter=Q(status=RefundStatus.FAILED)),
                amount=Sum("amount", filter=completed),
                processing=Avg(
                    ExpressionWrapper(
                        F("processed_at") - F("created_at"), output_field=DurationField()
                    ),
                    filter=completed & Q(processed_at__isnull=False),
                ),
            )
        )
    }

    # 4. the most frequent refund reasons, per currency (ranked in the database).
    reasons: dict[str, list[ReasonCount]] = {}
    for row in _rows(
        refunds_qs.values("currency", "reason")
        .annotate(count=Count("pk"), total=Sum("amount"))
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("currency")],
                order_by=[F("count").desc(), F("reason").asc()],
            )
        )
        .filter(rank__lte=top)
        .order_by("currency", "rank")
    ):
        reasons.setdefault(row["currency"], []).append(
            ReasonCount(
                reason=row["reason"],
                count=row["count"],
                amount=_money(row["total"], row["currency"]),
            )
        )

    # 5. disputes opened in the range.
    dispute_qs = TransactionLog.objects.filter(
        kind=LedgerKind.DISPUTE_OPENED, created_at__gte=begin, created_at__lt=finish
    ).filter(filters.q("payment__"))
    if filters.currency:
        dispute_qs = dispute_qs.filter(currency=filters.currency)
    disputes = {
        row["currency"]: row["count"]
        for row in _rows(dispute_qs.order_by().values("currency").annotate(count=Count("pk")))
    }

    currencies = []
    for code in sorted(set(payments) | set(refund_rows) | set(disputes)):
        row = payments.get(code, {})
        successful = row.get("successful", 0)
        gross = _money(row.get("gross"), code)
        refunded = _money(row.get("refunded"), code)
        refund = refund_rows.get(code, {})
        currencies.append(
            CurrencySummary(
                currency=code,
                payments=row.get("payments", 0),
                attempted=row.get("attempted", 0),
                successful=successful,
                failed=row.get("failed", 0),
                success_rate=_ratio(successful, row.get("attempted", 0)),
                gross_volume=gross,
                refunded=refunded,
                net_revenue=_net(gross, refunded),
                fees=_money(row.get("fees"), code),
                average_order_value=(
                    Money.rounded(gross.amount / successful, code, ROUND_HALF_EVEN)
                    if successful
                    else None
                ),
                refund_rate=_ratio(row.get("with_refund", 0), successful),
                failures=failures.get(code, {}),
                refunds=RefundStats(
                    count=refund.get("count", 0),
                    completed=refund.get("completed", 0),
                    pending=refund.get("pending", 0),
                    failed=refund.get("failed", 0),
                    amount=_money(refund.get("amount"), code),
                    average_processing_time=refund.get("processing"),
                    reasons=reasons.get(code, []),
                ),
                disputes=disputes.get(code, 0),
            )
        )
    converted = _convert(currencies, convert_to, rate_date) if convert_to else None
    return Summary(
        start=begin,
        end=finish,
        filters=filters.as_dict(),
        currencies=currencies,
        converted=converted,
    )


def _convert(
    currencies: list[CurrencySummary], target: str, rate_date: dt.date | None
) -> Converted:
    from .rates import convert

    code = target.upper()
    totals = {name: Money.zero(code) for name in ("gross_volume", "refunded", "fees")}
    rates: dict[str, Decimal] = {}
    dates: dict[str, dt.date] = {}
    for entry in currencies:
        for name in totals:
            conversion = convert(money=getattr(entry, name), to=code, on=rate_date)
            totals[name] = totals[name] + conversion.result
            rates[entry.currency] = conversion.rate
            dates[entry.currency] = conversion.rate_date
    return Converted(
        currency=code,
        rate_date=rate_date,
        rates=rates,
        rate_dates=dates,
        gross_volume=totals["gross_volume"],
        refunded=totals["refunded"],
        net_revenue=totals["gross_volume"] - totals["refunded"],
        fees=totals["fees"],
    )


def _periods(begin: dt.datetime, finish: dt.datetime, interval: str) -> Iterator[dt.date]:
    """Every period start from the one holding ``begin`` to the one holding ``finish``."""
    tz = timezone.get_current_timezone()
    day = timezone.localtime(begin, tz).date()
    last = timezone.localtime(finish - dt.timedelta(microseconds=1), tz).date()
    if interval == "week":
        day -= dt.timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    while day <= last:
        yield day
        if interval == "day":
            day += dt.timedelta(days=1)
        elif interval == "week":
            day += dt.timedelta(days=7)
        else:
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def time_series(
    *,
    start: dt.datetime | dt.date | str,
    end: dt.datetime | dt.date | str,
    interval: str = "day",
    provider: str | None = None,
    method_type: str | None = None,
    currency: str | None = None,
) -> TimeSeries:
    """Payments per day, week (from Monday) or month, per currency: one query.

    Periods are in the current time zone; every period of the range is present in every
    currency's series (zeros where nothing happened).
    """
    if interval not in INTERVALS:
        raise PaymentValidationError(
            f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}.", field="interval"
        )
    begin, finish = _range(start, end)
    periods = list(_periods(begin, finish, interval))
    limit = int(paydesk_settings.ANALYTICS["MAX_SERIES_POINTS"])
    if len(periods) > limit:
        raise PaymentValidationError(
            f"{len(periods)} {interval}s is more than the {limit} points a series may have; "
            "use a longer interval or a shorter range.",
            field="interval",
        )
    filters = _filters(provider, method_type, currency)
    tz = timezone.get_current_timezone()
    rows = (
        _payments(begin, finish, filters)
        .annotate(period=Trunc("created_at", interval, output_field=DateField(), tzinfo=tz))
        .values("currency", "period")
        .annotate(**_payment_figures())
        .order_by()  # no ORDER BY: PostgreSQL may hash-aggregate; Python orders the points
    )
    found: dict[str, dict[dt.date, dict[str, Any]]] = {}
    for row in _rows(rows):
        period = row["period"]
        if isinstance(period, dt.datetime):  # some backends give a datetime
            period = period.date()
        found.setdefault(row["currency"], {})[period] = row
    series: dict[str, list[SeriesPoint]] = {}
    for code, by_period in sorted(found.items()):
        points = []
        for period in periods:
            row = by_period.get(period, {})
            gross = _money(row.get("gross"), code)
            refunded = _money(row.get("refunded"), code)
            successful = row.get("successful", 0)
            points.append(
                SeriesPoint(
                    period=period,
                    payments=row.get("payments", 0),
                    attempted=row.get("attempted", 0),
                    successful=successful,
                    success_rate=_ratio(successful, row.get("attempted", 0)),
                    gross_volume=gross,
                    refunded=refunded,
                    net_revenue=_net(gross, refunded),
                    fees=_money(row.get("fees"), code),
                )
            )
        series[code] = points
    return TimeSeries(
        start=begin, end=finish, interval=interval, filters=filters.as_dict(), series=series
    )


def performance(
    *,
    start: dt.datetime | dt.date | str,
    end: dt.datetime | dt.date | str,
    by: str = "provider",
    provider: str | None = None,
    method_type: str | None = None,
    currency: str | None = None,
) -> list[PerformanceRow]:
    """Success rate, volume and median time to complete per provider or saved-method type
    (``by="provider"`` / ``"method_type"``) and currency: one query."""
    if by not in PERFORMANCE_KEYS:
        raise PaymentValidationError(
            f"by must be one of {', '.join(PERFORMANCE_KEYS)}, not {by!r}.", field="by"
        )
    begin, finish = _range(start, end)
    filters = _filters(provider, method_type, currency)
    duration = ExpressionWrapper(F("processed_at") - F("created_at"), output_field=DurationField())
    rows = (
        _payments(begin, finish, filters)
        .values(key=F(PERFORMANCE_KEYS[by]), currency_code=F("currency"))
        .annotate(
            attempted=Count(_ROWS, filter=~Q(status=PaymentStatus.PENDING)),
            successful=Count(_ROWS, filter=_SUCCESS),
            gross=Sum("captured_amount", filter=_SUCCESS),
            median=Median(
                Case(
                    When(_SUCCESS & Q(processed_at__isnull=False), then=duration),
                    output_field=DurationField(),
                ),
                output_field=DurationField(),
            ),
        )
        .values("key", "currency_code", "attempted", "successful", "gross", "median")
        .order_by("key", "currency_code")
    )
    return [
        PerformanceRow(
            key=row["key"] or "",
            currency=row["currency_code"],
            attempted=row["attempted"],
            successful=row["successful"],
            success_rate=_ratio(row["successful"], row["attempted"]),
            gross_volume=_money(row["gross"], row["currency_code"]),
            median_time_to_complete=row["median"],
        )
        for row in _rows(rows)
    ]


def fraud_report(
    *, start: dt.datetime | dt.date | str, end: dt.datetime | dt.date | str
) -> FraudReport:
    """Fraud screening in the range: decisions, blocked volume, rules, the review queue and
    staff decisions (an approval of a held payment counts as a false positive). Four
    queries."""
    begin, finish = _range(start, end)
    checks = FraudCheck.objects.filter(created_at__gte=begin, created_at__lt=finish).order_by()
    decisions = {"allow": 0, "review": 0, "block": 0}
    blocked: dict[str, Money] = {}
    for row in _rows(
        checks.values("decision", "currency").annotate(count=Count("pk"), total=Sum("amount"))
    ):
        decisions[row["decision"]] = decisions.get(row["decision"], 0) + row["count"]
        if row["decision"] == "block":
            blocked[row["currency"]] = _money(row["total"], row["currency"])
    by_rule: dict[str, dict[str, int]] = {}
    for row in _rows(
        FraudRuleHit.objects.filter(
            fraud_check__created_at__gte=begin, fraud_check__created_at__lt=finish
        )
        .values("rule", "fraud_check__decision")
        .annotate(count=Count("pk"))
        .order_by("rule", "fraud_check__decision")
    ):
        by_rule.setdefault(row["rule"], {})[row["fraud_check__decision"]] = row["count"]
    queue = FraudAssessment.objects.filter(
        review_status=ReviewStatus.PENDING, payment__status=PaymentStatus.PENDING
    ).aggregate(size=Count("pk"), oldest=Min("held_at"))
    reviewed = Q(reviewed_at__gte=begin, reviewed_at__lt=finish)
    staff = FraudAssessment.objects.filter(
        reviewed | Q(created_at__gte=begin, created_at__lt=finish)
    ).aggregate(
        approved=Count("pk", filter=reviewed & Q(review_status=ReviewStatus.APPROVED)),
        rejected=Count("pk", filter=reviewed & Q(review_status=ReviewStatus.REJECTED)),
        flagged=Count(
            "pk",
            filter=Q(provider_flagged=True, created_at__gte=begin, created_at__lt=finish),
        ),
    )
    oldest = queue["oldest"]
    return FraudReport(
        start=begin,
        end=finish,
        checks=sum(decisions.values()),
        decisions=decisions,
        blocked_volume=dict(sorted(blocked.items())),
        by_rule=by_rule,
        review_queue=queue["size"],
        oldest_held_for=(timezone.now() - oldest) if oldest else None,
        approved=staff["approved"],
        rejected=staff["rejected"],
        false_positive_rate=_ratio(staff["approved"], staff["approved"] + staff["rejected"]),
        provider_flagged=staff["flagged"],
    )
