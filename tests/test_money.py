"""paydesk.money: exact amounts, ISO exponents, provider wire rules, display.

Pure domain tests: no Django settings or database are needed.
"""

from __future__ import annotations

import doctest
import pickle
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paydesk.exceptions import (
    AmountPrecisionError,
    CurrencyMismatch,
    MoneyError,
    UnknownCurrency,
)
from paydesk.money import (
    ISO_RULES,
    KICC_RULES,
    MAX_DIGITS,
    PAYPAL_RULES,
    STRIPE_RULES,
    STRIPE_ZERO_DECIMAL,
    MinorUnitRules,
    Money,
    currency_exponent,
    format_money,
    is_supported_currency,
    iso_currencies,
    sum_money,
)

ALL_RULES = [ISO_RULES, STRIPE_RULES, PAYPAL_RULES, KICC_RULES]
CURRENCIES = st.sampled_from(iso_currencies())
# Up to 10^15 major units in a 4-decimal currency, the largest amount the database column
# holds, and well inside MAX_DIGITS.
UNITS = st.integers(min_value=-(10**19), max_value=10**19)
FAST = settings(max_examples=300, deadline=None)


def usd(amount: str) -> Money:
    return Money(amount, "USD")


# -- ISO 4217 data ------------------------------------------------------------------------------


def test_iso_exponents_come_from_iso_not_cldr():
    assert currency_exponent("USD") == 2
    assert currency_exponent("jpy") == 0
    assert currency_exponent("KWD") == 3
    assert currency_exponent("CLF") == 4
    # CLDR (Babel) says 0 for these; ISO 4217 says 3 and 2.
    assert currency_exponent("IQD") == 3
    assert currency_exponent("MGA") == 2
    assert currency_exponent("ISK") == 0


def test_iso_currencies_sorted_and_only_with_an_exponent():
    codes = iso_currencies()
    assert list(codes) == sorted(codes)
    assert {"USD", "EUR", "JPY", "KWD", "KRW", "ISK", "MGA"} <= set(codes)
    assert not {"XAU", "XTS", "XXX", "XDR"} & set(codes)
    assert all(len(code) == 3 and code.isupper() for code in codes)


@pytest.mark.parametrize("code", ["XAU", "XTS", "ABC", "US", ""])
def test_unknown_currencies_are_refused_with_a_hint(code):
    assert not is_supported_currency(code)
    with pytest.raises(UnknownCurrency, match=r"iso_currencies\(\)"):
        currency_exponent(code)
    with pytest.raises(UnknownCurrency, match=r"iso_currencies\(\)"):
        Money("1", code)


def test_is_supported_currency_is_case_insensitive_and_total():
    assert is_supported_currency("usd")
    assert not is_supported_currency(None)


# -- construction -------------------------------------------------------------------------------


def test_construction_forms_and_normalization():
    assert Money("19.99", "USD").amount == Decimal("19.99")
    assert Money(Decimal("5"), "jpy") == Money(5, "JPY")
    assert Money(Decimal("5"), "jpy").currency == "JPY"
    assert Money(500, "JPY").amount == Decimal("500")
    assert Money("5", "USD").amount.as_tuple().exponent == -2
    assert str(Money("5", "USD").amount) == "5.00"
    assert Money("19.990", "USD") == Money("19.99", "USD")
    # What a 4-place DecimalField column hands back.
    assert Money(Decimal("19.9900"), "USD") == usd("19.99")
    assert Money(Decimal("500.0000"), "JPY").amount == Decimal("500")


def test_negative_zero_has_no_sign():
    assert str(Money("-0.000", "USD")) == "0.00 USD"
    assert str(-Money.zero("USD")) == "0.00 USD"


@pytest.mark.parametrize("amount", [19.99, 1.0, True, False])
def test_floats_and_bools_are_refused(amount):
    with pytest.raises(TypeError, match="str or Decimal"):
        Money(amount, "USD")


def test_float_hazard_this_module_exists_for():
    assert int(19.99 * 100) == 1998
    assert usd("19.99").to_minor_units() == 1999


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_finite_amounts_are_refused(amount):
    with pytest.raises(MoneyError, match="finite"):
        Money(Decimal(amount), "USD")
    with pytest.raises(MoneyError):
        Money(amount, "USD")


def test_unparseable_and_odd_types():
    with pytest.raises(MoneyError, match="not a decimal number"):
        Money("19,99", "USD")
    with pytest.raises(TypeError):
        Money(None, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money("1", 840)  # type: ignore[arg-type]


def test_more_precision_than_the_currency_allows_is_an_error_not_rounding():
    with pytest.raises(AmountPrecisionError) as info:
        Money("19.999", "USD")
    message = str(info.value)
    assert "USD" in message
    assert "exponent is 2" in message
    assert "Money.rounded(" in message
    assert info.value.code == "amount_precision"
    with pytest.raises(AmountPrecisionError, match="exponent is 0"):
        Money("500.5", "JPY")
    with pytest.raises(AmountPrecisionError):
        Money("1.2345", "KWD")


def test_absurd_amounts_are_refused_cheaply():
    with pytest.raises(MoneyError, match="significant digits"):
        Money("1E999999999", "USD")
    with pytest.raises(AmountPrecisionError):
        Money("1E-999999999", "USD")
    Money("9" * (MAX_DIGITS - 2), "USD")
    with pytest.raises(MoneyError):
        Money("9" * (MAX_DIGITS - 1), "USD")


def test_exactness_does_not_depend_on_the_callers_decimal_context():
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = ROUND_DOWN
        assert usd("123456.78").to_minor_units() == 12345678
        assert (usd("99999.99") + usd("0.01")).amount == Decimal("100000.00")
        assert usd("19.99").percentage("3") == usd("0.60")


def test_frozen_hashable_picklable():
    money = usd("1")
    with pytest.raises(AttributeError):
        money.amount = Decimal("2")  # type: ignore[misc]
    assert hash(money) == hash(usd("1.00"))
    assert len({money, usd("1.00"), Money("1", "EUR")}) == 2
    assert pickle.loads(pickle.dumps(money)) == money


def test_str_and_repr():
    assert str(usd("19.99")) == "19.99 USD"
    assert str(Money(500, "JPY")) == "500 JPY"
    assert str(Money("1.5", "KWD")) == "1.500 KWD"
    assert repr(usd("1")) == "Money(amount=Decimal('1.00'), currency='USD')"


# -- minor units (ISO) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("19.99", "USD", 1999),
        (Decimal("19.99"), "USD", 1999),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
        ("12.3456", "CLF", 123456),
        ("-0.01", "EUR", -1),
        ("10", "ISK", 10),
        ("100.50", "MGA", 10050),
    ],
)
def test_to_minor_units_known_values(amount, currency, units):
    money = Money(amount, currency)
    assert money.to_minor_units() == units
    assert ISO_RULES.to_minor_units(money) == units
    assert Money.from_minor_units(units, currency) == money


@FAST
@given(cents=st.integers(min_value=0, max_value=10**12))
def test_usd_cents_never_lose_a_cent(cents):
    text = f"{cents // 100}.{cents % 100:02d}"
    assert Money(text, "USD").to_minor_units() == cents
    assert Money(Decimal(text), "USD").to_minor_units() == cents
    assert Money.from_minor_units(cents, "USD").amount == Decimal(text)


@FAST
@given(currency=CURRENCIES, units=UNITS)
def test_iso_round_trip_for_every_currency(currency, units):
    money = Money.from_minor_units(units, currency)
    exponent = currency_exponent(currency)
    assert money.to_minor_units() == units
    assert Fraction(money.amount) == Fraction(units, 10**exponent)
    assert money.amount.as_tuple().exponent == -exponent
    # Through text, the way amounts arrive from forms and JSON.
    assert Money(str(money.amount), currency.lower()) == money
    assert ISO_RULES.from_minor_units(ISO_RULES.to_minor_units(money), currency) == money


def test_from_minor_units_wants_an_int():
    with pytest.raises(TypeError):
        Money.from_minor_units(19.99, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money.from_minor_units(True, "USD")
    with pytest.raises(TypeError):
        Money.from_minor_units("1999", "USD")  # type: ignore[arg-type]


# -- arithmetic ---------------------------------------------------------------------------------


def test_add_subtract_negate_abs():
    assert usd("19.99") + usd("0.01") == usd("20")
    assert usd("1") - usd("2.50") == usd("-1.50")
    assert -usd("1") == usd("-1")
    assert abs(usd("-1")) == usd("1")
    total = usd("0")
    total += usd("0.10")
    assert total == usd("0.10")


def test_mixing_currencies_is_refused():
    with pytest.raises(CurrencyMismatch, match=r"19\.99 USD and 1\.00 EUR"):
        usd("19.99") + Money("1", "EUR")
    with pytest.raises(CurrencyMismatch):
        usd("1") - Money("1", "EUR")
    with pytest.raises(CurrencyMismatch):
        assert usd("1") < Money("1", "EUR")
    with pytest.raises(CurrencyMismatch):
        sum_money([usd("1"), Money("1", "EUR")], "USD")
    with pytest.raises(CurrencyMismatch):
        sum_money([usd("1")], "EUR")


@pytest.mark.parametrize("other", [1, Decimal("1"), "1", 1.0, None])
def test_adding_non_money_is_a_type_error(other):
    with pytest.raises(TypeError):
        usd("1") + other
    with pytest.raises(TypeError):
        other + usd("1")
    with pytest.raises(TypeError):
        usd("1") - other
    with pytest.raises(TypeError):
        assert usd("1") < other


def test_equality_is_currency_and_amount():
    assert usd("1") == usd("1.00")
    assert usd("1") != Money("1", "EUR")
    assert usd("1") != Decimal("1")
    assert Money(1, "JPY") != Money(1, "KRW")


def test_comparisons_within_a_currency():
    assert usd("1") < usd("1.01") <= usd("1.01")
    assert usd("2") > usd("1.99") >= usd("1.99")
    assert sorted([usd("3"), usd("-1"), usd("2")]) == [usd("-1"), usd("2"), usd("3")]
    assert max(usd("3"), usd("4")) == usd("4")


def test_multiplication_must_stay_exact():
    assert usd("19.99") * 3 == usd("59.97")
    assert 3 * usd("19.99") == usd("59.97")
    assert usd("10.00") * Decimal("0.25") == usd("2.50")
    with pytest.raises(AmountPrecisionError, match=r"percentage|Money\.rounded"):
        usd("19.99") * Decimal("0.5")
    with pytest.raises(TypeError):
        usd("1") * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        usd("1") * "2"  # type: ignore[operator]
    with pytest.raises(TypeError):
        usd("1") * usd("1")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("amount", "rate", "expected"),
    [
        ("19.99", "3", "0.60"),  # 0.5997
        ("19.99", Decimal("2.9"), "0.58"),  # 0.57971
        ("10.00", "0.05", "0.01"),  # 0.005, half up
        ("100.00", "12.5", "12.50"),
        ("0.01", "50", "0.01"),  # 0.005, half up
        ("-0.01", "50", "-0.01"),  # half up is away from zero
        ("100.00", 0, "0.00"),
    ],
)
def test_percentage(amount, rate, expected):
    assert usd(amount).percentage(rate) == usd(expected)


def test_percentage_rounds_once_from_the_exact_value():
    # 0.4999...% of 1.00 is 0.004999...; rounding it to 28 or 34 digits first would give
    # 0.005000 and then 0.01.
    rate = "0.4" + "9" * 40
    assert usd("1.00").percentage(rate) == usd("0.00")
    assert usd("0.01").percentage("50", rounding=ROUND_HALF_EVEN) == usd("0.00")
    assert Money(1001, "JPY").percentage("0.05") == Money(1, "JPY")
    assert Money("1.000", "KWD").percentage("0.05") == Money("0.001", "KWD")
    with pytest.raises(TypeError):
        usd("1").percentage(3.0)  # type: ignore[arg-type]


@FAST
@given(
    currency=CURRENCIES,
    units=st.integers(min_value=-(10**12), max_value=10**12),
    rate=st.decimals(min_value=-200, max_value=200, places=4),
)
def test_percentage_matches_exact_fraction_arithmetic(currency, units, rate):
    money = Money.from_minor_units(units, currency)
    result = money.percentage(rate)
    exact = Fraction(money.amount) * Fraction(rate) / 100
    step = Fraction(1, 10 ** currency_exponent(currency))
    assert abs(Fraction(result.amount) - exact) <= step / 2


def test_rounded_is_the_explicit_rounding_door():
    assert Money.rounded("2.675", "USD") == usd("2.68")
    assert Money.rounded("2.665", "USD") == usd("2.66")  # half even by default
    assert Money.rounded(Decimal("19.999"), "USD", ROUND_DOWN) == usd("19.99")
    assert Money.rounded("500.5", "JPY") == Money(500, "JPY")
    assert Money.rounded("1", "KWD") == Money("1.000", "KWD")
    with pytest.raises(TypeError):
        Money.rounded(2.675, "USD")  # type: ignore[arg-type]


def test_zero_sum_and_predicates():
    assert Money.zero("JPY") == Money(0, "JPY")
    assert Money.zero("usd").is_zero()
    assert usd("0.01").is_positive()
    assert usd("-0.01").is_negative()
    assert not usd("0").is_positive()
    assert not usd("0").is_negative()
    assert sum_money([], "USD") == usd("0")
    assert sum_money((usd("0.10") for _ in range(10)), "usd") == usd("1")


# -- provider wire rules ------------------------------------------------------------------------


def test_stripe_three_decimal_needs_a_trailing_zero():
    with pytest.raises(AmountPrecisionError) as info:
        STRIPE_RULES.to_minor_units(Money("1.234", "KWD"))
    assert "Stripe" in str(info.value)
    assert "1.230 or 1.240 KWD" in str(info.value)
    assert STRIPE_RULES.to_minor_units(Money("1.230", "KWD")) == 1230
    assert STRIPE_RULES.to_minor_units(Money("5.12", "KWD")) == 5120
    assert STRIPE_RULES.from_minor_units(1230, "KWD") == Money("1.23", "KWD")


def test_stripe_zero_decimal_mga_differs_from_iso():
    with pytest.raises(AmountPrecisionError) as info:
        STRIPE_RULES.to_minor_units(Money("100.50", "MGA"))
    assert str(info.value) == (
        "Stripe treats MGA as zero-decimal: 100.50 MGA cannot be sent; charge a whole amount."
    )
    assert STRIPE_RULES.to_minor_units(Money("100", "MGA")) == 100
    assert STRIPE_RULES.from_minor_units(100, "MGA") == Money("100", "MGA")
    assert ISO_RULES.to_minor_units(Money("100", "MGA")) == 10000
    assert STRIPE_RULES.to_minor_units(Money(500, "JPY")) == 500


def test_stripe_isk_is_two_decimal_on_the_wire_but_whole_kronur():
    assert STRIPE_RULES.exponent("ISK") == 2
    assert STRIPE_RULES.to_minor_units(Money("10", "ISK")) == 1000
    assert STRIPE_RULES.from_minor_units(1000, "ISK") == Money("10", "ISK")
    with pytest.raises(AmountPrecisionError, match="Stripe amount 1050 in ISK"):
        STRIPE_RULES.from_minor_units(1050, "ISK")


def test_whole_units_only_with_an_iso_fraction():
    payouts = MinorUnitRules("Stripe payouts", whole_units_only=frozenset({"HUF"}))
    assert payouts.to_minor_units(Money("1000", "HUF")) == 100000
    with pytest.raises(AmountPrecisionError, match="only whole HUF"):
        payouts.to_minor_units(Money("1000.50", "HUF"))


def test_stripe_refuses_iqd_and_lyd_instead_of_guessing():
    for code in ("IQD", "LYD"):
        assert not STRIPE_RULES.supports(code)
        with pytest.raises(UnknownCurrency, match=f"Stripe does not accept {code}"):
            STRIPE_RULES.to_minor_units(Money("1", code))
        with pytest.raises(UnknownCurrency):
            STRIPE_RULES.from_minor_units(1000, code)
    assert STRIPE_RULES.supports("usd")
    assert STRIPE_RULES.exponents["JPY"] == 0
    assert set(STRIPE_RULES.exponents) == STRIPE_ZERO_DECIMAL | {"ISK"}


def test_paypal_decimal_strings():
    assert PAYPAL_RULES.to_decimal_string(Money(500, "JPY")) == "500"
    assert PAYPAL_RULES.to_decimal_string(usd("19.9")) == "19.90"
    assert PAYPAL_RULES.to_decimal_string(Money("1000", "HUF")) == "1000"
    assert PAYPAL_RULES.to_decimal_string(Money("-0.5", "EUR")) == "-0.50"
    with pytest.raises(AmountPrecisionError, match="PayPal treats HUF as zero-decimal"):
        PAYPAL_RULES.to_decimal_string(Money("1000.50", "HUF"))
    with pytest.raises(AmountPrecisionError, match="PayPal treats TWD"):
        PAYPAL_RULES.to_minor_units(Money("1.50", "TWD"))
    assert PAYPAL_RULES.from_decimal_string("19.90", "usd") == usd("19.9")
    assert PAYPAL_RULES.from_decimal_string("500", "JPY") == Money(500, "JPY")
    # ISO rules give the major-unit strings iyzico and NOWPayments expect.
    assert ISO_RULES.to_decimal_string(Money("1.5", "KWD")) == "1.500"
    assert ISO_RULES.to_decimal_string(Money(0, "JPY")) == "0"


def test_kicc_is_krw_only():
    assert KICC_RULES.to_minor_units(Money(50000, "KRW")) == 50000
    assert KICC_RULES.from_minor_units(50000, "krw") == Money(50000, "KRW")
    assert KICC_RULES.supports("KRW")
    assert not KICC_RULES.supports("USD")
    with pytest.raises(UnknownCurrency, match=r"KICC does not accept USD\. It accepts KRW\."):
        KICC_RULES.to_minor_units(usd("1"))


def test_rules_validate_their_own_tables():
    with pytest.raises(UnknownCurrency):
        MinorUnitRules("typo", exponents={"JYP": 0})
    with pytest.raises(ValueError, match="round_to_ten"):
        MinorUnitRules("bad", round_to_ten=frozenset({"JPY"}))
    with pytest.raises(ValueError, match="exponent"):
        MinorUnitRules("bad", exponents={"USD": -1})
    rules = MinorUnitRules("lower", exponents={"jpy": 0}, currencies=frozenset({"jpy"}))
    assert rules.exponents == {"JPY": 0}
    assert rules.currencies == frozenset({"JPY"})
    assert rules == MinorUnitRules("lower", exponents={"JPY": 0}, currencies=frozenset({"JPY"}))
    with pytest.raises(TypeError):
        rules.exponents["USD"] = 2  # type: ignore[index]


def _wire_units(rules: MinorUnitRules, money: Money) -> int | None:
    """Independent oracle: the provider's integer for ``money``, or None if it must refuse."""
    wire = rules.exponent(money.currency)
    scaled = Fraction(money.amount) * 10**wire
    if scaled.denominator != 1:
        return None
    units = int(scaled)
    if money.currency in rules.whole_units_only and units % 10**wire:
        return None
    if money.currency in rules.round_to_ten and units % 10:
        return None
    return units


@FAST
@given(rules=st.sampled_from(ALL_RULES), currency=CURRENCIES, units=UNITS)
def test_provider_round_trips_for_every_currency(rules, currency, units):
    money = Money.from_minor_units(units, currency)
    if not rules.supports(currency):
        with pytest.raises(UnknownCurrency):
            rules.to_minor_units(money)
        return
    expected = _wire_units(rules, money)
    if expected is None:
        with pytest.raises(AmountPrecisionError, match=rules.name):
            rules.to_minor_units(money)
        with pytest.raises(AmountPrecisionError):
            rules.to_decimal_string(money)
        return
    assert rules.to_minor_units(money) == expected
    assert rules.from_minor_units(expected, currency) == money
    text = rules.to_decimal_string(money)
    assert Decimal(text) == money.amount
    assert Decimal(text).as_tuple().exponent == -rules.exponent(currency)
    assert rules.from_decimal_string(text, currency) == money


@FAST
@given(rules=st.sampled_from(ALL_RULES), currency=CURRENCIES, units=UNITS)
def test_provider_integers_map_back_exactly_or_are_refused(rules, currency, units):
    if not rules.supports(currency):
        return
    wire = rules.exponent(currency)
    try:
        money = rules.from_minor_units(units, currency)
    except AmountPrecisionError:
        # Only possible where the wire has more decimals than ISO (Stripe ISK).
        assert wire > currency_exponent(currency)
        assert Fraction(units, 10**wire).denominator != 1
        return
    assert Fraction(money.amount) == Fraction(units, 10**wire)
    if _wire_units(rules, money) is not None:
        assert rules.to_minor_units(money) == units


def test_every_currency_under_every_rules_table():
    # Deterministic sweep next to the sampled properties above, so no currency is left to luck.
    for rules in ALL_RULES:
        for currency in iso_currencies():
            for units in (0, 1, 10, 1234, -1999, 10**15):
                money = Money.from_minor_units(units, currency)
                assert money.to_minor_units() == units
                if not rules.supports(currency):
                    continue
                expected = _wire_units(rules, money)
                if expected is None:
                    with pytest.raises(AmountPrecisionError):
                        rules.to_minor_units(money)
                else:
                    assert rules.to_minor_units(money) == expected
                    assert rules.from_minor_units(expected, currency) == money


# -- display ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("500", "JPY", "ja_JP", "￥500"),
        ("0", "JPY", "en_US", "¥0"),
        ("1234.5", "USD", "en_US", "$1,234.50"),
        ("1234.5", "USD", "de_DE", "1.234,50\xa0$"),
        ("1234.5", "EUR", "fr_FR", "1\u202f234,50\xa0€"),
        ("-5", "USD", "en_US", "-$5.00"),
        ("1000000", "KRW", "ko_KR", "₩1,000,000"),
        ("1.234", "KWD", "en_US", "KWD1.234"),
        # CLDR would show these with 0 decimals (hiding the .50) and with 0 for IQD.
        ("100.50", "MGA", "en_US", "MGA100.50"),
        ("1000", "IQD", "en_US", "IQD1,000.000"),
        ("12.3456", "CLF", "es_CL", "CLF12,3456"),
    ],
)
def test_format_uses_iso_digits(amount, currency, locale, expected):
    money = Money(amount, currency)
    assert format_money(money, locale) == expected
    assert money.format(locale) == expected


def test_format_defaults_to_en_us():
    assert usd("1234.5").format() == "$1,234.50"
    assert format_money(usd("0.1")) == "$0.10"


def test_user_guide_examples_run():
    guide = Path(__file__).resolve().parent.parent / "docs" / "money.md"
    result = doctest.testfile(str(guide), module_relative=False)
    assert result.failed == 0
