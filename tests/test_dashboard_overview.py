"""The dashboard's shell and overview: who may see it, and that its numbers are the database's.

Payments are made through the services with the sandbox provider (as a checkout makes them);
the expected figures are computed here straight from the rows, independently of
``paydesk.services.analytics``, so a dashboard that summed the wrong thing would fail.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from paydesk import services
from paydesk.dashboard.charts import ChartPoint, daily_chart
from paydesk.dashboard.views.overview import period_range
from paydesk.models import Payment
from paydesk.money import Money
from paydesk.states import PaymentStatus
from paydesk.templatetags.paydesk_dashboard import money, percent

pytestmark = pytest.mark.django_db

OVERVIEW = "paydesk_dashboard:overview"
LIVE = "paydesk_dashboard:overview-live"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def paid(amount: str, currency: str, *, token: str = "pm_sandbox_visa") -> Payment:
    payment = services.create_payment(amount=amount, currency=currency, provider="sandbox")
    return services.process_payment(payment=payment, payment_method_token=token)


def backdate(payment: Payment, days: int) -> None:
    # Only the creation time matters to the reports; the ledger is left as it is.
    Payment.objects.filter(pk=payment.pk).update(
        created_at=timezone.now() - dt.timedelta(days=days)
    )


def stat(html: str, name: str) -> str:
    match = re.search(
        rf'data-stat="{name}"><div class="label">[^<]*</div><div class="value"[^>]*>(.*?)</div>',
        html,
        re.S,
    )
    assert match, f"stat {name} not on the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def cell(html: str, currency: str, field: str) -> str:
    row = re.search(rf'<tr data-currency="{currency}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {currency}"
    match = re.search(rf'data-field="{field}"(?: data-value="([^"]*)")?>([^<]*)<', row.group(1))
    assert match, f"no {field} cell for {currency}"
    return match.group(1) if match.group(1) is not None else match.group(2)


# -- who may see it ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    response = client.get(reverse(OVERVIEW))
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


@override_settings(PAYDESK={"DASHBOARD": {"LOGIN_URL": "/accounts/login/"}})
def test_the_login_url_is_a_setting(client):
    response = client.get(reverse(LIVE) + "?period=today")
    assert (
        response["Location"] == "/accounts/login/?next=/dashboard/overview/live/%3Fperiod%3Dtoday"
    )


def test_signed_in_non_staff_get_403_and_no_numbers(client, user):
    paid("10.00", "USD")
    client.force_login(user)
    for name in (OVERVIEW, LIVE):
        response = client.get(reverse(name))
        assert response.status_code == 403
        assert b"staff only" in response.content
        assert b"data-stat" not in response.content


def test_pages_are_never_cached(staff_client):
    response = staff_client.get(reverse(OVERVIEW))
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_the_shell_ships_its_assets_and_no_cdn(staff_client):
    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    for asset in ("theme.js", "dashboard.css", "vendor/htmx-2.0.11.min.js", "dashboard.js"):
        assert f"/static/paydesk/dashboard/{asset}" in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "an asset from another origin"
    # The theme is set before the stylesheet paints, so a dark choice never flashes light.
    assert html.index("theme.js") < html.index("dashboard.css")
    assert 'aria-current="page">Overview' in html
    assert 'class="skip-link" href="#main"' in html


def test_every_navigation_link_resolves_for_staff(staff_client):
    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    nav = re.search(r'<nav class="nav".*?</nav>', html, re.S).group(0)
    links = re.findall(r'href="([^"]+)"', nav)
    assert len(links) == 6
    for link in links:
        assert staff_client.get(link).status_code == 200, link


# -- the numbers ------------------------------------------------------------------------------


def test_the_overview_numbers_are_the_databases(staff_client):
    usd = [paid("10.00", "USD"), paid("25.50", "USD"), paid("7.25", "USD")]
    paid("5.00", "USD", token="pm_sandbox_declined")
    paid("1000", "JPY")
    services.create_refund(payment=usd[1], amount="5.50", reason="damaged")
    old = paid("99.00", "USD")
    backdate(old, 20)  # outside 7 days, inside 30

    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    week = Payment.objects.filter(created_at__gte=period_range("7d")[0])
    assert stat(html, "payments") == str(week.count()) == "5"
    assert stat(html, "refunds") == "1"
    successful = week.filter(
        status__in=(PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED)
    ).count()
    attempted = week.exclude(status=PaymentStatus.PENDING).count()
    assert stat(html, "success-rate") == percent(Decimal(successful) / attempted) == "80.0 %"

    usd_week = week.filter(currency="USD")
    gross = usd_week.aggregate(total=Sum("captured_amount"))["total"]
    refunded = usd_week.aggregate(total=Sum("refunded_amount"))["total"]
    assert Decimal(cell(html, "USD", "gross")) == gross == Decimal("42.75")
    assert Decimal(cell(html, "USD", "refunded")) == refunded == Decimal("5.50")
    assert Decimal(cell(html, "USD", "net")) == gross - refunded
    assert cell(html, "USD", "payments") == "4"
    assert Decimal(cell(html, "JPY", "gross")) == Decimal("1000")

    month = staff_client.get(reverse(OVERVIEW) + "?period=30d").content.decode()
    assert stat(month, "payments") == "6"
    assert Decimal(cell(month, "USD", "gross")) == Decimal("141.75")


def test_today_excludes_yesterday(staff_client):
    backdate(paid("10.00", "USD"), 1)
    paid("3.00", "USD")
    html = staff_client.get(reverse(OVERVIEW) + "?period=today").content.decode()
    assert stat(html, "payments") == "1"


@pytest.mark.parametrize("period", ["", "365d", "<script>", "7d'--"])
def test_an_unknown_period_falls_back_to_seven_days(staff_client, period):
    paid("10.00", "USD")
    response = staff_client.get(reverse(OVERVIEW), {"period": period})
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="?period=7d" aria-current="true">' in html
    assert html.count("<script") == 3  # theme.js, htmx, dashboard.js: nothing reflected


def test_the_live_fragment_is_a_fragment_with_the_same_numbers(staff_client):
    paid("10.00", "USD")
    full = staff_client.get(reverse(OVERVIEW)).content.decode()
    live = staff_client.get(reverse(LIVE)).content.decode()
    assert "<html" not in live
    assert '<nav class="nav"' not in live
    assert stat(live, "payments") == stat(full, "payments") == "1"
    # The page polls the fragment, pausing while the tab is hidden.
    assert 'hx-get="/dashboard/overview/live/?period=7d' in full
    assert 'hx-trigger="every 30s [!document.hidden], paydesk:refresh"' in full


@override_settings(PAYDESK={"DASHBOARD": {"POLL_SECONDS": 10}})
def test_the_poll_interval_is_a_setting(staff_client):
    assert "every 10s [!document.hidden]" in staff_client.get(reverse(OVERVIEW)).content.decode()


def test_the_number_of_queries_does_not_grow_with_the_data(staff_client):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(reverse(OVERVIEW)).status_code == 200
        return len(queries)

    paid("1.00", "USD")
    few = count()
    for index in range(12):
        paid(f"{index + 2}.00", "EUR" if index % 2 else "USD")
    services.create_refund(payment=paid("9.00", "GBP"), amount="1.00", reason="x")
    assert count() == few
    assert few <= 30


def test_the_chart_follows_the_chosen_currency(staff_client):
    paid("10.00", "USD")
    paid("10.00", "USD")
    paid("500", "JPY")
    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    assert "Daily gross volume in USD" in html  # the busiest currency by default
    assert html.count('<rect class="bar"') == 14  # at least two weeks of days
    jpy = staff_client.get(reverse(OVERVIEW), {"currency": "JPY"}).content.decode()
    assert "Daily gross volume in JPY" in jpy
    unknown = staff_client.get(reverse(OVERVIEW), {"currency": "XXX<"}).content.decode()
    assert "Daily gross volume in USD" in unknown


def test_provider_cards_show_health_and_success_rate(staff_client):
    paid("10.00", "USD")
    paid("10.00", "USD", token="pm_sandbox_declined")
    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    card = re.search(r'<article class="card" data-provider="sandbox">(.*?)</article>', html, re.S)
    assert card
    assert "healthy" in card.group(1)
    assert "50.0 % (2)" in card.group(1)


def test_an_empty_database_renders(staff_client):
    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    assert "No payments in this period." in html
    assert "No payments yet." in html
    assert stat(html, "success-rate") == "—"


# -- the pieces -------------------------------------------------------------------------------


def test_the_chart_is_svg_with_one_bar_per_day_and_escaped_text():
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(5)]
    svg = str(
        daily_chart(
            [ChartPoint(day, Decimal(i * 10), i) for i, day in enumerate(days)],
            title="<b>volume</b>",
            bar_label="gross",
            line_label="payments",
        )
    )
    assert svg.startswith("<svg")
    assert svg.count('<rect class="bar"') == 5
    assert "&lt;b&gt;volume&lt;/b&gt;" in svg
    assert "<b>" not in svg
    assert 'role="img"' in svg
    assert "<desc" in svg
    empty = str(daily_chart([], title="t", bar_label="b", line_label="l"))
    assert "<rect" not in empty


def test_the_money_and_percent_filters():
    assert money(Money("1234.50", "EUR")) == "€1,234.50"
    assert money(Decimal("1000"), "JPY") == "¥1,000"
    assert money(None) == "—"
    assert percent(Decimal("0.9731")) == "97.3 %"
    assert percent(None) == "—"
    with mock.patch("paydesk.templatetags.paydesk_dashboard.get_language", return_value="tr"):
        assert money(Money("5.00", "TRY")) == "₺5,00"


@override_settings(
    PAYDESK={
        "PROVIDERS": {
            "sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider"},
            "stripe": {"BACKEND": "paydesk.providers.stripe.StripeProvider", "OPTIONS": {}},
        }
    }
)
def test_a_provider_without_its_keys_is_not_configured_rather_than_down(staff_client):
    html = staff_client.get(reverse(OVERVIEW)).content.decode()
    card = re.search(r'<article class="card" data-provider="stripe">(.*?)</article>', html, re.S)
    assert card
    assert "data-not-configured" in card.group(1)
    assert "unhealthy" not in card.group(1)
    sandbox = re.search(r'data-provider="sandbox">(.*?)</article>', html, re.S)
    assert sandbox
    assert "data-not-configured" not in sandbox.group(1)
