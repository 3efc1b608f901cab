"""The one error body: {"error": {"type", "code", "message", "param"}}, and never a 500 for
bad input (malformed JSON, wrong types, floats, unknown fields, odd media types)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from paydesk.exceptions import (
    ConfigurationError,
    PaymentStateError,
    PaymentValidationError,
    ProviderUnavailable,
)
from paydesk.services import create_payment, process_payment
from tests.test_api_support import (
    World,
    authorized_payment,
    build_world,
    error_of,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


def test_drf_validation_error_shape(world: World) -> None:
    response = world.client("owner").post(url("payments/"), {"currency": "USD"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_request",
            "message": "amount: This field is required.",
            "param": "amount",
        }
    }


@pytest.mark.parametrize(
    "raw",
    ["{bad json", '{"amount": NaN}', '{"amount": Infinity}', "\xff\xfe", '{"amount": "1.00"'],
)
def test_malformed_json(world: World, raw: str) -> None:
    response = world.client("owner").post(
        url("payments/"), raw.encode("latin-1"), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "malformed_request")


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null", "true"])
def test_json_that_is_not_an_object(world: World, body: str) -> None:
    response = world.client("owner").post(url("payments/"), body, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_float_amount_is_refused_even_when_exact(world: World) -> None:
    response = world.client("owner").post(
        url("payments/"), '{"amount": 10.0, "currency": "USD"}', content_type="application/json"
    )
    error = error_of(response)
    assert (error["code"], error["param"]) == ("float_not_allowed", "amount")
    assert "decimal strings" in error["message"]


def test_unknown_field(world: World) -> None:
    response = world.client("owner").post(
        url("payments/"), {"amount": "1.00", "ammount": "2.00"}, format="json"
    )
    error = error_of(response)
    assert (error["code"], error["param"]) == ("unknown_field", "ammount")
    assert "amount" in error["message"]  # names what is accepted


def test_form_bodies_are_unsupported(world: World) -> None:
    response = world.client("owner").post(url("payments/"), {"amount": "1.00"})  # multipart
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_method_not_allowed(world: World) -> None:
    response = world.client("owner").delete(url(f"payments/{world.objects['pending'].pk}/"))
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_not_authenticated_says_how(world: World) -> None:
    response = world.client("anonymous").get(url("payments/"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Api-Key")
    error = error_of(response)
    assert (error["type"], error["code"]) == ("authentication_error", "not_authenticated")


def test_permission_error_names_the_scope(world: World) -> None:
    response = world.client("key_read").post(url("payments/"), {"amount": "1.00"}, format="json")
    error = error_of(response)
    assert (error["type"], error["code"]) == ("permission_error", "permission_denied")
    assert "'write'" in error["message"]


def test_provider_errors_carry_the_taxonomy(world: World, mock) -> None:
    payment = process_payment(
        payment=create_payment(
            amount="5.00", currency="USD", provider="mock", user=world.owner, capture=False
        )
    )
    mock.set_exception(
        ProviderUnavailable("Timed out.", provider="mock", code="provider_unavailable")
    )
    response = world.client("owner").post(url(f"payments/{payment.pk}/capture/"), format="json")
    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "provider_error"
    assert error["code"] == "provider_unavailable"
    assert error["retryable"] is True
    assert error["provider"] == "mock"


def test_a_state_error(world: World) -> None:
    payment = authorized_payment(world.owner)
    response = world.client("owner").post(url(f"payments/{payment.pk}/retry/"), format="json")
    assert response.status_code == 409
    assert error_of(response)["type"] == "state_error"


def test_write_throttle(world: World, settings) -> None:
    settings.PAYDESK = {**settings.PAYDESK, "API": {"WRITE_THROTTLE_RATE": "2/min"}}
    client = world.client("key_write")
    for _ in range(2):
        assert client.post(url("payments/"), {"amount": "1.00"}, format="json").status_code == 201
    throttled = client.post(url("payments/"), {"amount": "1.00"}, format="json")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    error = error_of(throttled)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
    # Reads are not counted, and another principal has its own budget.
    assert client.get(url("payments/")).status_code == 200
    assert (
        world.client("owner").post(url("payments/"), {"amount": "1.00"}, format="json").status_code
        == 201
    )


# Any JSON at all, as the body of every write endpoint: a 4xx or a 2xx, never a 5xx.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "amount",
        "currency",
        "provider",
        "payment_method",
        "payment_method_token",
        "capture",
        "metadata",
        "reason",
        "payment",
        "process",
        "return_url",
        "is_default",
        "provider_token",
    ]
)
BODIES = st.one_of(JSON, st.dictionaries(FIELDS, JSON, max_size=5))


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=BODIES,
    target=st.sampled_from(
        [
            "payments/",
            "payment-methods/",
            "refunds/",
            "payments/{pending}/process/",
            "payments/{authorized}/capture/",
            "payments/{failed}/retry/",
            "payments/{pending}/cancel/",
        ]
    ),
)
def test_no_input_gives_a_server_error(world: World, body: Any, target: str) -> None:
    path = target.format(**{name: obj.pk for name, obj in world.objects.items()})
    response = world.client("staff").post(
        url(path), json.dumps(body), content_type="application/json"
    )
    assert response.status_code < 500, (body, response.content)
    if response.status_code >= 400:
        error_of(response)


@pytest.mark.parametrize(
    ("exc", "status", "type_", "code"),
    [
        (PaymentStateError("Held for review."), 409, "state_error", "invalid_state"),
        (
            PaymentValidationError("Bad.", field="amount"),
            400,
            "invalid_request_error",
            "invalid_request",
        ),
        (ConfigurationError("Set OPTIONS['SECRET_KEY']."), 500, "api_error", "configuration_error"),
    ],
)
def test_paydesk_errors_map_to_status_type_and_code(
    exc: Exception, status: int, type_: str, code: str
) -> None:
    from paydesk.api.exceptions import exception_handler

    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == status
    assert response.data["error"]["type"] == type_
    assert response.data["error"]["code"] == code


def test_any_402_of_paydesk_is_a_card_error() -> None:
    from paydesk.api.exceptions import exception_handler

    class Refused(PaymentStateError):  # like fraud rules refusing a charge
        default_code = "fraud_blocked"
        http_status = 402

    response = exception_handler(Refused("Not accepted."), {})
    assert response is not None
    assert response.status_code == 402
    assert response.data["error"] == {
        "type": "card_error",
        "code": "fraud_blocked",
        "message": "Not accepted.",
        "param": None,
    }


def test_unexpected_exceptions_are_left_to_django() -> None:
    from paydesk.api.exceptions import exception_handler

    assert exception_handler(RuntimeError("bug"), {}) is None
