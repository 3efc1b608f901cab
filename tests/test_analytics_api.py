"""The analytics endpoints: staff only, validated query strings, the services' figures."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from paydesk import services
from paydesk.api.keys import create_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        username="analyst", email="analyst@example.com", password="pw", is_staff=True
    )


@pytest.fixture
def staff_client(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture
def sales(db):
    today = dt.date.today()
    for token in ("pm_sandbox_visa", "pm_sandbox_visa", "pm_sandbox_declined"):
        payment = services.create_payment(amount="10.00", currency="USD")
        services.process_payment(payment=payment, payment_method_token=token)
    return {"start": str(today), "end": str(today)}


def url(name: str) -> str:
    return reverse(f"paydesk:api:analytics-{name}")


def test_summary(staff_client, sales):
    response = staff_client.get(url("summary"), sales)
    assert response.status_code == 200
    body = response.json()
    usd = body["currencies"][0]
    assert usd["currency"] == "USD"
    assert (usd["payments"], usd["successful"], usd["failed"]) == (3, 2, 1)
    assert usd["gross_volume"] == "20.00"
    assert usd["success_rate"] == "0.6667"
    assert usd["failures"] == {"card_declined": 1}
    assert body["converted"] is None


def test_time_series_performance_and_fraud(staff_client, sales):
    series = staff_client.get(url("timeseries"), {**sales, "interval": "week"}).json()
    assert series["interval"] == "week"
    assert series["series"]["USD"][0]["gross_volume"] == "20.00"
    performance = staff_client.get(url("performance"), sales).json()
    assert performance["by"] == "provider"
    assert performance["results"][0]["key"] == "sandbox"
    assert performance["results"][0]["successful"] == 2
    fraud = staff_client.get(url("fraud"), sales).json()
    assert fraud["checks"] == 0
    assert fraud["decisions"] == {"allow": 0, "review": 0, "block": 0}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start"),
        ({"start": "2026-03-05", "end": "2026-03-01"}, "end"),
        ({"start": "2026-03-01", "end": "2026-03-05", "interval": "hour"}, "interval"),
        ({"start": "2020-01-01", "end": "2026-03-05"}, "end"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "end"),
    ],
)
def test_bad_queries_get_the_api_error_body(staff_client, params, param):
    name = "timeseries" if "interval" in params else "summary"
    response = staff_client.get(url(name), params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_customers_are_refused(user, sales):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(url("summary"), sales)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert APIClient().get(url("summary"), sales).status_code in (401, 403)


def test_api_keys_of_staff_with_the_read_scope(staff, user, sales):
    _, staff_key = create_api_key(owner=staff, name="reporting", scopes=["read"])
    _, customer_key = create_api_key(owner=user, name="shop", scopes=["read"])
    client = APIClient()
    assert (
        client.get(url("summary"), sales, HTTP_AUTHORIZATION=f"Api-Key {staff_key}").status_code
        == 200
    )
    refused = client.get(url("summary"), sales, HTTP_AUTHORIZATION=f"Api-Key {customer_key}")
    assert refused.status_code == 403


def test_the_endpoints_are_in_the_openapi_schema(staff_client):
    response = staff_client.get(reverse("paydesk:api:schema"), {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for name in ("summary", "timeseries", "performance", "fraud"):
        path = next(p for p in paths if p.endswith(f"/analytics/{name}/"))
        operation = paths[path]["get"]
        assert operation["tags"] == ["analytics"]
        assert "200" in operation["responses"]
    summary = next(p for p in paths if p.endswith("/analytics/summary/"))
    names = {p["name"] for p in paths[summary]["get"]["parameters"]}
    assert {"start", "end", "provider", "currency", "convert_to"} <= names
