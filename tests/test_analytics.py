"""Analytics: exact figures against a hand-computed fixture, a constant number of queries.

The fixture is made through paydesk's services (sandbox provider) with the clock set, so
``created_at``, ``processed_at`` and refund times are known to the second. Every expected
figure below was worked out by hand from the table in ``build_fixture``'s docstring.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import PaymentValidationError
from paydesk.money import Money
from paydesk.services import analytics, ledger
from paydesk.states import LedgerKind

pytestmark = pytest.mark.django_db

D = Decimal
UTC = dt.UTC


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@contextmanager
def clock(moment: dt.datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def paid(
    amount: str,
    currency: str,
    created: dt.datetime,
    *,
    token: str = "pm_sandbox_visa",
    after: int = 60,
    provider: str = "sandbox",
):
    """A payment created at ``created`` and processed ``after`` seconds later."""
    with clock(created):
        payment = services.create_payment(amount=amount, currency=currency, provider=provider)
    if token:
        with clock(created + dt.timedelta(seconds=after)):
            payment = services.process_payment(payment=payment, payment_method_token=token)
    return payment


def refund(payment, amount: str, reason: str, requested: dt.datetime, *, after: int = 0):
    with clock(requested):
        refund = services.create_refund(
            payment=payment, amount=amount, reason=reason, process=False
        )
    with clock(requested + dt.timedelta(seconds=after)):
        return services.process_refund(refund=refund)


def dispute(payment, opened: dt.datetime) -> None:
    with clock(opened), transaction.atomic():
        locked = ledger.locked_payment(payment)
        ledger.append(
            locked,
            kind=LedgerKind.DISPUTE_OPENED,
            key=f"dispute:{payment.pk}",
            amount=locked.amount,
            ref=f"dp_{payment.pk}",
        )
        ledger.refresh(locked)


@pytest.fixture
def fixture(db):
    return build_fixture()


@override_settings(
    PAYDESK={
        "PROCESSING_FEE_RATE": "2.5",
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "off"},
            }
        },
    }
)
def build_fixture() -> dict[str, object]:
    """March 2026, processing fee 2.5 %:

    ====  ======  ====  ===============  ==========================================
    id    amount  cur.  created          outcome
    ====  ======  ====  ===============  ==========================================
    p1    100.00  USD   03-02 10:00      completed after 60 s; refund 30.00 "damaged"
                                         requested 03-05 09:00, completed 300 s later
    p2     50.00  USD   03-02 12:00      completed after 120 s; dispute opened 03-06
    p3     20.00  USD   03-03 12:00      card_declined
    p4     20.00  USD   03-03 13:00      insufficient_funds
    p5     10.00  USD   03-04 12:00      pending (never sent)
    p6     80.00  USD   03-04 15:00      completed after 180 s; refund 80.00 "duplicate"
                                         requested 03-07 12:00, completed 100 s later
    e1     40.00  EUR   03-10 12:00      completed after 30 s
    e2     15.50  EUR   03-10 13:00      card_declined
    old   999.00  USD   02-27 12:00      completed (outside the range)
    ====  ======  ====  ===============  ==========================================
    """
    p1 = paid("100.00", "USD", at(2, 10))
    p2 = paid("50.00", "USD", at(2, 12), after=120)
    p3 = paid("20.00", "USD", at(3, 12), token="pm_sandbox_declined")
    p4 = paid("20.00", "USD", at(3, 13), token="pm_sandbox_insufficient")
    p5 = paid("10.00", "USD", at(4, 12), token="")
    p6 = paid("80.00", "USD", at(4, 15), after=180)
    e1 = paid("40.00", "EUR", at(10, 12), after=30)
    e2 = paid("15.50", "EUR", at(10, 13), token="pm_sandbox_declined")
    old = paid("999.00", "USD", at(27, month=2))
    refund(p1, "30.00", "damaged", at(5, 9), after=300)
    refund(p6, "80.00", "duplicate", at(7, 12), after=100)
    dispute(p2, at(6))
    return {
        "p1": p1,
        "p2": p2,
        "p3": p3,
        "p4": p4,
        "p5": p5,
        "p6": p6,
        "e1": e1,
        "e2": e2,
        "old": old,
    }


MARCH = {"start": dt.date(2026, 3, 1), "end": dt.date(2026, 3, 31)}


def test_summary_matches_the_hand_computed_figures(fixture):
    report = analytics.summary(**MARCH)

    assert [c.currency for c in report.currencies] == ["EUR", "USD"]
    usd = report["USD"]
    assert usd.payments == 6
    assert usd.attempted == 5
    assert usd.successful == 3
    assert usd.failed == 2
    assert usd.success_rate == D("0.6000")
    assert usd.gross_volume == Money("230.00", "USD")
    assert usd.refunded == Money("110.00", "USD")
    assert usd.net_revenue == Money("120.00", "USD")
    assert usd.fees == Money("5.75", "USD")  # 2.50 + 1.25 + 2.00
    assert usd.average_order_value == Money("76.67", "USD")  # 230 / 3
    assert usd.refund_rate == D("0.6667")  # p1 and p6 of 3
    assert usd.failures == {"card_declined": 1, "insufficient_funds": 1}
    assert usd.refunds.count == 2
    assert usd.refunds.completed == 2
    assert usd.refunds.pending == 0
    assert usd.refunds.amount == Money("110.00", "USD")
    assert usd.refunds.average_processing_time == dt.timedelta(seconds=200)  # (300 + 100) / 2
    assert [(r.reason, r.count, r.amount) for r in usd.refunds.reasons] == [
        ("damaged", 1, Money("30.00", "USD")),
        ("duplicate", 1, Money("80.00", "USD")),
    ]
    assert usd.disputes == 1

    eur = report["EUR"]
    assert (eur.payments, eur.attempted, eur.successful, eur.failed) == (2, 2, 1, 1)
    assert eur.success_rate == D("0.5000")
    assert eur.gross_volume == Money("40.00", "EUR")
    assert eur.net_revenue == Money("40.00", "EUR")
    assert eur.fees == Money("1.00", "EUR")
    assert eur.average_order_value == Money("40.00", "EUR")
    assert eur.refund_rate == D("0.0000")
    assert eur.failures == {"card_declined": 1}
    assert eur.refunds.count == 0
    assert eur.refunds.average_processing_time is None
    assert eur.disputes == 0


def test_time_series_by_day_fills_every_day_and_matches_by_hand(fixture):
    report = analytics.time_series(start="2026-03-01", end="2026-03-07", interval="day")

    assert report.interval == "day"
    usd = report.series["USD"]
    assert [p.period for p in usd] == [dt.date(2026, 3, d) for d in range(1, 8)]
    by_day = {p.period.day: p for p in usd}
    assert by_day[1].payments == 0
    assert by_day[1].success_rate is None
    assert by_day[1].gross_volume == Money("0", "USD")
    assert (by_day[2].payments, by_day[2].successful) == (2, 2)
    assert by_day[2].gross_volume == Money("150.00", "USD")
    assert by_day[2].refunded == Money("30.00", "USD")
    assert by_day[2].net_revenue == Money("120.00", "USD")
    assert by_day[2].fees == Money("3.75", "USD")
    assert (by_day[3].payments, by_day[3].attempted, by_day[3].successful) == (2, 2, 0)
    assert by_day[3].success_rate == D("0.0000")
    assert (by_day[4].payments, by_day[4].attempted, by_day[4].successful) == (2, 1, 1)
    assert by_day[4].net_revenue == Money("0.00", "USD")  # p6 refunded in full
    # EUR had nothing in the first week; it is not in the series at all.
    assert "EUR" not in report.series


def test_time_series_by_week_and_month(fixture):
    weekly = analytics.time_series(**MARCH, interval="week")
    # Weeks start on Monday: 2026-02-23 holds March 1st (a Sunday).
    assert weekly.series["USD"][0].period == dt.date(2026, 2, 23)
    assert weekly.series["USD"][1].period == dt.date(2026, 3, 2)
    assert weekly.series["USD"][1].payments == 6
    assert weekly.series["USD"][1].gross_volume == Money("230.00", "USD")
    assert weekly.series["EUR"][2].period == dt.date(2026, 3, 9)
    assert weekly.series["EUR"][2].gross_volume == Money("40.00", "EUR")

    monthly = analytics.time_series(
        start=dt.date(2026, 2, 1), end=dt.date(2026, 3, 31), interval="month"
    )
    usd = monthly.series["USD"]
    assert [p.period for p in usd] == [dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
    assert usd[0].gross_volume == Money("999.00", "USD")
    assert usd[1].net_revenue == Money("120.00", "USD")


def test_performance_per_provider_with_the_median_time_to_complete(fixture):
    rows = analytics.performance(**MARCH, by="provider")

    assert [(r.key, r.currency) for r in rows] == [("sandbox", "EUR"), ("sandbox", "USD")]
    eur, usd = rows
    assert (usd.attempted, usd.successful, usd.success_rate) == (5, 3, D("0.6000"))
    assert usd.gross_volume == Money("230.00", "USD")
    # 60 s, 120 s and 180 s: the median is 120 s.
    assert usd.median_time_to_complete == dt.timedelta(seconds=120)
    assert eur.median_time_to_complete == dt.timedelta(seconds=30)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two(fixture):
    paid("5.00", "USD", at(20), after=10)
    paid("5.00", "USD", at(20, 13), after=1000)
    # 10, 60, 120, 180, 1000 s -> 120; add one more (240 s): (120 + 180) / 2 = 150 s.
    paid("5.00", "USD", at(21), after=240)
    row = analytics.performance(**MARCH, currency="USD")[0]
    assert row.median_time_to_complete == dt.timedelta(seconds=150)


def test_performance_per_saved_method_type(fixture, user):
    method = services.add_payment_method(
        user=user, provider_token="pm_sandbox_visa", provider="sandbox"
    )
    with clock(at(12)):
        payment = services.create_payment(
            amount="12.00", currency="USD", user=user, payment_method=method
        )
    with clock(at(12, 12, 0, 45)):
        services.process_payment(payment=payment)

    rows = analytics.performance(**MARCH, by="method_type", currency="USD")
    by_key = {r.key: r for r in rows}
    assert by_key[method.type].successful == 1
    assert by_key[method.type].median_time_to_complete == dt.timedelta(seconds=45)
    assert by_key[""].successful == 3  # payments made with a one-off token


def test_filters_provider_method_type_and_currency(fixture, mock):
    paid("70.00", "USD", at(8), provider="mock")
    everything = analytics.summary(**MARCH)["USD"]
    assert everything.gross_volume == Money("300.00", "USD")

    sandbox = analytics.summary(**MARCH, provider="sandbox")
    assert sandbox["USD"].gross_volume == Money("230.00", "USD")
    assert sandbox.filters == {"provider": "sandbox"}
    mocked = analytics.summary(**MARCH, provider="mock")
    assert [c.currency for c in mocked.currencies] == ["USD"]
    assert mocked["USD"].gross_volume == Money("70.00", "USD")
    assert mocked["USD"].refunds.count == 0
    assert mocked["USD"].disputes == 0

    eur_only = analytics.summary(**MARCH, currency="eur")
    assert [c.currency for c in eur_only.currencies] == ["EUR"]
    assert analytics.summary(**MARCH, method_type="credit_card").currencies == []


def _more_data() -> None:
    """Many more rows, in more currencies: none of it may change the number of queries."""
    for day in range(11, 25):
        paid("3.00", "USD", at(day), after=day)
        paid("4.00", "GBP", at(day, 13), token="pm_sandbox_declined")
        payment = paid("9.00", "EUR", at(day, 14), after=5)
        refund(payment, "1.00", f"reason {day % 4}", at(day, 15), after=7)


def test_each_report_needs_a_constant_number_of_queries(fixture, django_assert_num_queries):
    def run_all() -> None:
        with django_assert_num_queries(5):
            analytics.summary(**MARCH)
        with django_assert_num_queries(1):
            analytics.time_series(**MARCH, interval="day")
        with django_assert_num_queries(1):
            analytics.performance(**MARCH, by="provider")
        with django_assert_num_queries(1):
            analytics.performance(**MARCH, by="method_type")
        with django_assert_num_queries(4):
            analytics.fraud_report(**MARCH)

    run_all()
    _more_data()
    run_all()
    report = analytics.summary(**MARCH)
    assert [c.currency for c in report.currencies] == ["EUR", "GBP", "USD"]
    assert report["GBP"].failed == 14
    assert report["EUR"].refunds.count == 14
    # Reasons are ranked by count, then by text, and cut at TOP_REASONS.
    assert [(r.reason, r.count) for r in report["EUR"].refunds.reasons] == [
        ("reason 0", 4),
        ("reason 3", 4),
        ("reason 1", 3),
        ("reason 2", 3),
    ]
    with override_settings(PAYDESK={"ANALYTICS": {"TOP_REASONS": 2}}):
        reasons = analytics.summary(**MARCH)["EUR"].refunds.reasons
    assert [r.reason for r in reasons] == ["reason 0", "reason 3"]


def test_as_dict_is_json_ready(fixture):
    import json

    data = analytics.summary(**MARCH).as_dict()
    text = json.dumps(data)
    usd = next(c for c in data["currencies"] if c["currency"] == "USD")
    assert usd["gross_volume"] == "230.00"
    assert usd["success_rate"] == "0.6000"
    assert usd["refunds"]["average_processing_time"] == 200.0
    assert usd["refunds"]["reasons"][0] == {"reason": "damaged", "count": 1, "amount": "30.00"}
    assert "USD" in text
    series = analytics.time_series(**MARCH).as_dict()
    assert series["series"]["USD"][1]["period"] == "2026-03-02"


def test_datetimes_are_half_open_and_dates_include_the_whole_end_day(fixture):
    # p1 was created at 10:00 on 03-02: a range ending at that instant leaves it out.
    before = analytics.summary(start=at(1, 0), end=at(2, 10))
    assert before.currencies == []
    including = analytics.summary(start=at(1, 0), end=at(2, 10, 0, 1))
    assert including["USD"].payments == 1
    assert analytics.summary(start="2026-03-02", end="2026-03-02")["USD"].payments == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": "2026-03-05", "end": "2026-03-01"}, "end"),
        ({"start": "yesterday", "end": "2026-03-01"}, "start"),
        ({"start": "2020-01-01", "end": "2026-03-01"}, "end"),
    ],
)
def test_bad_ranges_are_refused(kwargs, field):
    with pytest.raises(PaymentValidationError) as caught:
        analytics.summary(**kwargs)
    assert caught.value.field == field


def test_bad_interval_and_grouping_are_refused():
    with pytest.raises(PaymentValidationError, match="interval"):
        analytics.time_series(**MARCH, interval="hour")
    with pytest.raises(PaymentValidationError, match="by must be"):
        analytics.performance(**MARCH, by="country")
    with (
        override_settings(PAYDESK={"ANALYTICS": {"MAX_SERIES_POINTS": 10}}),
        pytest.raises(PaymentValidationError, match="more than the 10 points"),
    ):
        analytics.time_series(**MARCH, interval="day")


def test_converted_totals_state_their_rates(fixture):
    from paydesk.models import ExchangeRate

    ExchangeRate.objects.create(base="EUR", quote="USD", rate=D("1.1"), date=dt.date(2026, 3, 31))
    report = analytics.summary(**MARCH, convert_to="USD", rate_date=dt.date(2026, 3, 31))
    converted = report.converted
    assert converted is not None
    assert converted.currency == "USD"
    assert converted.rates == {"EUR": D("1.100000000000"), "USD": D("1")}
    assert converted.rate_dates["EUR"] == dt.date(2026, 3, 31)
    # 230.00 USD + 40.00 EUR * 1.1 = 274.00 USD; refunds are all USD.
    assert converted.gross_volume == Money("274.00", "USD")
    assert converted.refunded == Money("110.00", "USD")
    assert converted.net_revenue == Money("164.00", "USD")
    # The per-currency figures are unchanged.
    assert report["EUR"].gross_volume == Money("40.00", "EUR")
