"""The manual rates source: staff enter exchange rates in the Django admin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from paydesk.models import ExchangeRate
from paydesk.money import Money
from paydesk.services import rates

pytestmark = pytest.mark.django_db

DAY = dt.date(2025, 6, 13)


@pytest.fixture
def staff(admin_client):
    return admin_client


def _add(client, **data):
    values = {"base": "usd", "quote": "try", "rate": "39.1234", "date": "2025-06-13", **data}
    return client.post(reverse("admin:paydesk_exchangerate_add"), values)


def test_staff_enter_a_rate_and_it_is_used(staff):
    response = _add(staff)
    assert response.status_code == 302, response.content
    row = ExchangeRate.objects.get()
    assert (row.base, row.quote, row.rate, row.date, row.source) == (
        "USD",
        "TRY",
        Decimal("39.1234"),
        DAY,
        "manual",
    )
    conversion = rates.convert(money=Money("10.00", "USD"), to="TRY")
    assert conversion.result == Money("391.23", "TRY")
    assert conversion.source == "manual"
    listing = staff.get(reverse("admin:paydesk_exchangerate_changelist"))
    assert listing.status_code == 200
    assert b"39.1234" in listing.content


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"quote": "XYZ"}, b"unknown currency"),
        ({"quote": "USD"}, b"two different currencies"),
        ({"rate": "0"}, b"positive"),
        ({"rate": "-2"}, b"positive"),
        ({"rate": "1.0000000000001"}, b"decimal places"),
    ],
)
def test_invalid_rates_are_refused(staff, data, error):
    response = _add(staff, **data)
    assert response.status_code == 200
    assert error in response.content
    assert not ExchangeRate.objects.exists()


def test_a_second_manual_rate_for_the_same_day_is_refused(staff):
    assert _add(staff).status_code == 302
    response = _add(staff, rate="40")
    assert response.status_code == 200
    assert b"exists" in response.content
    assert ExchangeRate.objects.get().rate == Decimal("39.1234")


def test_a_manual_rate_can_be_corrected(staff):
    _add(staff)
    row = ExchangeRate.objects.get()
    url = reverse("admin:paydesk_exchangerate_change", args=[row.pk])
    response = staff.post(
        url, {"base": "USD", "quote": "TRY", "rate": "39.5", "date": "2025-06-13"}
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.rate, row.source) == (Decimal("39.5"), "manual")


def test_fetched_rates_are_read_only(staff):
    fetched = ExchangeRate.objects.create(
        base="EUR", quote="USD", rate=Decimal("1.1512"), date=DAY, source="ecb"
    )
    url = reverse("admin:paydesk_exchangerate_change", args=[fetched.pk])
    page = staff.get(url)
    assert page.status_code == 200  # shown ...
    assert b'name="rate"' not in page.content  # ... without an editable field
    response = staff.post(url, {"base": "EUR", "quote": "USD", "rate": "9", "date": "2025-06-13"})
    assert response.status_code == 403
    fetched.refresh_from_db()
    assert fetched.rate == Decimal("1.1512")
    # A manual rate for the same pair and date corrects it: on the same date manual wins.
    assert _add(staff, base="EUR", quote="USD", rate="1.15").status_code == 302
    assert rates.latest_rate("EUR", "USD").rate == Decimal("1.15")
