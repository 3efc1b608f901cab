"""paydesk's money type.

This module owns one decision: exact money and every currency-exponent rule. A
``Money`` is a ``Decimal`` plus an ISO 4217 code, held at exactly the currency's ISO exponent
(``Money("5", "USD").amount == Decimal("5.00")``). No float ever enters: ``19.99 * 100`` is
``1998.9999999999998`` in binary floating point, which is how a 19.99 charge becomes 1998
cents.

The rules, all enforced here so no other module has to remember them:

* More precision than the currency allows is an error (``AmountPrecisionError``), not
  rounding. Rounding only happens where the caller asks for it: ``Money.rounded`` and
  ``Money.percentage``.
* Exponents come from ISO 4217 (the ``iso4217`` package ships ISO's own ``table.xml``), not
  from Babel/CLDR, whose display digits differ from ISO for IQD, MGA, IRR and others. Babel is
  used only to format amounts for people, and is always told the ISO digits.
* Providers that disagree with ISO on the wire (Stripe, PayPal, KICC) are described by a
  ``MinorUnitRules`` value. Converting for a provider refuses amounts the provider cannot
  take instead of silently rounding them.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
)
from types import MappingProxyType
from typing import TYPE_CHECKING

from babel.core import Locale
from babel.numbers import NumberPattern
from iso4217 import Currency

from .exceptions import AmountPrecisionError, CurrencyMismatch, MoneyError, UnknownCurrency

__all__ = [
    "ISO_RULES",
    "KICC_RULES",
    "MAX_DIGITS",
    "PAYPAL_RULES",
    "STRIPE_RULES",
    "STRIPE_ZERO_DECIMAL",
    "MinorUnitRules",
    "Money",
    "currency_exponent",
    "format_money",
    "is_supported_currency",
    "iso_currencies",
    "sum_money",
]

#: Most significant digits an amount may have (IEEE 754 decimal128's precision). Far beyond
#: any payment, and it keeps a hostile "1E999999999" from allocating a billion digits.
MAX_DIGITS = 34

_HOW_TO_FIND_CODES = (
    "paydesk accepts ISO 4217 codes that have minor units (USD, EUR, JPY, ...); "
    "paydesk.money.iso_currencies() lists them all"
)


# -- ISO 4217 ---------------------------------------------------------------------------------


@functools.cache
def _iso_exponents() -> Mapping[str, int]:
    # Codes whose minor unit is "N.A." (gold, SDR, the XTS test code) have no exponent, so
    # no amount in them can be exact; they are left out rather than guessed.
    return MappingProxyType(
        {c.code: c.exponent for c in Currency if c.exponent is not None},
    )


def _normalize_code(code: object) -> str:
    if not isinstance(code, str):
        raise TypeError(f"A currency code must be a str such as 'USD', not {type(code).__name__}")
    return code.strip().upper()


def currency_exponent(code: str) -> int:
    """ISO 4217 minor-unit exponent of ``code`` (USD 2, JPY 0, KWD 3), case-insensitive."""
    normalized = _normalize_code(code)
    try:
        return _iso_exponents()[normalized]
    except KeyError:
        raise UnknownCurrency(f"Unknown currency {code!r}: {_HOW_TO_FIND_CODES}.") from None


def is_supported_currency(code: object) -> bool:
    """Whether ``code`` is an ISO 4217 code with a defined exponent (so ``Money`` accepts it)."""
    return isinstance(code, str) and code.strip().upper() in _iso_exponents()


@functools.cache
def iso_currencies() -> tuple[str, ...]:
    """Every ISO 4217 code ``Money`` accepts, sorted."""
    return tuple(sorted(_iso_exponents()))


# -- exact decimal helpers --------------------------------------------------------------------
# Each helper builds its own Context: the thread's current decimal context belongs to the
# caller (who may have lowered its precision), and exactness must not depend on it.


def _context(prec: int = MAX_DIGITS, *, exact: bool, rounding: str = ROUND_HALF_EVEN) -> Context:
    traps = [InvalidOperation, Overflow]
    if exact:
        traps.append(Inexact)
    return Context(prec=prec, rounding=rounding, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=traps)


def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, float):
        raise TypeError(
            f"{what} must be a str or Decimal (or int), not float: binary floats cannot hold "
            "amounts like 19.99 exactly. Pass Decimal('19.99') or '19.99'."
        )
    # bool is an int subclass, and True dollars is never what anyone meant.
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a str or Decimal (or int), not bool.")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise MoneyError(f"{what} {value!r} is not a decimal number.") from None
    else:
        raise TypeError(f"{what} must be a str or Decimal (or int), not {type(value).__name__}.")
    if not result.is_finite():
        raise MoneyError(f"{what} must be a finite number, not {result}.")
    return result


def _too_large(value: Decimal) -> MoneyError:
    return MoneyError(
        f"Amount {value} needs more than {MAX_DIGITS} significant digits; paydesk refuses it "
        "rather than lose digits."
    )


def _exact(value: Decimal, exponent: int) -> Decimal | None:
    """``value`` with exactly ``exponent`` decimals, or ``None`` if a non-zero digit would go."""
    try:
        result = value.quantize(Decimal((0, (1,), -exponent)), context=_context(exact=True))
    except Inexact:
        return None
    except InvalidOperation:
        raise _too_large(value) from None
    # -0.00 would print as "-0.00 USD" and leak a sign into provider payloads.
    return result.copy_abs() if result.is_zero() else result


def _round(value: Decimal, exponent: int, rounding: str) -> Decimal:
    ctx = _context(exact=False, rounding=rounding)
    try:
        result = value.quantize(Decimal((0, (1,), -exponent)), context=ctx)
    except InvalidOperation:
        raise _too_large(value) from None
    return result.copy_abs() if result.is_zero() else result


def _product(a: Decimal, b: Decimal) -> Decimal:
    # An exact product never has more digits than its two factors together: it cannot round.
    prec = len(a.as_tuple().digits) + len(b.as_tuple().digits)
    return _context(prec, exact=True).multiply(a, b)


def _shift(value: Decimal, places: int) -> Decimal:
    """``value * 10**places``, built from its digits so that no context can round it."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise MoneyError(f"{value} is not a finite amount.")
    return Decimal((sign, digits, exponent + places))


def _scaled(units: int, exponent: int) -> Decimal:
    """``units / 10**exponent``, exactly."""
    return _shift(Decimal(units), -exponent)


def _coefficient(value: Decimal) -> int:
    """The integer ``value`` becomes with its decimal point removed."""
    sign, digits, _ = value.as_tuple()
    result = int("".join(map(str, digits)))
    return -result if sign else result


# -- Money ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one ISO 4217 currency.

    ``Money("19.99", "USD")``, ``Money(Decimal("5"), "jpy")`` and ``Money(500, "JPY")`` are
    accepted; floats are refused. ``amount`` is stored at exactly the currency's exponent.
    """

    amount: Decimal
    currency: str

    if TYPE_CHECKING:
        # The generated __init__ accepts these and __post_init__ turns them into Decimal;
        # this tells type checkers so callers can write Money("19.99", "USD").
        def __init__(self, amount: Decimal | int | str, currency: str) -> None: ...

    def __post_init__(self) -> None:
        currency = _normalize_code(self.currency)
        try:
            exponent = _iso_exponents()[currency]
        except KeyError:
            raise UnknownCurrency(
                f"Unknown currency {self.currency!r}: {_HOW_TO_FIND_CODES}."
            ) from None
        value = _to_decimal(self.amount, "A Money amount")
        amount = _exact(value, exponent)
        if amount is None:
            raise AmountPrecisionError(
                f"{value} {currency} has more decimal places than {currency} allows: its ISO 4217 "
                f"exponent is {exponent}. paydesk never rounds silently; round explicitly with "
                f"Money.rounded({str(value)!r}, {currency!r})."
            )
        object.__setattr__(self, "amount", amount)
        object.__setattr__(self, "currency", currency)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def rounded(
        cls, amount: Decimal | int | str, currency: str, rounding: str = ROUND_HALF_EVEN
    ) -> Money:
        """Round ``amount`` to the currency's exponent with ``rounding`` (the one rounding door)."""
        value = _to_decimal(amount, "A Money amount")
        return cls(_round(value, currency_exponent(currency), rounding), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        """ISO minor units to Money: ``from_minor_units(1999, "USD") == Money("19.99", "USD")``."""
        return cls(_scaled(_check_units(units), currency_exponent(currency)), currency)

    # -- conversions ----------------------------------------------------------------------

    @property
    def exponent(self) -> int:
        """The currency's ISO 4217 exponent (also the number of decimals in ``amount``)."""
        return _iso_exponents()[self.currency]

    def to_minor_units(self) -> int:
        """ISO minor units: USD 19.99 -> 1999, JPY 500 -> 500, KWD 1.234 -> 1234."""
        # amount is stored at exactly the ISO exponent, so its coefficient is the answer.
        return _coefficient(self.amount)

    def format(self, locale: str = "en_US") -> str:
        """Locale-aware display, always with the ISO number of decimals."""
        return format_money(self, locale)

    def __str__(self) -> str:
        return f"{self.amount:f} {self.currency}"

    # -- predicates -----------------------------------------------------------------------

    def is_zero(self) -> bool:
        return self.amount.is_zero()

    def is_positive(self) -> bool:
        return self.amount > 0

    def is_negative(self) -> bool:
        return self.amount < 0

    # -- arithmetic -----------------------------------------------------------------------

    def _same_currency(self, other: object, operation: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(
                f"Cannot {operation} Money and {type(other).__name__}; "
                f"wrap the value first: Money('5', {self.currency!r})."
            )
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"Cannot {operation} {self} and {other}: convert one of them explicitly first."
            )
        return other

    def __add__(self, other: Money) -> Money:
        other = self._same_currency(other, "add")
        try:
            total = _context(exact=True).add(self.amount, other.amount)
        except (Inexact, InvalidOperation, Overflow):
            raise _too_large(self.amount) from None
        return Money(total, self.currency)

    def __sub__(self, other: Money) -> Money:
        other = self._same_currency(other, "subtract")
        return self + (-other)

    def __neg__(self) -> Money:
        return Money(self.amount.copy_negate(), self.currency)

    def __abs__(self) -> Money:
        return Money(self.amount.copy_abs(), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, Money | str):
            raise TypeError(
                f"Money can only be multiplied by an int or Decimal, not {type(factor).__name__}."
            )
        value = _product(self.amount, _to_decimal(factor, "A Money multiplier"))
        result = _exact(value, self.exponent)
        if result is None:
            raise AmountPrecisionError(
                f"{self} * {factor} = {value} {self.currency} has more decimal places than "
                f"{self.currency} allows (ISO 4217 exponent {self.exponent}). Use "
                f".percentage(...) for rates or Money.rounded({str(value)!r}, "
                f"{self.currency!r}) to choose the rounding."
            )
        return Money(result, self.currency)

    def __rmul__(self, factor: Decimal | int) -> Money:
        return self.__mul__(factor)

    def percentage(self, rate: Decimal | int | str, rounding: str = ROUND_HALF_UP) -> Money:
        """``rate`` percent of this amount, rounded once to the currency's exponent.

        ``Money("19.99", "USD").percentage("3") == Money("0.60", "USD")`` (exactly 0.5997).
        """
        value = _shift(_product(self.amount, _to_decimal(rate, "A percentage rate")), -2)
        return Money.rounded(value, self.currency, rounding)

    # -- comparisons (same currency only: 5 USD < 600 JPY has no answer) -------------------

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same_currency(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same_currency(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same_currency(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same_currency(other, "compare").amount


def _check_units(units: object) -> int:
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"Minor units must be an int, not {type(units).__name__}.")
    return units


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Sum ``items``; ``currency`` gives the result for an empty iterable and is checked."""
    total = Money.zero(currency)
    for item in items:
        total += item
    return total


# -- display ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _currency_pattern(locale: str, exponent: int) -> tuple[Locale, NumberPattern]:
    parsed = Locale.parse(locale)
    # Babel's own currency digits are CLDR's (MGA 0, IQD 0), which would print 100.50 MGA as
    # "MGA100"; a copy of the locale's pattern with the ISO digits keeps the display exact.
    pattern = copy.copy(parsed.currency_formats["standard"])
    pattern.frac_prec = (exponent, exponent)
    return parsed, pattern


def format_money(money: Money, locale: str = "en_US") -> str:
    """``money`` for people in ``locale``: USD 1234.5 -> "$1,234.50" (en_US)."""
    parsed, pattern = _currency_pattern(locale, money.exponent)
    return str(pattern.apply(money.amount, parsed, currency=money.currency, currency_digits=False))


# -- provider minor-unit rules ----------------------------------------------------------------


def _codes(codes: Iterable[str]) -> frozenset[str]:
    if isinstance(codes, str):
        raise TypeError(f"Expected a collection of currency codes, not the string {codes!r}")
    result = frozenset(_normalize_code(code) for code in codes)
    for code in result:
        currency_exponent(code)
    return result


@dataclass(frozen=True)
class MinorUnitRules:
    """How one provider puts amounts on the wire, where that differs from ISO 4217.

    * ``exponents``: wire exponent overrides (Stripe sends MGA with 0 decimals, ISO says 2).
    * ``whole_units_only``: the wire keeps its exponent but only whole major units are
      accepted (Stripe ISK: ``1000`` means 10 ISK, and 1050 is refused).
    * ``round_to_ten``: the last wire digit must be 0 (Stripe's three-decimal currencies).
    * ``currencies``: the only currencies accepted, or ``None`` for every ISO currency.
    * ``unsupported``: ISO currencies the provider refuses even though ``currencies`` is None.

    Outbound conversions (``to_minor_units``, ``to_decimal_string``) refuse what the provider
    would refuse; inbound ones (``from_minor_units``) only insist that the amount is exact,
    since what a provider reports has already happened.
    """

    name: str
    exponents: Mapping[str, int] = field(default_factory=dict, hash=False)
    whole_units_only: frozenset[str] = frozenset()
    round_to_ten: frozenset[str] = frozenset()
    currencies: frozenset[str] | None = None
    unsupported: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # A typo such as "JYP" in a rules table would otherwise fall back to ISO silently.
        exponents: dict[str, int] = {}
        for code, exponent in self.exponents.items():
            currency_exponent(code)
            if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 0:
                raise ValueError(f"{self.name}: exponent for {code} must be an int >= 0")
            exponents[_normalize_code(code)] = exponent
        object.__setattr__(self, "exponents", MappingProxyType(dict(sorted(exponents.items()))))
        object.__setattr__(self, "whole_units_only", _codes(self.whole_units_only))
        object.__setattr__(self, "round_to_ten", _codes(self.round_to_ten))
        object.__setattr__(self, "unsupported", _codes(self.unsupported))
        if self.currencies is not None:
            object.__setattr__(self, "currencies", _codes(self.currencies))
        for code in self.round_to_ten:
            if self.exponent(code) < 1:
                raise ValueError(f"{self.name}: round_to_ten needs a wire exponent >= 1 ({code})")

    def supports(self, currency: str) -> bool:
        code = _normalize_code(currency)
        if not is_supported_currency(code) or code in self.unsupported:
            return False
        return self.currencies is None or code in self.currencies

    def _check_currency(self, currency: str) -> str:
        code = _normalize_code(currency)
        currency_exponent(code)
        if not self.supports(code):
            accepted = (
                f" It accepts {', '.join(sorted(self.currencies))}."
                if self.currencies is not None
                else ""
            )
            raise UnknownCurrency(
                f"{self.name} does not accept {code}.{accepted} Use another provider for {code}."
            )
        return code

    def exponent(self, currency: str) -> int:
        """Decimals this provider uses for ``currency`` on the wire."""
        code = self._check_currency(currency)
        return self.exponents.get(code, _iso_exponents()[code])

    def to_minor_units(self, money: Money) -> int:
        """The integer this provider expects, or ``AmountPrecisionError`` naming its rule."""
        code = self._check_currency(money.currency)
        wire = self.exponent(code)
        on_wire = _exact(money.amount, wire)
        if on_wire is None:
            kind = "zero-decimal" if wire == 0 else f"{wire}-decimal"
            fix = "a whole amount" if wire == 0 else f"an amount with at most {wire} decimals"
            raise AmountPrecisionError(
                f"{self.name} treats {code} as {kind}: {money} cannot be sent; charge {fix}."
            )
        units = _coefficient(on_wire)
        if code in self.whole_units_only and units % 10**wire:
            raise AmountPrecisionError(
                f"{self.name} accepts only whole {code} amounts: {money} cannot be sent; "
                "charge a whole amount."
            )
        if code in self.round_to_ten and units % 10:
            lower = _round(on_wire, wire - 1, ROUND_FLOOR)
            upper = _round(on_wire, wire - 1, ROUND_CEILING)
            raise AmountPrecisionError(
                f"{self.name} requires the last decimal of {code} amounts to be 0: {money} "
                f"cannot be sent; charge {_exact(lower, wire)} or {_exact(upper, wire)} {code}."
            )
        return units

    def from_minor_units(self, units: int, currency: str) -> Money:
        """Money for an integer this provider sent (Stripe ISK 1000 -> 10 ISK)."""
        code = self._check_currency(currency)
        value = _scaled(_check_units(units), self.exponent(code))
        try:
            return Money(value, code)
        except AmountPrecisionError:
            raise AmountPrecisionError(
                f"{self.name} amount {units} in {code} means {value:f} {code}, which has more "
                f"decimals than ISO 4217 allows for {code} ({currency_exponent(code)}); "
                "paydesk will not round it."
            ) from None

    def to_decimal_string(self, money: Money) -> str:
        """Major units with exactly the wire decimals, for APIs that take strings ("19.90")."""
        units = self.to_minor_units(money)
        return f"{_scaled(units, self.exponent(money.currency)):f}"

    def from_decimal_string(self, value: str, currency: str) -> Money:
        """Money for a major-unit decimal string this provider sent (PayPal "19.90")."""
        code = self._check_currency(currency)
        if not isinstance(value, str):
            raise TypeError(f"Expected the provider's decimal string, not {type(value).__name__}")
        return Money(value, code)


ISO_RULES = MinorUnitRules(name="ISO 4217")

# docs.stripe.com/currencies: zero-decimal list (MGA is ISO 2 but zero-decimal on Stripe);
# ISK stays two-decimal on the wire but card networks accept only whole krónur since
# 2023-04-14; three-decimal currencies need a trailing 0. Stripe's three-decimal list lacks
# IQD and LYD, so sending them with ISO's exponent 3 would be a guess: refuse them instead.
STRIPE_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"}
    | {"PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
STRIPE_RULES = MinorUnitRules(
    name="Stripe",
    exponents={**dict.fromkeys(STRIPE_ZERO_DECIMAL, 0), "ISK": 2},
    whole_units_only=frozenset({"ISK"}),
    round_to_ten=frozenset({"BHD", "JOD", "KWD", "OMR", "TND"}),
    unsupported=frozenset({"IQD", "LYD"}),
)

# PayPal's currency table: HUF, JPY and TWD take no decimals; a fraction is an error.
PAYPAL_RULES = MinorUnitRules(name="PayPal", exponents={"HUF": 0, "JPY": 0, "TWD": 0})

# KICC EasyPay settles in Korean won only ("currency": "00"), as an integer number of won.
KICC_RULES = MinorUnitRules(name="KICC", exponents={"KRW": 0}, currencies=frozenset({"KRW"}))
