"""Refunds through the API: list, detail, create (partial or full), process."""

from __future__ import annotations

from typing import Any

import pytest

from paydesk.models import Refund
from tests.test_api_support import (
    World,
    build_world,
    completed_payment,
    error_of,
    pending_refund,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


def test_partial_then_full_refund_with_a_refund_key(world: World) -> None:
    payment = completed_payment(world.owner, "30.00")
    client = world.client("key_refund")
    partial = client.post(
        url("refunds/"),
        {"payment": payment.pk, "amount": "10.00", "reason": "damaged", "currency": "usd"},
        format="json",
    )
    assert partial.status_code == 201, partial.content
    body = partial.json()
    assert (body["amount"], body["currency"], body["status"]) == ("10.00", "USD", "completed")
    assert body["reason"] == "damaged"
    assert body["payment"] == payment.pk
    rest = client.post(url("refunds/"), {"payment": payment.pk}, format="json")
    assert rest.status_code == 201
    assert rest.json()["amount"] == "20.00"
    detail = world.client("owner").get(url(f"payments/{payment.pk}/")).json()
    assert detail["status"] == "refunded"
    assert detail["refunded_amount"] == "30.00"
    too_much = client.post(
        url("refunds/"), {"payment": payment.pk, "amount": "1.00"}, format="json"
    )
    assert too_much.status_code == 409
    assert error_of(too_much)["code"] == "refund_exceeds_captured"


def test_staff_refunds_and_the_refund_records_who(world: World) -> None:
    payment = completed_payment(world.owner)
    response = world.client("staff").post(
        url("refunds/"), {"payment": payment.pk, "amount": "2.00"}, format="json"
    )
    assert response.status_code == 201
    assert Refund.objects.get(pk=response.json()["id"]).processed_by == world.staff


def test_reserve_then_process(world: World) -> None:
    payment = completed_payment(world.owner)
    client = world.client("key_refund")
    reserved = client.post(
        url("refunds/"), {"payment": payment.pk, "amount": "4.00", "process": False}, format="json"
    )
    assert reserved.json()["status"] == "pending"
    refund_id = reserved.json()["id"]
    processed = client.post(url(f"refunds/{refund_id}/process/"), format="json")
    assert processed.status_code == 200
    assert processed.json()["status"] == "completed"
    again = client.post(url(f"refunds/{refund_id}/process/"), format="json")
    assert again.status_code == 409
    assert error_of(again)["type"] == "state_error"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({}, 400, "payment", "invalid_request"),
        ({"payment": "pay_missing"}, 400, "payment", "resource_missing"),
        ({"payment": "{completed}", "amount": 1.5}, 400, "amount", "float_not_allowed"),
        ({"payment": "{completed}", "amount": "1.001"}, 400, "amount", "amount_precision"),
        ({"payment": "{completed}", "currency": "EUR"}, 400, "currency", "currency_mismatch"),
        ({"payment": "{completed}", "reason": "r" * 256}, 400, "reason", None),
        ({"payment": "{completed}", "note": "x"}, 400, "note", "unknown_field"),
        ({"payment": "{pending}"}, 409, None, "invalid_transition"),
    ],
)
def test_create_validation(
    world: World, body: dict, status: int, param: str | None, code: str | None
) -> None:
    filled = {
        k: (v.format(**{n: o.pk for n, o in world.objects.items()}) if isinstance(v, str) else v)
        for k, v in body.items()
    }
    response = world.client("staff").post(url("refunds/"), filled, format="json")
    assert response.status_code == status, response.content
    error = error_of(response)
    if param:
        assert error["param"] == param, error
    if code:
        assert error["code"] == code, error


def test_list_filters_and_detail(world: World) -> None:
    refund = world.objects["refund"]
    second = pending_refund(world.owner, "1.00")
    client = world.client("owner")
    listed = client.get(url("refunds/")).json()
    assert listed["count"] == 2
    by_payment = client.get(url("refunds/"), {"payment": refund.payment_id}).json()["results"]
    assert [r["id"] for r in by_payment] == [refund.pk]
    assert client.get(url("refunds/"), {"status": "completed"}).json()["count"] == 0
    bad = client.get(url("refunds/"), {"status": "done"})
    assert bad.status_code == 400
    assert error_of(bad)["param"] == "status"
    detail = client.get(url(f"refunds/{second.pk}/")).json()
    assert detail["amount"] == "1.00"
    assert detail["status"] == "pending"
    assert "provider_response" not in detail
    assert "provider_refund_id" not in detail


def test_refund_policy_refusal_is_a_state_error(world: World, settings) -> None:
    settings.PAYDESK = {**settings.PAYDESK, "REFUND_POLICY": "tests.test_api_refunds.NoRefunds"}
    payment = completed_payment(world.owner)
    response = world.client("staff").post(url("refunds/"), {"payment": payment.pk}, format="json")
    assert response.status_code == 409
    assert error_of(response)["code"] == "refund_not_allowed"


class NoRefunds:
    def check_refund(self, **kwargs: object) -> None:
        from paydesk.exceptions import RefundNotAllowed

        raise RefundNotAllowed("Refunds are closed for this event.")
