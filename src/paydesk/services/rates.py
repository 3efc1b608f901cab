"""Exchange rates: storing what a source fetched, finding a rate, converting money exactly.

This module owns one decision: which stored rate answers "how many ``quote`` does one
``base`` buy on ``on``", and how a conversion is rounded.

* **Finding a rate.** For ``latest_rate(base, quote, on=...)`` three candidates are
  considered, each from the latest stored row on or before ``on`` (today by default): the
  *direct* row ``base -> quote``; the *inverse* of ``quote -> base`` (``1 / rate``); and the
  *cross* rate through the pivot currency (``PAYDESK["RATES"]["CROSS_VIA"]``, else the
  source's own base, EUR for the ECB, else ``DEFAULT_CURRENCY``): ``USD -> TRY`` is
  ``(EUR -> TRY) / (EUR -> USD)``. The most recent candidate wins (a cross rate dated today
  beats a direct one typed in last year); on a tie, direct beats inverse beats cross. A
  cross rate is dated by its older leg. Between rows of one pair on one date, a rate staff
  entered by hand (``source="manual"``) wins over a fetched one.
* **Derived rates are exact to 12 decimal places**, rounded half-even once from the exact
  quotient (no intermediate rounding), the precision ``ExchangeRate.rate`` stores.
* **Conversions** multiply exactly (``Decimal`` with no precision loss, never a float) and
  round once to the target currency's ISO 4217 exponent, half-even by default
  (``PAYDESK["RATES"]["ROUNDING"]``). ``Conversion`` says which rate, of which date, from
  which source, and which rounding produced the result.

Errors: :class:`~paydesk.exceptions.UnknownCurrency` (``unknown_currency``) for a code that
is not ISO 4217; :class:`RateNotFound` (``rate_not_found``) when no stored rate (or none
recent enough, see ``MAX_AGE_DAYS``) connects the two currencies.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact
from fractions import Fraction
from functools import reduce
from operator import or_
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import Case, IntegerField, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from ..conf import paydesk_settings
from ..exceptions import ConfigurationError, PaydeskError
from ..models import ExchangeRate
from ..money import Money, currency_exponent
from ..rates import RATE_PLACES, RateQuote, RatesSource, RatesSourceError, get_rates_source

__all__ = [
    "Conversion",
    "RateNotFound",
    "check_settings",
    "convert",
    "latest_rate",
    "latest_rates",
    "record_rate",
    "update_rates",
]

logger = logging.getLogger("paydesk.rates")

MANUAL = "manual"
SOURCE_MAX_LENGTH = 30  # ExchangeRate.source
ROUNDINGS = frozenset(
    {
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_UP,
        decimal.ROUND_DOWN,
        decimal.ROUND_CEILING,
        decimal.ROUND_FLOOR,
        decimal.ROUND_05UP,
    }
)
_PLACES = Decimal((0, (1,), -RATE_PLACES))


class RateNotFound(PaydeskError):
    """No stored exchange rate connects the two currencies (on or before the date asked).

    Run ``manage.py update_exchange_rates``, or enter the rate in the admin.
    """

    default_code = "rate_not_found"
    http_status = 404


@dataclass(frozen=True, slots=True)
class Conversion:
    """``original`` converted: ``result = round(original.amount * rate, target exponent)``."""

    original: Money
    result: Money
    rate: Decimal
    rate_date: dt.date
    source: str
    rounding: str


# -- storing ---------------------------------------------------------------------------------


def update_rates(*, source: RatesSource | None = None) -> int:
    """Fetch ``source`` (default: ``PAYDESK["RATES"]["SOURCE"]``) and store its rates.

    An upsert on ``(base, quote, date, source)`` in one transaction: running it twice stores
    nothing twice, and a rate the source corrected is updated. The fetch (a network call)
    happens before the transaction. Returns how many rates were stored (inserted or
    updated). Raises :class:`~paydesk.rates.RatesSourceError` if the source fails or
    contradicts itself; nothing is stored then.
    """
    source = source if source is not None else get_rates_source()
    name = str(source.name)
    if not name or len(name) > SOURCE_MAX_LENGTH:
        raise ConfigurationError(
            f"Rates source name {name!r} must be 1-{SOURCE_MAX_LENGTH} characters "
            "(it is stored in ExchangeRate.source)."
        )
    quotes: dict[tuple[str, str, dt.date], RateQuote] = {}
    for quote in source.fetch():
        key = (quote.base, quote.quote, quote.date)
        seen = quotes.get(key)
        if seen is not None and seen.rate != quote.rate:
            raise RatesSourceError(
                f"{name} sent two rates for {quote.base}/{quote.quote} on {quote.date}: "
                f"{seen.rate} and {quote.rate}; nothing was stored."
            )
        quotes[key] = quote
    if not quotes:
        return 0
    rows = [
        ExchangeRate(base=q.base, quote=q.quote, rate=q.rate, date=q.date, source=name)
        for q in quotes.values()
    ]
    with transaction.atomic():
        ExchangeRate.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["base", "quote", "date", "source"],
            update_fields=["rate"],
            batch_size=500,
        )
    logger.info("Stored %d exchange rates from %s", len(rows), name)
    return len(rows)


def record_rate(
    *,
    base: str,
    quote: str,
    rate: Decimal | str | int,
    date: dt.date,
    source: str = MANUAL,
) -> ExchangeRate:
    """Store one rate by hand (what the admin does): ``1 base = rate quote`` on ``date``.

    Validated like a fetched rate (ISO codes, positive, at most 12 decimals); an existing
    rate for the same pair, date and source is replaced.
    """
    if isinstance(rate, float):
        raise TypeError("A rate must be a str or Decimal, not float.")
    try:
        value = Decimal(str(rate).strip()) if not isinstance(rate, Decimal) else rate
    except decimal.InvalidOperation:
        raise RatesSourceError(f"Rate {rate!r} is not a decimal number.") from None
    checked = RateQuote(base=base, quote=quote, rate=value, date=date)
    with transaction.atomic():
        row, _ = ExchangeRate.objects.update_or_create(
            base=checked.base,
            quote=checked.quote,
            date=checked.date,
            source=source,
            defaults={"rate": checked.rate},
        )
    return row


# -- finding ---------------------------------------------------------------------------------


def _code(code: str) -> str:
    currency_exponent(code)  # UnknownCurrency (code "unknown_currency") for a non-ISO code
    return code.strip().upper()


def pivot_currency() -> str:
    """The currency cross rates go through (see the module docstring)."""
    settings: Mapping[str, Any] = paydesk_settings.RATES
    configured = settings.get("CROSS_VIA")
    if not configured:
        try:
            configured = get_rates_source().base_currency
        except ConfigurationError:
            configured = None
    return _code(configured or paydesk_settings.DEFAULT_CURRENCY)


def _rounding(rounding: str | None = None) -> str:
    value = rounding or paydesk_settings.RATES.get("ROUNDING") or decimal.ROUND_HALF_EVEN
    if value not in ROUNDINGS:
        raise ConfigurationError(
            f'PAYDESK["RATES"]["ROUNDING"] = {value!r} is not a decimal rounding mode; use one '
            f"of {', '.join(sorted(ROUNDINGS))}."
        )
    return str(value)


def _max_age() -> int | None:
    value = paydesk_settings.RATES.get("MAX_AGE_DAYS")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f'PAYDESK["RATES"]["MAX_AGE_DAYS"] must be None or a whole number >= 0, not {value!r}.'
        )
    return value


def check_settings() -> None:
    """Raise ``ConfigurationError`` when ``PAYDESK["RATES"]`` cannot work: the source, the
    rounding mode, the maximum age or the cross currency (system check ``paydesk.E015``)."""
    get_rates_source()
    _rounding()
    _max_age()
    via = paydesk_settings.RATES.get("CROSS_VIA")
    if via:
        try:
            _code(via)
        except PaydeskError as exc:
            raise ConfigurationError(
                f'PAYDESK["RATES"]["CROSS_VIA"] = {via!r} is not an ISO 4217 currency code.'
            ) from exc


def _latest_rows(
    pairs: Iterable[tuple[str, str]] | None, on: dt.date | None
) -> dict[tuple[str, str], ExchangeRate]:
    """The latest stored row per ``(base, quote)`` on or before ``on``, in one query."""
    rows = ExchangeRate.objects.filter(rate__gt=0)
    if on is not None:
        rows = rows.filter(date__lte=on)
    if pairs is not None:
        wanted = list(pairs)
        if not wanted:
            return {}
        rows = rows.filter(reduce(or_, (Q(base=b, quote=q) for b, q in wanted)))
    newest = rows.filter(base=OuterRef("base"), quote=OuterRef("quote")).order_by("-date")
    chosen = (
        rows.filter(date=Subquery(newest.values("date")[:1]))
        .annotate(
            manual_first=Case(
                When(source=MANUAL, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("base", "quote", "manual_first", "-created_at", "-pk")
    )
    found: dict[tuple[str, str], ExchangeRate] = {}
    for row in chosen:
        found.setdefault((row.base, row.quote), row)
    return found


class _Candidate(NamedTuple):
    date: dt.date
    priority: int  # on the same date: direct 2 > inverse 1 > cross 0
    ratio: Fraction  # exact
    source: str
    row: ExchangeRate | None  # the stored row, for a direct rate


def _leg(rows: Mapping[tuple[str, str], ExchangeRate], base: str, quote: str) -> list[_Candidate]:
    """Candidates for ``base -> quote``: the direct row and the inverse of the reverse row."""
    candidates = []
    direct = rows.get((base, quote))
    if direct is not None:
        candidates.append(_Candidate(direct.date, 2, Fraction(direct.rate), direct.source, direct))
    reverse = rows.get((quote, base))
    if reverse is not None:
        candidates.append(
            _Candidate(reverse.date, 1, 1 / Fraction(reverse.rate), reverse.source, None)
        )
    return candidates


def _newest(candidates: list[_Candidate]) -> _Candidate:
    return max(candidates, key=lambda c: (c.date, c.priority))


def _best(
    rows: Mapping[tuple[str, str], ExchangeRate], base: str, quote: str, pivot: str
) -> ExchangeRate | None:
    candidates = _leg(rows, base, quote)
    if pivot not in (base, quote):
        to_base, to_quote = _leg(rows, pivot, base), _leg(rows, pivot, quote)
        if to_base and to_quote:
            b, q = _newest(to_base), _newest(to_quote)
            sources = b.source if b.source == q.source else f"{b.source}+{q.source}"
            # Dated by the older leg: the rate is no fresher than its stalest input.
            candidates.append(
                _Candidate(
                    min(b.date, q.date), 0, q.ratio / b.ratio, f"{sources} (via {pivot})", None
                )
            )
    if not candidates:
        return None
    best = _newest(candidates)
    if best.row is not None:
        return best.row  # a direct rate: the stored row itself, exactly as stored
    source = f"{best.source} (inverse)" if best.priority == 1 else best.source
    # Derived: the exact ratio rounded once, half to even, to the 12 places rates are kept in.
    scaled = round(best.ratio * 10**RATE_PLACES)
    rate = Decimal(scaled).scaleb(-RATE_PLACES).quantize(_PLACES)
    return ExchangeRate(base=base, quote=quote, rate=rate, date=best.date, source=source)


def _check_age(rate: ExchangeRate, on: dt.date | None) -> None:
    max_age = _max_age()
    reference = on or timezone.localdate()
    if max_age is not None and (reference - rate.date).days > max_age:
        raise RateNotFound(
            f"The latest {rate.base}->{rate.quote} rate is from {rate.date}, more than "
            f'{max_age} days before {reference} (PAYDESK["RATES"]["MAX_AGE_DAYS"]). Run '
            "manage.py update_exchange_rates or enter a newer rate in the admin."
        )


def _identity(code: str, on: dt.date | None) -> ExchangeRate:
    return ExchangeRate(
        base=code, quote=code, rate=Decimal(1), date=on or timezone.localdate(), source="identity"
    )


def latest_rate(base: str, quote: str, *, on: dt.date | None = None) -> ExchangeRate:
    """The rate ``base -> quote`` on ``on`` (default: the latest stored), see the module doc.

    Returns the stored row for a direct rate and an unsaved ``ExchangeRate`` for a derived
    one, whose ``source`` says how it was derived (``"ecb (inverse)"``,
    ``"ecb (via EUR)"``). The same currency twice gives rate 1 (source ``"identity"``).
    """
    base, quote = _code(base), _code(quote)
    if base == quote:
        return _identity(base, on)
    pivot = pivot_currency()
    legs = {base, quote, pivot}
    pairs = [(a, b) for a in legs for b in legs if a != b]
    found = _best(_latest_rows(pairs, on), base, quote, pivot)
    if found is None:
        when = f" on or before {on}" if on else ""
        raise RateNotFound(
            f"No exchange rate for {base}->{quote}{when}: none stored directly, inverted or "
            f"through {pivot}. Run manage.py update_exchange_rates or enter one in the admin."
        )
    _check_age(found, on)
    return found


def latest_rates(base: str, *, on: dt.date | None = None) -> list[ExchangeRate]:
    """The latest rate from ``base`` to every currency a stored rate reaches, by quote code.

    The same rules as :func:`latest_rate` (direct, inverse, cross through the pivot); rates
    older than ``MAX_AGE_DAYS`` are left out.
    """
    base = _code(base)
    pivot = pivot_currency()
    rows = _latest_rows(None, on)
    currencies = {code for pair in rows for code in pair} - {base}
    max_age = _max_age()
    reference = on or timezone.localdate()
    result = []
    for quote in sorted(currencies):
        found = _best(rows, base, quote, pivot)
        if found is None:
            continue
        if max_age is not None and (reference - found.date).days > max_age:
            continue
        result.append(found)
    return result


# -- converting ------------------------------------------------------------------------------


def _exact_product(a: Decimal, b: Decimal) -> Decimal:
    precision = len(a.as_tuple().digits) + len(b.as_tuple().digits) + 1
    return Context(prec=precision, traps=[Inexact]).multiply(a, b)


def convert(
    *,
    money: Money,
    to: str,
    on: dt.date | None = None,
    rounding: str | None = None,
) -> Conversion:
    """``money`` in currency ``to`` at the rate :func:`latest_rate` finds for ``on``.

    The product ``money.amount * rate`` is exact; it is rounded once to ``to``'s ISO 4217
    exponent with ``rounding`` (default ``PAYDESK["RATES"]["ROUNDING"]``, half-even). Raises
    ``UnknownCurrency`` or :class:`RateNotFound`.
    """
    if not isinstance(money, Money):
        raise TypeError(f"convert() needs a Money, not {type(money).__name__}.")
    mode = _rounding(rounding)
    rate = latest_rate(money.currency, to, on=on)
    value = _exact_product(money.amount, rate.rate)
    result = Money.rounded(value, rate.quote, mode)
    return Conversion(
        original=money,
        result=result,
        rate=rate.rate,
        rate_date=rate.date,
        source=rate.source,
        rounding=mode,
    )
