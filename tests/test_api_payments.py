"""Payments through the API: every endpoint's happy path and its validation errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from paydesk.models import Payment
from tests.test_api_support import (
    World,
    authorized_payment,
    build_world,
    completed_payment,
    error_of,
    failed_payment,
    pending_payment,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


def test_create_payment_returns_exact_amounts_as_strings(world: World) -> None:
    client = world.client("owner")
    response = client.post(
        url("payments/"),
        {
            "amount": "19.99",
            "currency": "usd",
            "provider": "sandbox",
            "reference": "order-1",
            "description": "Two books",
            "metadata": {"order": "1"},
            "return_url": "https://shop.example.com/done",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("pay_")
    assert body["status"] == "pending"
    assert body["amount"] == "19.99"
    assert body["currency"] == "USD"
    assert body["captured_amount"] == "0.00"
    assert body["metadata"] == {"order": "1"}
    payment = Payment.objects.get(pk=body["id"])
    assert payment.user == world.owner
    assert payment.amount == Decimal("19.99")


def test_amounts_use_the_currency_exponent(world: World) -> None:
    response = world.client("owner").post(
        url("payments/"), {"amount": "500", "currency": "JPY"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "500"
    response = world.client("owner").post(
        url("payments/"), {"amount": "1.234", "currency": "KWD"}, format="json"
    )
    assert response.json()["amount"] == "1.234"


def test_create_with_a_saved_method_and_process(world: World) -> None:
    client = world.client("owner")
    method = world.objects["method"]
    created = client.post(
        url("payments/"), {"amount": "12.00", "payment_method": method.pk}, format="json"
    ).json()
    assert created["payment_method"] == method.pk
    processed = client.post(url(f"payments/{created['id']}/process/"), {}, format="json")
    assert processed.status_code == 200, processed.content
    assert processed.json()["status"] == "completed"
    assert processed.json()["captured_amount"] == "12.00"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "amount", "invalid_request"),
        ({"amount": 10.5}, "amount", "float_not_allowed"),
        ({"amount": 10}, "amount", "invalid_amount"),
        ({"amount": "ten"}, "amount", "invalid_amount"),
        ({"amount": "1e3"}, "amount", "invalid_amount"),
        ({"amount": "NaN"}, "amount", "invalid_amount"),
        ({"amount": "-5.00"}, "amount", "invalid_amount"),
        ({"amount": "0"}, "amount", "invalid_amount"),
        ({"amount": "10.001", "currency": "USD"}, "amount", "amount_precision"),
        ({"amount": "10.5", "currency": "JPY"}, "amount", "amount_precision"),
        ({"amount": "99999999999999999999"}, "amount", None),
        ({"amount": "10.00", "currency": "ABC"}, "currency", "unknown_currency"),
        ({"amount": "10.00", "currency": 840}, "currency", "invalid_request"),
        ({"amount": "10.00", "provider": "nope"}, "provider", "unknown_provider"),
        ({"amount": "10.00", "payment_method": "pm_missing"}, "payment_method", "resource_missing"),
        ({"amount": "10.00", "payment_method_token": "4242424242424242"}, None, None),
        ({"amount": "10.00", "capture": "maybe"}, "capture", "invalid_request"),
        ({"amount": "10.00", "return_url": "javascript:alert(1)"}, "return_url", None),
        ({"amount": "10.00", "description": "bad\x00byte"}, "description", None),
        ({"amount": "10.00", "metadata": {"k": 1.5}}, None, None),
        ({"amount": "10.00", "metadata": ["a"]}, "metadata", None),
        ({"amount": "10.00", "metadata": {"x" * 41: "v"}}, "metadata", None),
        ({"amount": "10.00", "status": "completed"}, "status", "unknown_field"),
        ({"amount": "10.00", "card_number": "4242424242424242"}, "card_number", "unknown_field"),
    ],
)
def test_create_payment_validation(
    world: World, body: dict, param: str | None, code: str | None
) -> None:
    response = world.client("owner").post(url("payments/"), body, format="json")
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    assert not Payment.objects.filter(amount=Decimal("10.00")).exists()


def test_card_data_is_refused_with_a_pointer_to_tokenizing(world: World) -> None:
    response = world.client("owner").post(
        url("payments/"), {"amount": "1.00", "cvc": "123"}, format="json"
    )
    assert "tokenize" in error_of(response)["message"]


def test_another_users_saved_method_is_missing(world: World) -> None:
    from tests.test_api_support import saved_method

    theirs = saved_method(world.other, "pm_theirs")
    response = world.client("owner").post(
        url("payments/"), {"amount": "1.00", "payment_method": theirs.pk}, format="json"
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "resource_missing"


def test_process_returns_the_next_action_for_3ds(world: World) -> None:
    payment = pending_payment(world.owner)
    response = world.client("owner").post(
        url(f"payments/{payment.pk}/process/"),
        {"payment_method_token": "pm_sandbox_3ds"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "requires_action"
    assert body["next_action"]["type"] == "redirect"
    assert "/sandbox/3ds/" in body["next_action"]["redirect_url"]


def test_a_decline_is_an_outcome_not_an_error(world: World) -> None:
    payment = pending_payment(world.owner)
    response = world.client("owner").post(
        url(f"payments/{payment.pk}/process/"),
        {"payment_method_token": "pm_sandbox_declined"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert response.json()["failure_code"] == "card_declined"


def test_process_twice_is_a_state_error(world: World) -> None:
    payment = completed_payment(world.owner)
    response = world.client("owner").post(url(f"payments/{payment.pk}/process/"), format="json")
    assert response.status_code == 409
    error = error_of(response)
    assert (error["type"], error["code"]) == ("state_error", "invalid_transition")


def test_process_refuses_card_numbers_as_tokens(world: World) -> None:
    payment = pending_payment(world.owner)
    response = world.client("owner").post(
        url(f"payments/{payment.pk}/process/"),
        {"payment_method_token": "4242 4242 4242 4242"},
        format="json",
    )
    assert response.status_code == 400
    assert error_of(response)["param"] == "payment_method_token"


def test_capture_in_part_then_the_rest_is_refused(world: World) -> None:
    payment = authorized_payment(world.owner, "20.00")
    client = world.client("owner")
    response = client.post(
        url(f"payments/{payment.pk}/capture/"), {"amount": "5.00"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["captured_amount"] == "5.00"
    again = client.post(url(f"payments/{payment.pk}/capture/"), {}, format="json")
    assert again.status_code == 409


def test_capture_validation(world: World) -> None:
    payment = authorized_payment(world.owner, "20.00")
    client = world.client("owner")
    too_much = client.post(
        url(f"payments/{payment.pk}/capture/"), {"amount": "25.00"}, format="json"
    )
    assert too_much.status_code == 400
    assert error_of(too_much)["param"] == "amount"
    as_float = client.post(url(f"payments/{payment.pk}/capture/"), {"amount": 5.0}, format="json")
    assert error_of(as_float)["code"] == "float_not_allowed"
    pending = pending_payment(world.owner)
    not_authorized = client.post(url(f"payments/{pending.pk}/capture/"), {}, format="json")
    assert not_authorized.status_code == 409


def test_cancel(world: World) -> None:
    payment = authorized_payment(world.owner)
    response = world.client("owner").post(
        url(f"payments/{payment.pk}/cancel/"), {"reason": "out of stock"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    done = completed_payment(world.owner)
    refused = world.client("owner").post(url(f"payments/{done.pk}/cancel/"), {}, format="json")
    assert refused.status_code == 409
    long_reason = world.client("owner").post(
        url(f"payments/{payment.pk}/cancel/"), {"reason": "x" * 300}, format="json"
    )
    assert long_reason.status_code == 400
    assert error_of(long_reason)["param"] == "reason"


def test_status_syncs_with_the_provider(world: World) -> None:
    payment = completed_payment(world.owner)
    response = world.client("owner").get(url(f"payments/{payment.pk}/status/"))
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


def test_status_of_a_provider_that_cannot_sync_is_the_recorded_one(world: World, mock) -> None:
    from paydesk.services import create_payment, process_payment
    from paydesk.types import Capability

    payment = process_payment(
        payment=create_payment(amount="3.00", currency="USD", provider="mock", user=world.owner)
    )
    mock.capabilities = frozenset(mock.capabilities - {Capability.SYNC})
    response = world.client("owner").get(url(f"payments/{payment.pk}/status/"))
    assert response.status_code == 200
    assert response.json()["status"] == payment.status


def test_retry_with_a_new_token_or_method(world: World) -> None:
    client = world.client("owner")
    failed = failed_payment(world.owner)
    response = client.post(
        url(f"payments/{failed.pk}/retry/"),
        {"payment_method_token": "pm_sandbox_visa"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    assert response.json()["attempt"] == 2
    other_failed = failed_payment(world.owner)
    method = world.objects["method"]
    response = client.post(
        url(f"payments/{other_failed.pk}/retry/"), {"payment_method": method.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["payment_method"] == method.pk
    not_failed = client.post(url(f"payments/{failed.pk}/retry/"), {}, format="json")
    assert not_failed.status_code == 409
    missing = client.post(
        url(f"payments/{other_failed.pk}/retry/"), {"payment_method": "pm_nope"}, format="json"
    )
    assert missing.status_code in (400, 409)


def test_ledger_lists_every_entry_in_order(world: World) -> None:
    payment = completed_payment(world.owner, "7.50")
    response = world.client("owner").get(url(f"payments/{payment.pk}/ledger/"))
    assert response.status_code == 200
    kinds = [entry["kind"] for entry in response.json()]
    assert kinds[0] == "payment_created"
    assert "capture" in kinds
    capture = next(e for e in response.json() if e["kind"] == "capture")
    assert capture["amount"] == "7.50"
    assert capture["currency"] == "USD"
    assert set(capture) == {
        "kind",
        "amount",
        "currency",
        "attempt",
        "refund",
        "message",
        "created_at",
    }


def test_detail_of_a_missing_payment_is_404(world: World) -> None:
    response = world.client("owner").get(url("payments/pay_missing/"))
    assert response.status_code == 404
    assert error_of(response) == {
        "type": "not_found_error",
        "code": "not_found",
        "message": response.json()["error"]["message"],
        "param": None,
    }


def test_detail_hides_provider_tokens(world: World) -> None:
    payment = completed_payment(world.owner)
    body = world.client("owner").get(url(f"payments/{payment.pk}/")).json()
    text = str(body)
    assert "pm_sandbox_visa" not in text
    assert "provider_payment_id" not in body
    assert "user" not in body


# -- list: filters, ordering, pagination ---------------------------------------------------


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_filters(world: World) -> None:
    client = world.client("owner")
    eur = pending_payment(world.owner, "3.00", currency="EUR")
    assert _ids(client.get(url("payments/"), {"currency": "eur"})) == [eur.pk]
    assert _ids(client.get(url("payments/"), {"status": "failed"})) == [world.objects["failed"].pk]
    assert len(_ids(client.get(url("payments/"), {"provider": "sandbox"}))) == 6
    assert _ids(client.get(url("payments/"), {"provider": "stripe"})) == []
    Payment.objects.filter(pk=eur.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    old = _ids(
        client.get(
            url("payments/"),
            {"created_before": (timezone.now() - dt.timedelta(days=5)).isoformat()},
        )
    )
    assert old == [eur.pk]
    recent = _ids(
        client.get(
            url("payments/"), {"created_after": (timezone.now() - dt.timedelta(days=5)).isoformat()}
        )
    )
    assert eur.pk not in recent
    assert len(recent) == 5


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"status": "paid"}, "status"),
        ({"currency": "ABC"}, "currency"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"ordering": "user"}, "ordering"),
    ],
)
def test_list_filter_validation(world: World, query: dict, param: str) -> None:
    response = world.client("owner").get(url("payments/"), query)
    assert response.status_code == 400
    assert error_of(response)["param"] == param


def test_list_ordering(world: World) -> None:
    client = world.client("owner")
    small = pending_payment(world.owner, "1.00")
    big = pending_payment(world.owner, "900.00")
    by_amount = _ids(client.get(url("payments/"), {"ordering": "amount"}))
    assert by_amount[0] == small.pk
    assert by_amount[-1] == big.pk
    newest_first = _ids(client.get(url("payments/")))
    assert newest_first[0] == big.pk


def test_pagination_is_configurable(world: World, settings) -> None:
    client = world.client("owner")
    first = client.get(url("payments/"), {"page_size": 2}).json()
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert "page=2" in first["next"]
    settings.PAYDESK = {**settings.PAYDESK, "API": {"PAGE_SIZE": 3, "MAX_PAGE_SIZE": 4}}
    assert len(client.get(url("payments/")).json()["results"]) == 3
    assert len(client.get(url("payments/"), {"page_size": 50}).json()["results"]) == 4
    for bad in ("0", "-1", "two"):
        invalid = client.get(url("payments/"), {"page": bad})
        assert invalid.status_code == 400
        assert error_of(invalid)["param"] == "page"
    out_of_range = client.get(url("payments/"), {"page": 99})
    assert out_of_range.status_code == 404
    assert error_of(out_of_range)["type"] == "not_found_error"
