"""``config/`` (what a frontend needs, never a secret) and the webhook facts under the API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from paydesk.api.config import PUBLIC_OPTIONS, public_options
from tests.test_api_support import (
    World,
    build_world,
    error_of,
    make_key,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


SECRET_VALUES = {
    "SECRET_KEY": "sk_test_51SECRETSECRET",
    "WEBHOOK_SECRET": "whsec_topsecret",
    "CLIENT_SECRET": "paypal-client-secret-value",
    "API_KEY": "iyzico-api-key-value",
    "PASSWORD": "hunter2-password",
    "IPN_SECRET": "nowpayments-ipn-secret",
}


@pytest.fixture
def many_providers(settings: Any) -> None:
    settings.PAYDESK = {
        **settings.PAYDESK,
        "DEFAULT_CURRENCY": "EUR",
        "PROVIDERS": {
            **settings.PAYDESK["PROVIDERS"],
            "stripe": {
                "BACKEND": "paydesk.providers.stripe.StripeProvider",
                "OPTIONS": {
                    "SECRET_KEY": SECRET_VALUES["SECRET_KEY"],
                    "PUBLISHABLE_KEY": "pk_test_51PUBLIC",
                    "WEBHOOK_SECRET": SECRET_VALUES["WEBHOOK_SECRET"],
                },
            },
            "paypal": {
                "BACKEND": "paydesk.providers.paypal.PayPalProvider",
                "OPTIONS": {
                    "CLIENT_ID": "paypal-public-client-id",
                    "CLIENT_SECRET": SECRET_VALUES["CLIENT_SECRET"],
                    "WEBHOOK_ID": "WH-1",
                    "MODE": "sandbox",
                },
            },
            "iyzico": {
                "BACKEND": "paydesk.providers.iyzico.IyzicoProvider",
                "OPTIONS": {"API_KEY": SECRET_VALUES["API_KEY"], "SECRET_KEY": "iyzico-sk"},
            },
            # Unconfigured: left out.
            "stripe_eu": {"BACKEND": "paydesk.providers.stripe.StripeProvider", "OPTIONS": {}},
        },
    }


def test_config_lists_configured_providers_with_public_keys(
    world: World, many_providers: None
) -> None:
    response = world.client("anonymous").get(url("config/"))
    assert response.status_code == 200
    body = response.json()
    assert body["default_currency"] == "EUR"
    assert body["default_provider"] == "sandbox"
    providers = {p["name"]: p for p in body["providers"]}
    assert "stripe_eu" not in providers
    assert providers["stripe"]["client"] == {"publishable_key": "pk_test_51PUBLIC"}
    assert providers["paypal"]["client"] == {
        "client_id": "paypal-public-client-id",
        "mode": "sandbox",
    }
    assert providers.get("iyzico", {"client": {}})["client"] == {}
    assert "refund" in providers["sandbox"]["capabilities"]
    assert "credit_card" in body["payment_method_types"]


def test_config_never_shows_a_secret(world: World, many_providers: None) -> None:
    for principal in ("anonymous", "owner", "staff", "key_read"):
        text = world.client(principal).get(url("config/")).content.decode()
        lowered = text.lower()
        for value in SECRET_VALUES.values():
            assert value not in text
        for marker in ("secret", "sk_", "whsec_", "password", "api_key"):
            assert marker not in lowered, (principal, marker, text)


def test_a_secret_in_a_public_option_is_not_published() -> None:
    assert public_options({"PUBLISHABLE_KEY": "sk_live_oops"}) == {}
    assert public_options({"CLIENT_ID": "my-secret-id"}) == {}
    assert public_options({"PUBLISHABLE_KEY": "pk_live_ok", "SECRET_KEY": "x"}) == {
        "publishable_key": "pk_live_ok"
    }
    assert set(PUBLIC_OPTIONS) == {"PUBLISHABLE_KEY", "CLIENT_ID", "MODE"}


# -- webhook facts --------------------------------------------------------------------------


def test_webhook_providers_for_staff(world: World) -> None:
    response = world.client("staff").get(url("webhooks/providers/"))
    assert response.status_code == 200
    (sandbox,) = response.json()["providers"]
    assert sandbox["name"] == "sandbox"
    assert sandbox["webhook_url"].endswith("/paydesk/webhooks/sandbox/")
    assert sandbox["signature_algorithm"] == "HMAC-SHA256"


def test_a_staff_members_read_key_sees_webhook_facts(world: World) -> None:
    from rest_framework.test import APIClient

    _key, secret = make_key(world.staff, ["read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    assert client.get(url("webhooks/providers/")).status_code == 200
    assert client.get(url("webhooks/stats/")).status_code == 200
    # A plain user's key does not, whatever its scopes.
    plain = world.client("key_write").get(url("webhooks/stats/"))
    assert plain.status_code == 403
    assert error_of(plain)["type"] == "permission_error"


def test_webhook_stats_and_validation(world: World) -> None:
    client = world.client("staff")
    body = client.get(url("webhooks/stats/"), {"days": 3}).json()
    assert body["days"] == 3
    assert body["total"] == 0
    for bad in ("0", "91", "week"):
        response = client.get(url("webhooks/stats/"), {"days": bad})
        assert response.status_code == 400
        assert error_of(response)["param"] == "days"


def test_webhook_health_is_public_and_numbers_only(world: World, settings: Any) -> None:
    response = world.client("anonymous").get(url("webhooks/health/"))
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    settings.PAYDESK = {**settings.PAYDESK, "WEBHOOKS": {"UNHEALTHY_BACKLOG": -1}}
    unhealthy = world.client("anonymous").get(url("webhooks/health/"))
    assert unhealthy.status_code == 503
    assert set(json.loads(unhealthy.content)) == {
        "status",
        "backlog",
        "oldest_pending_age_seconds",
        "failure_rate_1h",
        "dead",
    }


def test_the_plain_webhook_views_still_need_staff(world: World) -> None:
    from django.test import Client

    client = Client()
    client.force_login(world.owner)
    assert client.get("/paydesk/webhooks/providers/").status_code == 403
    client.force_login(world.staff)
    assert client.get("/paydesk/webhooks/providers/").status_code == 200
