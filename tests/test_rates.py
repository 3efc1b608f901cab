"""Exchange rates: the ECB source, storing rates, finding direct/inverse/cross rates, converting.

No test touches the network: the ECB source gets an ``httpx.Client`` over a
``MockTransport`` that serves the stored samples in ``tests/fixtures/ecb/`` (the real
``eurofxref`` format, copied from the ECB's daily and 90-day files).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paydesk.exceptions import ConfigurationError, UnknownCurrency
from paydesk.models import ExchangeRate
from paydesk.money import Money, is_supported_currency
from paydesk.rates import (
    ECB_DAILY_URL,
    ECBRatesSource,
    ManualRatesSource,
    RateQuote,
    RatesSource,
    RatesSourceError,
    get_rates_source,
    parse_ecb_xml,
)
from paydesk.services import rates
from paydesk.services.rates import Conversion, RateNotFound

FIXTURES = Path(__file__).parent / "fixtures" / "ecb"
DAILY = (FIXTURES / "eurofxref-daily.xml").read_bytes()
HIST = (FIXTURES / "eurofxref-hist-3d.xml").read_bytes()
DAY = dt.date(2025, 6, 13)


def ecb_client(body: bytes = DAILY, status: int = 200, seen: list | None = None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": "text/xml"})

    return httpx.Client(transport=httpx.MockTransport(handler))


class FixtureECBSource(ECBRatesSource):
    """The ECB source reading the stored daily sample: what PAYDESK["RATES"]["SOURCE"] names."""

    def __init__(self) -> None:
        super().__init__(client=ecb_client())


class ListSource(RatesSource):
    name = "test-list"
    base_currency = "EUR"

    def __init__(self, quotes: list[RateQuote]) -> None:
        self.quotes = quotes

    def fetch(self) -> list[RateQuote]:
        return list(self.quotes)


@pytest.fixture(autouse=True)
def _offline_rates(settings):
    # The default source is the real ECB; in tests the configured source reads the sample.
    settings.PAYDESK = {**settings.PAYDESK, "RATES": {"SOURCE": f"{__name__}.FixtureECBSource"}}


@pytest.fixture
def ecb_rates(db) -> int:
    return rates.update_rates(source=ECBRatesSource(client=ecb_client()))


def one_day(rate: str, time: str = "2025-06-13") -> bytes:
    return f"<Cube><Cube time='{time}'><Cube currency='USD' rate='{rate}'/></Cube></Cube>".encode()


def half_even(value: Fraction, places: int = 12) -> Decimal:
    """The exact ``value`` rounded half to even at ``places`` decimals, computed independently."""
    scaled = value * 10**places
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        floor += 1
    return Decimal(floor).scaleb(-places)


# -- the ECB document ------------------------------------------------------------------------


class TestParseECB:
    def test_daily_sample(self, caplog):
        with caplog.at_level(logging.WARNING, logger="paydesk.rates"):
            quotes = parse_ecb_xml(DAILY)
        by_code = {q.quote: q for q in quotes}
        assert all(q.base == "EUR" and q.date == DAY for q in quotes)
        assert by_code["USD"].rate == Decimal("1.1512")
        assert str(by_code["JPY"].rate) == "165.76"
        assert by_code["IDR"].rate == Decimal("18811.39")
        assert str(by_code["RON"].rate) == "5.0340"  # read from the text: no float on the way
        # The sample lists 30 currencies; BGN left ISO 4217 when Bulgaria joined the euro, so
        # it is skipped (with a warning) when the installed ISO table no longer has it.
        expected = 30 if is_supported_currency("BGN") else 29
        assert len(quotes) == expected
        if expected == 29:
            assert "BGN" not in by_code
            assert "BGN" in caplog.text

    def test_history_has_every_day_oldest_first(self):
        quotes = parse_ecb_xml(HIST.decode())
        assert [q.date for q in quotes[::4]] == [
            dt.date(2025, 6, 11),
            dt.date(2025, 6, 12),
            dt.date(2025, 6, 13),
        ]
        assert len(quotes) == 12

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not xml at all", "not well-formed"),
            (b"<Envelope><Cube><Cube currency='USD' rate='1'/></Cube></Envelope>", "no <Cube"),
            (one_day("1", time="2025-13-01"), "date"),
            (one_day("abc"), "not a number"),
            (one_day("-1.2"), "positive"),
            (one_day("0"), "positive"),
            (one_day("NaN"), "positive"),
            (one_day("1.0000000000001"), "12 decimals"),
            (one_day("1000.000000000001"), "15 significant digits"),
            (
                b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Cube time="2025-06-13"/>',
                "DTD",
            ),
        ],
    )
    def test_malformed_documents_are_refused(self, body, message):
        with pytest.raises(RatesSourceError, match=message) as info:
            parse_ecb_xml(body)
        assert info.value.code == "rates_source_error"

    def test_trailing_zeros_beyond_twelve_places_are_not_digits(self):
        assert parse_ecb_xml(one_day("1.15120000000000000"))[0].rate == Decimal("1.1512")


class TestECBSource:
    def test_fetch_reads_the_configured_url_through_the_injected_client(self, settings):
        seen: list[httpx.Request] = []
        source = ECBRatesSource(client=ecb_client(seen=seen))
        quotes = source.fetch()
        assert str(seen[0].url) == ECB_DAILY_URL
        assert {q.quote for q in quotes} >= {"USD", "JPY", "TRY", "GBP"}
        assert source.name == "ecb"
        assert source.base_currency == "EUR"

    def test_url_and_timeout_come_from_settings(self, settings):
        settings.PAYDESK = {
            **settings.PAYDESK,
            "RATES": {"ECB_URL": "https://mirror.example/ecb.xml", "TIMEOUT": 3},
        }
        seen: list[httpx.Request] = []
        source = ECBRatesSource(client=ecb_client(seen=seen))
        source.fetch()
        assert str(seen[0].url) == "https://mirror.example/ecb.xml"
        assert source.timeout == 3.0

    def test_http_error_status_is_a_source_error(self):
        with pytest.raises(RatesSourceError, match="503"):
            ECBRatesSource(client=ecb_client(b"busy", status=503)).fetch()

    def test_network_failure_is_a_source_error(self):
        def fail(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectTimeout("timed out", request=request)

        source = ECBRatesSource(client=httpx.Client(transport=httpx.MockTransport(fail)))
        with pytest.raises(RatesSourceError, match="Could not reach the ECB"):
            source.fetch()

    def test_manual_source_fetches_nothing(self):
        assert ManualRatesSource().fetch() == []
        assert ManualRatesSource.name == "manual"


class TestRateQuote:
    def test_normalises_codes(self):
        quote = RateQuote(base="eur", quote=" usd ", rate=Decimal("1.1"), date=DAY)
        assert (quote.base, quote.quote) == ("EUR", "USD")

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"base": "EUR", "quote": "XYZ"}, "unknown currency"),
            ({"base": "EUR", "quote": "EUR"}, "two different"),
            ({"rate": 1.1}, "positive, finite Decimal"),
            ({"rate": Decimal("12345678901234567")}, "does not fit"),
            ({"rate": Decimal("1234.567890123456")}, "15 significant digits"),
            ({"date": dt.datetime(2025, 6, 13, tzinfo=dt.UTC)}, "needs a date"),
        ],
    )
    def test_refuses_what_cannot_be_stored_exactly(self, kwargs, message):
        values = {"base": "EUR", "quote": "USD", "rate": Decimal("1.1"), "date": DAY, **kwargs}
        with pytest.raises(RatesSourceError, match=message):
            RateQuote(**values)


class TestConfiguredSource:
    def test_default_setting_is_the_ecb(self, settings):
        settings.PAYDESK = {k: v for k, v in settings.PAYDESK.items() if k != "RATES"}
        assert isinstance(get_rates_source(), ECBRatesSource)

    def test_manual(self, settings):
        settings.PAYDESK = {
            **settings.PAYDESK,
            "RATES": {"SOURCE": "paydesk.rates.ManualRatesSource"},
        }
        assert isinstance(get_rates_source(), ManualRatesSource)

    @pytest.mark.parametrize("path", ["paydesk.rates.Nope", "paydesk.money.Money", "", None])
    def test_bad_source_is_a_configuration_error(self, settings, path):
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"SOURCE": path}}
        with pytest.raises(ConfigurationError, match="SOURCE"):
            get_rates_source()


# -- storing ---------------------------------------------------------------------------------


@pytest.mark.django_db
class TestUpdateRates:
    def test_stores_every_rate_of_the_day(self, ecb_rates):
        assert ecb_rates == ExchangeRate.objects.count() == len(parse_ecb_xml(DAILY))
        row = ExchangeRate.objects.get(base="EUR", quote="USD")
        assert (row.rate, row.date, row.source) == (Decimal("1.1512"), DAY, "ecb")

    def test_is_idempotent(self, ecb_rates):
        again = rates.update_rates(source=ECBRatesSource(client=ecb_client()))
        assert again == ecb_rates
        assert ExchangeRate.objects.count() == ecb_rates

    def test_a_corrected_rate_is_updated_in_place(self, ecb_rates):
        corrected = DAILY.replace(b"rate='1.1512'", b"rate='1.1515'")
        rates.update_rates(source=ECBRatesSource(client=ecb_client(corrected)))
        assert ExchangeRate.objects.count() == ecb_rates
        assert ExchangeRate.objects.get(base="EUR", quote="USD").rate == Decimal("1.1515")

    def test_default_source_is_the_setting(self, db):
        assert rates.update_rates() == len(parse_ecb_xml(DAILY))

    def test_history_stores_each_day(self, db):
        assert rates.update_rates(source=ECBRatesSource(client=ecb_client(HIST))) == 12
        assert ExchangeRate.objects.filter(quote="USD").count() == 3

    def test_a_failing_source_stores_nothing(self, db):
        with pytest.raises(RatesSourceError):
            rates.update_rates(source=ECBRatesSource(client=ecb_client(b"<oops", status=200)))
        assert not ExchangeRate.objects.exists()

    def test_contradicting_quotes_store_nothing(self, db):
        source = ListSource(
            [
                RateQuote("EUR", "USD", Decimal("1.1"), DAY),
                RateQuote("EUR", "GBP", Decimal("0.85"), DAY),
                RateQuote("EUR", "USD", Decimal("1.2"), DAY),
            ]
        )
        with pytest.raises(RatesSourceError, match="two rates"):
            rates.update_rates(source=source)
        assert not ExchangeRate.objects.exists()

    def test_manual_source_stores_nothing(self, db):
        assert rates.update_rates(source=ManualRatesSource()) == 0

    def test_record_rate_upserts_a_manual_rate(self, db):
        first = rates.record_rate(base="usd", quote="try", rate="39.1", date=DAY)
        second = rates.record_rate(base="USD", quote="TRY", rate=Decimal("39.2"), date=DAY)
        assert first.pk == second.pk
        assert (second.base, second.quote, second.rate, second.source) == (
            "USD",
            "TRY",
            Decimal("39.2"),
            "manual",
        )
        with pytest.raises(TypeError):
            rates.record_rate(base="USD", quote="TRY", rate=39.2, date=DAY)
        with pytest.raises(RatesSourceError):
            rates.record_rate(base="USD", quote="TRY", rate="-1", date=DAY)


# -- finding ---------------------------------------------------------------------------------


@pytest.mark.django_db
class TestLatestRate:
    def test_direct_is_the_stored_row(self, ecb_rates):
        rate = rates.latest_rate("EUR", "usd")
        assert rate.pk is not None
        assert (rate.rate, rate.date, rate.source) == (Decimal("1.1512"), DAY, "ecb")

    def test_inverse_is_exact_to_twelve_places_half_even(self, ecb_rates):
        rate = rates.latest_rate("USD", "EUR")
        assert rate.pk is None  # derived, not stored
        assert rate.rate == half_even(1 / Fraction("1.1512"))
        assert str(rate.rate) == "0.868658790827"
        assert (rate.date, rate.source) == (DAY, "ecb (inverse)")

    def test_cross_goes_through_the_sources_base(self, ecb_rates):
        rate = rates.latest_rate("USD", "TRY")
        assert rate.rate == half_even(Fraction("45.3315") / Fraction("1.1512"))
        assert (rate.date, rate.source) == (DAY, "ecb (via EUR)")
        back = rates.latest_rate("TRY", "USD")
        assert back.rate == half_even(Fraction("1.1512") / Fraction("45.3315"))

    def test_same_currency_is_one(self, db):
        rate = rates.latest_rate("JPY", "jpy", on=DAY)
        assert (rate.rate, rate.date, rate.source) == (Decimal(1), DAY, "identity")

    def test_on_a_date_uses_the_latest_rate_on_or_before_it(self, db):
        rates.update_rates(source=ECBRatesSource(client=ecb_client(HIST)))
        assert rates.latest_rate("EUR", "USD").rate == Decimal("1.1512")
        assert rates.latest_rate("EUR", "USD", on=dt.date(2025, 6, 12)).rate == Decimal("1.1588")
        # A Sunday: the ECB published nothing, Friday's rate applies.
        sunday = rates.latest_rate("EUR", "USD", on=dt.date(2025, 6, 15))
        assert (sunday.rate, sunday.date) == (Decimal("1.1512"), DAY)
        with pytest.raises(RateNotFound, match="on or before 2025-06-10"):
            rates.latest_rate("EUR", "USD", on=dt.date(2025, 6, 10))

    def test_a_cross_rate_is_dated_by_its_older_leg(self, db):
        rates.record_rate(base="EUR", quote="USD", rate="1.15", date=dt.date(2025, 6, 10))
        rates.record_rate(base="EUR", quote="TRY", rate="45", date=DAY)
        rate = rates.latest_rate("USD", "TRY")
        assert rate.date == dt.date(2025, 6, 10)
        assert rate.source == "manual (via EUR)"

    def test_manual_wins_over_fetched_on_the_same_date(self, ecb_rates):
        rates.record_rate(base="EUR", quote="USD", rate="1.2000", date=DAY)
        rate = rates.latest_rate("EUR", "USD")
        assert (rate.rate, rate.source) == (Decimal("1.2"), "manual")
        # ... and feeds the derived rates too.
        assert rates.latest_rate("USD", "TRY").source == "manual+ecb (via EUR)"

    def test_a_newer_cross_rate_beats_an_old_direct_one(self, ecb_rates):
        rates.record_rate(base="USD", quote="TRY", rate="30", date=dt.date(2024, 1, 2))
        rate = rates.latest_rate("USD", "TRY")
        assert (rate.date, rate.source) == (DAY, "ecb (via EUR)")
        # On a date before the ECB rows, only the old direct rate exists.
        old = rates.latest_rate("USD", "TRY", on=dt.date(2025, 1, 1))
        assert (old.rate, old.source) == (Decimal(30), "manual")

    def test_cross_via_can_be_configured(self, settings, db):
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"CROSS_VIA": "USD"}}
        rates.record_rate(base="USD", quote="JPY", rate="150", date=DAY)
        rates.record_rate(base="USD", quote="GBP", rate="0.75", date=DAY)
        rate = rates.latest_rate("GBP", "JPY")
        assert rate.rate == Decimal(200)
        assert rate.source == "manual (via USD)"

    def test_unknown_currency(self, ecb_rates):
        with pytest.raises(UnknownCurrency) as info:
            rates.latest_rate("EUR", "XYZ")
        assert info.value.code == "unknown_currency"

    def test_missing_rate(self, ecb_rates):
        with pytest.raises(RateNotFound) as info:
            rates.latest_rate("USD", "KWD")
        assert info.value.code == "rate_not_found"
        assert info.value.http_status == 404
        assert "update_exchange_rates" in info.value.message

    def test_no_rates_at_all(self, db):
        with pytest.raises(RateNotFound):
            rates.latest_rate("EUR", "USD")

    def test_max_age(self, settings, ecb_rates):
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"MAX_AGE_DAYS": 3}}
        assert rates.latest_rate("EUR", "USD", on=dt.date(2025, 6, 16)).date == DAY
        with pytest.raises(RateNotFound, match="more than 3 days"):
            rates.latest_rate("EUR", "USD", on=dt.date(2025, 6, 17))
        assert rates.latest_rates("EUR", on=dt.date(2025, 6, 17)) == []

    @pytest.mark.parametrize("value", [-1, "7", 1.5, True])
    def test_bad_max_age_is_a_configuration_error(self, settings, ecb_rates, value):
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"MAX_AGE_DAYS": value}}
        with pytest.raises(ConfigurationError, match="MAX_AGE_DAYS"):
            rates.latest_rate("EUR", "USD")

    def test_latest_rates_for_the_base_and_for_another_currency(self, ecb_rates):
        from_eur = {r.quote: r for r in rates.latest_rates("EUR")}
        assert len(from_eur) == ecb_rates
        assert from_eur["USD"].rate == Decimal("1.1512")
        from_usd = {r.quote: r for r in rates.latest_rates("USD")}
        assert "USD" not in from_usd
        assert from_usd["EUR"].source == "ecb (inverse)"
        assert from_usd["TRY"].rate == rates.latest_rate("USD", "TRY").rate
        assert list(from_usd) == sorted(from_usd)
        assert rates.latest_rates("KWD") == []

    def test_latest_rate_queries_are_constant(self, ecb_rates, django_assert_max_num_queries):
        with django_assert_max_num_queries(1):
            rates.latest_rate("USD", "TRY")
        with django_assert_max_num_queries(1):
            rates.latest_rates("USD")


# -- converting ------------------------------------------------------------------------------


@pytest.mark.django_db
class TestConvert:
    def test_usd_to_eur_states_rate_date_and_rounding(self, ecb_rates):
        conversion = rates.convert(money=Money("10.00", "USD"), to="EUR")
        assert isinstance(conversion, Conversion)
        # 10 / 1.1512 = 8.6865879... -> 8.69
        assert conversion.result == Money("8.69", "EUR")
        assert conversion.rate == Decimal("0.868658790827")
        assert (conversion.rate_date, conversion.source) == (DAY, "ecb (inverse)")
        assert conversion.rounding == ROUND_HALF_EVEN
        assert conversion.original == Money("10.00", "USD")

    def test_rounds_to_the_target_exponent(self, ecb_rates):
        assert rates.convert(money=Money("1.00", "EUR"), to="JPY").result == Money(166, "JPY")
        rates.record_rate(base="EUR", quote="KWD", rate="0.35123", date=DAY)
        # 12.34 * 0.35123 = 4.3341782 -> 4.334 (KWD has three decimals)
        assert rates.convert(money=Money("12.34", "EUR"), to="KWD").result == Money("4.334", "KWD")

    def test_ties_round_half_even_unless_configured(self, settings, db):
        rates.record_rate(base="USD", quote="EUR", rate="0.5", date=DAY)
        # 0.01 USD * 0.5 = 0.005 EUR exactly: half-even gives 0.00, half-up 0.01.
        assert rates.convert(money=Money("0.01", "USD"), to="EUR").result == Money("0", "EUR")
        assert rates.convert(money=Money("0.03", "USD"), to="EUR").result == Money("0.02", "EUR")
        up = rates.convert(money=Money("0.01", "USD"), to="EUR", rounding=ROUND_HALF_UP)
        assert (up.result, up.rounding) == (Money("0.01", "EUR"), ROUND_HALF_UP)
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"ROUNDING": ROUND_HALF_UP}}
        assert rates.convert(money=Money("0.01", "USD"), to="EUR").result == Money("0.01", "EUR")

    def test_bad_rounding_is_a_configuration_error(self, settings, ecb_rates):
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"ROUNDING": "nearest"}}
        with pytest.raises(ConfigurationError, match="ROUNDING"):
            rates.convert(money=Money("1", "EUR"), to="USD")

    def test_same_currency(self, db):
        conversion = rates.convert(money=Money("5.00", "USD"), to="USD", on=DAY)
        assert (conversion.result, conversion.rate) == (Money("5.00", "USD"), Decimal(1))

    def test_errors(self, ecb_rates):
        with pytest.raises(UnknownCurrency):
            rates.convert(money=Money("1", "EUR"), to="ABC")
        with pytest.raises(RateNotFound):
            rates.convert(money=Money("1", "EUR"), to="KWD")
        with pytest.raises(TypeError):
            rates.convert(money=Decimal("1"), to="USD")  # type: ignore[arg-type]

    def test_large_amounts_stay_exact(self, ecb_rates):
        amount = Money("123456789012345678.91", "EUR")
        conversion = rates.convert(money=amount, to="IDR")
        with localcontext(prec=100):
            exact = amount.amount * Decimal("18811.39")
        assert conversion.result == Money.rounded(exact, "IDR")

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        cents=st.integers(min_value=-(10**15), max_value=10**15),
        rate=st.decimals(
            min_value=Decimal("0.000000000001"),
            max_value=Decimal("999.999999999999"),  # 15 significant digits at most
            places=12,
            allow_nan=False,
            allow_infinity=False,
        ),
        source=st.sampled_from(["USD", "JPY", "KWD"]),
        target=st.sampled_from(["EUR", "JPY", "BHD", "CLF"]),
    )
    def test_converting_equals_rounding_the_exact_product(self, db, cents, rate, source, target):
        if source == target:
            return
        money = Money.from_minor_units(cents, source)
        rates.record_rate(base=source, quote=target, rate=rate, date=DAY)
        conversion = rates.convert(money=money, to=target, on=DAY)
        with localcontext(prec=100):
            exact = money.amount * conversion.rate
        assert conversion.rate == rate
        assert conversion.result == Money.rounded(exact, target)
        # ... and the inverse the other way is 1/rate, exact to 12 places, half even.
        inverse = rates.latest_rate(target, source, on=DAY)
        assert inverse.rate == half_even(1 / Fraction(rate))


# -- the command -----------------------------------------------------------------------------


@pytest.mark.django_db
class TestCommand:
    def test_prints_how_many_rates_were_stored(self):
        out = StringIO()
        call_command("update_exchange_rates", stdout=out)
        count = len(parse_ecb_xml(DAILY))
        assert out.getvalue().strip() == f"Stored {count} exchange rates from ecb."
        call_command("update_exchange_rates", stdout=out)
        assert ExchangeRate.objects.count() == count

    def test_source_option(self):
        out = StringIO()
        call_command(
            "update_exchange_rates", "--source", "paydesk.rates.ManualRatesSource", stdout=out
        )
        assert out.getvalue().strip() == "Stored 0 exchange rates from manual."

    @pytest.mark.parametrize("path", ["paydesk.rates.Missing", "paydesk.money.Money"])
    def test_bad_source_option(self, path):
        with pytest.raises(CommandError, match="--source"):
            call_command("update_exchange_rates", "--source", path)

    def test_source_failure_is_a_command_error(self, settings):
        settings.PAYDESK = {**settings.PAYDESK, "RATES": {"SOURCE": f"{__name__}.BrokenSource"}}
        with pytest.raises(CommandError, match="rates_source_error"):
            call_command("update_exchange_rates")
        assert not ExchangeRate.objects.exists()


class BrokenSource(ECBRatesSource):
    def __init__(self) -> None:
        super().__init__(client=ecb_client(b"gateway timeout", status=504))
