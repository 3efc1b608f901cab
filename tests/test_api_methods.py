"""Saved payment methods through the API: create from a token, update, set default, delete."""

from __future__ import annotations

from typing import Any

import pytest

from paydesk.models import PaymentMethod
from tests.test_api_support import (
    World,
    build_world,
    error_of,
    saved_method,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


def test_create_from_a_provider_token(world: World) -> None:
    response = world.client("owner").post(
        url("payment-methods/"),
        {
            "provider": "sandbox",
            "provider_token": "pm_new_card",
            "brand": "visa",
            "last4": "4242",
            "exp_month": 12,
            "exp_year": 2030,
            "metadata": {"label": "work card"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("pm_")
    assert body["id"] != "pm_new_card"
    assert (body["brand"], body["last4"], body["exp_month"]) == ("visa", "4242", 12)
    assert body["is_default"] is False  # the owner already has a default
    assert "provider_token" not in body
    assert "pm_new_card" not in response.content.decode()
    assert PaymentMethod.objects.get(pk=body["id"]).user == world.owner


def test_first_method_becomes_the_default(world: World) -> None:
    response = world.client("other").post(
        url("payment-methods/"),
        {"provider": "sandbox", "provider_token": "pm_first"},
        format="json",
    )
    assert response.json()["is_default"] is True


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"provider": "sandbox"}, "provider_token", "invalid_request"),
        ({"provider": "sandbox", "provider_token": "4242424242424242"}, "provider_token", None),
        ({"provider": "nope", "provider_token": "pm_x"}, "provider", "unknown_provider"),
        ({"provider": "sandbox", "provider_token": "pm_x", "last4": "42a2"}, "last4", None),
        ({"provider": "sandbox", "provider_token": "pm_x", "exp_month": 13}, "exp_month", None),
        ({"provider": "sandbox", "provider_token": "pm_x", "type": "cash"}, "type", None),
        ({"provider": "sandbox", "provider_token": "pm_x", "cvc": "123"}, "cvc", "unknown_field"),
        (
            {
                "provider": "sandbox",
                "provider_token": "pm_x",
                "metadata": {"customer_ref": "cus_x"},
            },
            "metadata",
            None,
        ),
    ],
)
def test_create_validation(world: World, body: dict, param: str, code: str | None) -> None:
    response = world.client("owner").post(url("payment-methods/"), body, format="json")
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["param"] == param, error
    if code:
        assert error["code"] == code


def test_a_token_saved_by_another_user_is_refused(world: World) -> None:
    saved_method(world.other, "pm_shared")
    response = world.client("owner").post(
        url("payment-methods/"),
        {"provider": "sandbox", "provider_token": "pm_shared"},
        format="json",
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "payment_method_token_taken"


def test_update_metadata_keeps_what_paydesk_reserves(world: World) -> None:
    method = world.objects["method"]
    PaymentMethod.objects.filter(pk=method.pk).update(metadata={"customer_ref": "cus_1", "a": "b"})
    response = world.client("owner").patch(
        url(f"payment-methods/{method.pk}/"), {"metadata": {"label": "home"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["metadata"] == {"label": "home"}
    method.refresh_from_db()
    assert method.metadata == {"label": "home", "customer_ref": "cus_1"}


def test_update_default_flag(world: World) -> None:
    spare = world.objects["spare_method"]
    client = world.client("owner")
    response = client.patch(
        url(f"payment-methods/{spare.pk}/"), {"is_default": True}, format="json"
    )
    assert response.json()["is_default"] is True
    assert PaymentMethod.objects.filter(user=world.owner, is_default=True).get().pk == spare.pk
    refused = client.patch(
        url(f"payment-methods/{spare.pk}/"), {"is_default": False}, format="json"
    )
    assert refused.status_code == 400
    assert error_of(refused)["param"] == "is_default"
    other_field = client.patch(
        url(f"payment-methods/{spare.pk}/"), {"last4": "0000"}, format="json"
    )
    assert other_field.status_code == 400
    assert error_of(other_field)["code"] == "unknown_field"
    put = client.put(url(f"payment-methods/{spare.pk}/"), {"is_default": True}, format="json")
    assert put.status_code == 405
    assert error_of(put)["code"] == "method_not_allowed"


def test_set_default_action(world: World) -> None:
    spare = world.objects["spare_method"]
    response = world.client("owner").post(
        url(f"payment-methods/{spare.pk}/set-default/"), format="json"
    )
    assert response.status_code == 200
    assert response.json()["is_default"] is True
    listed = world.client("owner").get(url("payment-methods/")).json()["results"]
    assert [m["id"] for m in listed if m["is_default"]] == [spare.pk]


def test_delete_deactivates(world: World) -> None:
    method = world.objects["method"]
    client = world.client("owner")
    assert client.delete(url(f"payment-methods/{method.pk}/")).status_code == 204
    method.refresh_from_db()
    assert method.is_active is False
    assert method.is_default is False
    listed = [m["id"] for m in client.get(url("payment-methods/")).json()["results"]]
    assert method.pk not in listed
    # Still readable (payments point at it), and deleting again is harmless.
    assert client.get(url(f"payment-methods/{method.pk}/")).json()["is_active"] is False
    assert client.delete(url(f"payment-methods/{method.pk}/")).status_code == 204
    # A deactivated method cannot become the default or pay.
    again = client.post(url(f"payment-methods/{method.pk}/set-default/"), format="json")
    assert again.status_code == 400
    paying = client.post(
        url("payments/"), {"amount": "1.00", "payment_method": method.pk}, format="json"
    )
    assert paying.status_code == 400
    assert error_of(paying)["param"] == "payment_method"
