"""The currencies endpoints: ``currencies/``, ``currencies/rates/``, ``currencies/convert/``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rest_framework.test import APIClient

from paydesk.money import Money
from paydesk.rates import ECBRatesSource
from paydesk.services import rates
from tests.test_api_support import error_of, make_key, make_user, url

FIXTURES = Path(__file__).parent / "fixtures" / "ecb"

pytestmark = pytest.mark.django_db


def _ecb(name: str = "eurofxref-daily.xml") -> ECBRatesSource:
    body = (FIXTURES / name).read_bytes()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    return ECBRatesSource(client=httpx.Client(transport=transport))


@pytest.fixture
def ecb_rates(db) -> int:
    return rates.update_rates(source=_ecb())


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def client(alice) -> APIClient:
    api = APIClient()
    api.force_login(alice)
    return api


# -- currencies/ ----------------------------------------------------------------------------


class TestCurrencyList:
    def test_every_iso_currency_with_its_exponent(self, client):
        response = client.get(url("currencies/"))
        assert response.status_code == 200
        body = response.json()
        assert body["default_currency"] == "USD"
        by_code = {c["code"]: c for c in body["currencies"]}
        assert by_code["USD"]["exponent"] == 2
        assert by_code["USD"]["name"] == "US Dollar"
        assert by_code["JPY"]["exponent"] == 0
        assert by_code["KWD"]["exponent"] == 3
        assert by_code["USD"]["providers"] == [
            {"provider": "sandbox", "accepted": True, "exponent": 2}
        ]
        assert list(by_code) == sorted(by_code)

    def test_per_provider_support_and_wire_exponent(self, client, settings):
        settings.PAYDESK = {
            **settings.PAYDESK,
            "PROVIDERS": {
                **settings.PAYDESK["PROVIDERS"],
                "stripe": {
                    "BACKEND": "paydesk.providers.stripe.StripeProvider",
                    "OPTIONS": {"SECRET_KEY": "sk_test_not_used"},
                },
                # Cannot be built: left out rather than failing the list.
                "broken": {"BACKEND": "paydesk.providers.nope.Nope"},
            },
        }
        body = client.get(url("currencies/")).json()
        by_code = {
            c["code"]: {p["provider"]: p for p in c["providers"]} for c in body["currencies"]
        }
        # Stripe sends MGA without decimals although ISO says 2, and refuses IQD.
        assert by_code["MGA"]["stripe"] == {"provider": "stripe", "accepted": True, "exponent": 0}
        assert by_code["MGA"]["sandbox"]["exponent"] == 2
        assert by_code["IQD"]["stripe"] == {
            "provider": "stripe",
            "accepted": False,
            "exponent": None,
        }
        assert "broken" not in by_code["USD"]


# -- currencies/rates/ ----------------------------------------------------------------------


class TestRates:
    def test_rates_from_the_feeds_base(self, client, ecb_rates):
        response = client.get(url("currencies/rates/"), {"base": "eur"})
        assert response.status_code == 200
        body = response.json()
        assert (body["base"], body["on"]) == ("EUR", None)
        usd = next(r for r in body["rates"] if r["quote"] == "USD")
        assert usd == {"quote": "USD", "rate": "1.1512", "date": "2025-06-13", "source": "ecb"}
        assert len(body["rates"]) == ecb_rates

    def test_default_base_is_the_default_currency_with_derived_rates(self, client, ecb_rates):
        body = client.get(url("currencies/rates/")).json()
        assert body["base"] == "USD"
        by_quote = {r["quote"]: r for r in body["rates"]}
        assert by_quote["EUR"] == {
            "quote": "EUR",
            "rate": "0.868658790827",
            "date": "2025-06-13",
            "source": "ecb (inverse)",
        }
        assert by_quote["TRY"]["source"] == "ecb (via EUR)"
        assert Decimal(by_quote["TRY"]["rate"]) == rates.latest_rate("USD", "TRY").rate

    def test_on_a_date(self, client, db):
        rates.update_rates(source=_ecb("eurofxref-hist-3d.xml"))
        body = client.get(url("currencies/rates/"), {"base": "EUR", "on": "2025-06-12"}).json()
        assert body["on"] == "2025-06-12"
        usd = next(r for r in body["rates"] if r["quote"] == "USD")
        assert (usd["rate"], usd["date"]) == ("1.1588", "2025-06-12")

    def test_no_rates_is_an_empty_list(self, client):
        body = client.get(url("currencies/rates/"), {"base": "EUR"}).json()
        assert body["rates"] == []

    @pytest.mark.parametrize(
        ("query", "code", "param"),
        [
            ({"base": "XYZ"}, "unknown_currency", "base"),
            ({"base": "EURO"}, "unknown_currency", "base"),
            ({"on": "13/06/2025"}, "invalid_request", "on"),
        ],
    )
    def test_bad_queries(self, client, query, code, param):
        response = client.get(url("currencies/rates/"), query)
        assert response.status_code == 400
        error = error_of(response)
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error",
            code,
            param,
        )


# -- currencies/convert/ --------------------------------------------------------------------


def convert(client: APIClient, **query: str):
    return client.get(url("currencies/convert/"), {k.rstrip("_"): v for k, v in query.items()})


class TestConvert:
    def test_usd_to_eur(self, client, ecb_rates):
        response = convert(client, amount="10.00", from_="USD", to="EUR")
        assert response.status_code == 200
        assert response.json() == {
            "from": {"amount": "10.00", "currency": "USD"},
            "to": {"amount": "8.69", "currency": "EUR"},
            "rate": "0.868658790827",
            "rate_date": "2025-06-13",
            "source": "ecb (inverse)",
            "rounding": "ROUND_HALF_EVEN",
        }

    def test_float_looking_input_is_parsed_as_decimal(self, client, ecb_rates):
        # 0.1 + 0.2 is not 0.3 in binary floating point; as a decimal string it is exact.
        body = convert(client, amount="0.3", from_="EUR", to="USD").json()
        assert body["from"] == {"amount": "0.30", "currency": "EUR"}
        assert body["to"] == {"amount": "0.35", "currency": "USD"}  # 0.34536 -> 0.35

    def test_cross_rate_and_zero_decimal_target(self, client, ecb_rates):
        body = convert(client, amount="100", from_="GBP", to="JPY", on="2025-06-15").json()
        expected = rates.convert(money=Money("100", "GBP"), to="JPY", on=dt.date(2025, 6, 15))
        assert body["to"] == {"amount": f"{expected.result.amount}", "currency": "JPY"}
        assert "." not in body["to"]["amount"]
        assert (body["source"], body["rate_date"]) == ("ecb (via EUR)", "2025-06-13")

    def test_same_currency(self, client):
        body = convert(client, amount="5", from_="USD", to="usd").json()
        assert (body["to"], body["rate"]) == ({"amount": "5.00", "currency": "USD"}, "1")

    @pytest.mark.parametrize(
        ("query", "status", "code", "param"),
        [
            ({"from_": "USD", "to": "EUR"}, 400, "invalid_request", "amount"),
            ({"amount": "ten", "from_": "USD", "to": "EUR"}, 400, "invalid_amount", "amount"),
            ({"amount": "1e3", "from_": "USD", "to": "EUR"}, 400, "invalid_amount", "amount"),
            ({"amount": "NaN", "from_": "USD", "to": "EUR"}, 400, "invalid_amount", "amount"),
            ({"amount": "-5", "from_": "USD", "to": "EUR"}, 400, "invalid_amount", "amount"),
            ({"amount": "10.001", "from_": "USD", "to": "EUR"}, 400, "amount_precision", "amount"),
            ({"amount": "10", "from_": "ABC", "to": "EUR"}, 400, "unknown_currency", "from"),
            ({"amount": "10", "from_": "USD", "to": "ABC"}, 400, "unknown_currency", "to"),
            (
                {"amount": "10", "from_": "USD", "to": "EUR", "on": "x"},
                400,
                "invalid_request",
                "on",
            ),
            ({"amount": "10", "from_": "USD", "to": "KWD"}, 404, "rate_not_found", None),
            (
                {"amount": "10", "from_": "EUR", "to": "USD", "on": "2020-01-01"},
                404,
                "rate_not_found",
                None,
            ),
        ],
    )
    def test_errors_in_the_api_error_shape(self, client, ecb_rates, query, status, code, param):
        response = convert(client, **query)
        assert response.status_code == status, response.content
        error = error_of(response)
        assert (error["code"], error["param"]) == (code, param)
        assert error["type"] == "invalid_request_error"
        if code == "rate_not_found":
            assert "update_exchange_rates" in error["message"]


# -- who may read ---------------------------------------------------------------------------


ENDPOINTS = [
    "currencies/",
    "currencies/rates/?base=EUR",
    "currencies/convert/?amount=1.00&from=EUR&to=USD",
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_any_authenticated_principal_may_read(ecb_rates, alice, path):
    assert APIClient().get(url(path)).status_code == 401
    staff = make_user("staff", is_staff=True)
    session = APIClient()
    session.force_login(staff)
    assert session.get(url(path)).status_code == 200
    for scopes in (["read"], ["write"], ["refund"]):
        _, key = make_key(alice, scopes)
        keyed = APIClient()
        keyed.credentials(HTTP_X_API_KEY=key)
        assert keyed.get(url(path)).status_code == 200, scopes
    bad = APIClient()
    bad.credentials(HTTP_X_API_KEY="pdk_nope_nope")
    assert bad.get(url(path)).status_code == 401


@pytest.mark.parametrize("path", ENDPOINTS)
def test_writes_are_not_allowed(client, path):
    response = client.post(url(path), {}, format="json")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_rates_query_count_does_not_grow_with_rates(
    client, ecb_rates, django_assert_max_num_queries
):
    # Session + user lookups, then one query for every latest rate.
    with django_assert_max_num_queries(3):
        assert client.get(url("currencies/rates/"), {"base": "USD"}).status_code == 200
