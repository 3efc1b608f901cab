"""The PayPal adapter against a fake PayPal API: the provider contract, the wire, errors, tokens.

Testing convention (also in docs/providers/paypal.md): PayPal orders normally need the buyer
to approve them on PayPal's page, so the contract's tokens are PayPal *vault ids* that the
fake understands, sent as ``payment_source.paypal.vault_id``:

* ``paypal_buyer_approved``: a vaulted buyer; the order is completed at creation (CAPTURED,
  or AUTHORIZED for intent AUTHORIZE), as PayPal does for a vault id;
* ``paypal_buyer_declined``: PayPal answers 422 ``INSTRUMENT_DECLINED``;
* ``paypal`` (the action token): no vault id, the normal approval redirect.

The webhook, service and fault-injection tests are in the other ``test_provider_paypal_*``
modules.
"""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import Decimal

import httpx
import pytest
from django.test import override_settings

from paydesk.exceptions import (
    AmountPrecisionError,
    AuthenticationRequired,
    ConfigurationError,
    PaymentDeclined,
    ProviderAuthenticationError,
    ProviderError,
    ProviderProcessingError,
    ProviderRequestError,
    ProviderUnavailable,
)
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.paypal import PayPalProvider, wire
from paydesk.providers.registry import BUILTIN_BACKENDS
from paydesk.types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    PaymentRequest,
    ProviderStatus,
    RefundRequest,
    StatusRequest,
)

from .contract import ContractSetup, ProviderContract, WebhookSigner
from .fakes.paypal_api import (
    REDIRECT,
    VAULT_APPROVED,
    VAULT_DECLINED,
    FakePayPal,
    PayPalWebhookKit,
    paydesk_settings,
    provider_options,
)

# -- helpers ----------------------------------------------------------------------------------


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make(fake: FakePayPal, kit: PayPalWebhookKit | None = None, **options) -> PayPalProvider:
    return PayPalProvider(alias="paypal", options=provider_options(fake, kit, **options))


def pay_request(
    key: str,
    amount: str = "20.00",
    currency: str = "USD",
    *,
    token: str = VAULT_APPROVED,
    capture: bool = True,
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=f"pay_{key}",
        amount=Money(amount, currency),
        idempotency_key=f"paydesk:pay_{key}:attempt-1:create",
        capture=capture,
        payment_method_token=token,
        description="Order #42",
        return_url="https://shop.example.com/orders/42/",
    )


def refund_request(order_id: str, key: str, amount: str, currency: str = "USD") -> RefundRequest:
    return RefundRequest(
        refund_id=f"re_{key}",
        payment_id="pay_x",
        provider_payment_id=order_id,
        amount=Money(amount, currency),
        idempotency_key=f"paydesk:re_{key}:refund",
        reason="damaged box",
    )


@pytest.fixture
def fake() -> FakePayPal:
    return FakePayPal()


@pytest.fixture
def kit(fake: FakePayPal) -> PayPalWebhookKit:
    return PayPalWebhookKit(fake=fake)


@pytest.fixture
def paypal(fake: FakePayPal, kit: PayPalWebhookKit):
    with override_settings(PAYDESK=paydesk_settings(fake, kit)):
        yield get_payment_provider("paypal")


def wire_body(fake: FakePayPal, path: str) -> dict:
    [call] = [c for c in fake.calls("POST", path) if not c.replayed][:1]
    return call.body


# -- the contract -----------------------------------------------------------------------------


class TestPayPalContract(ProviderContract):
    @pytest.fixture
    def contract(self, fake: FakePayPal, kit: PayPalWebhookKit):
        def success_event(provider_payment_id: str, payment_id: str, amount: Money) -> dict:
            return kit.capture_event(
                "PAYMENT.CAPTURE.COMPLETED",
                order_id=provider_payment_id,
                payment_id=payment_id,
                value=wire.amount_body(amount)["value"],
                currency=amount.currency,
            )

        with override_settings(PAYDESK=paydesk_settings(fake, kit)):
            yield ContractSetup(
                alias="paypal",
                success_token=VAULT_APPROVED,
                decline_token=VAULT_DECLINED,
                action_token=REDIRECT,
                signer=WebhookSigner(
                    sign=lambda body, timestamp=None: kit.sign(body, timestamp=timestamp),
                    sign_with_wrong_secret=lambda body: kit.sign(body, webhook_id="WRONG-ID"),
                    success_event=success_event,
                    unknown_event=lambda: kit.event(
                        "CATALOG.PRODUCT.CREATED", {"id": "PROD-1", "name": "T-shirt"}
                    ),
                    has_timestamp=True,
                    tolerance=300,
                ),
            )


# -- configuration ----------------------------------------------------------------------------


def test_builds_without_credentials_and_reports_what_is_missing() -> None:
    provider = PayPalProvider(alias="paypal", options={})
    assert provider.configuration_problems() == [
        "OPTIONS['CLIENT_ID'] is not set",
        "OPTIONS['CLIENT_SECRET'] is not set",
        "OPTIONS['WEBHOOK_ID'] is not set",
    ]
    assert provider.base_url == "https://api-m.sandbox.paypal.com"
    info = provider.info()
    assert info.display_name == "PayPal"
    assert info.webhook_signature_header == "PAYPAL-TRANSMISSION-SIG"
    assert info.webhook_signature_algorithm == "SHA256withRSA"
    assert info.capabilities == {
        Capability.CAPTURE,
        Capability.PARTIAL_CAPTURE,
        Capability.CANCEL,
        Capability.REFUND,
        Capability.PARTIAL_REFUND,
        Capability.MULTIPLE_REFUNDS,
        Capability.WEBHOOKS,
        Capability.SYNC,
        Capability.HOSTED_CHECKOUT,
    }
    assert not info.configured


def test_missing_credentials_refuse_calls_without_any_request(fake: FakePayPal) -> None:
    provider = PayPalProvider(alias="paypal", options={"HTTP_CLIENT": fake.client()})
    with pytest.raises(ProviderAuthenticationError, match="CLIENT_ID") as caught:
        provider.create_payment(pay_request("nocreds"))
    assert caught.value.provider == "paypal"
    assert fake.requests == []


def test_modes_and_base_url_override() -> None:
    live = PayPalProvider(alias="pp", options={"MODE": "live"})
    assert live.base_url == "https://api-m.paypal.com"
    custom = PayPalProvider(alias="pp", options={"BASE_URL": "https://paypal.internal/"})
    assert custom.base_url == "https://paypal.internal"
    with pytest.raises(ConfigurationError, match="MODE"):
        PayPalProvider(alias="pp", options={"MODE": "production"})
    with pytest.raises(ConfigurationError, match="WEBHOOK_VERIFICATION"):
        PayPalProvider(alias="pp", options={"WEBHOOK_VERIFICATION": "maybe"})


def test_system_checks_name_the_missing_options() -> None:
    from paydesk import checks

    config = {
        "DEFAULT_PROVIDER": "paypal",
        "PROVIDERS": {"paypal": {"BACKEND": "paypal", "OPTIONS": {"MODE": "sandbox"}}},
    }
    with override_settings(PAYDESK=config):
        messages = {m.id: m.msg for m in checks._provider_messages()}
    assert "CLIENT_ID" in messages["paydesk.W001"]
    assert "OPTIONS['WEBHOOK_ID'] is not set" in messages["paydesk.W002"]


def test_registry_knows_the_short_name(fake: FakePayPal) -> None:
    assert BUILTIN_BACKENDS["paypal"] == "paydesk.providers.paypal.PayPalProvider"
    config = paydesk_settings(fake)
    config["PROVIDERS"]["paypal"]["BACKEND"] = "paypal"
    with override_settings(PAYDESK=config):
        assert isinstance(get_payment_provider("paypal"), PayPalProvider)


# -- orders on the wire -----------------------------------------------------------------------


def test_create_order_wire_format(fake: FakePayPal) -> None:
    with override_settings(PAYDESK=paydesk_settings(fake, options={"BRAND_NAME": "Paydesk Shop"})):
        provider = get_payment_provider("paypal")
        result = provider.create_payment(pay_request("wire", token=REDIRECT))
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action is not None
    assert result.next_action.type == "redirect"
    assert result.next_action.redirect_url == (
        f"https://www.sandbox.paypal.com/checkoutnow?token={result.provider_payment_id}"
    )
    [token_call] = fake.calls("POST", "/v1/oauth2/token")
    assert token_call.body == {"grant_type": "client_credentials"}
    assert token_call.headers["authorization"].startswith("Basic ")
    [call] = fake.calls("POST", "/v2/checkout/orders$")
    assert call.headers["paypal-request-id"] == "paydesk:pay_wire:attempt-1:create"
    assert call.headers["prefer"] == "return=representation"
    assert call.headers["authorization"].startswith("Bearer A21AA")
    assert call.body == {
        "intent": "CAPTURE",
        "purchase_units": [
            {
                "reference_id": "pay_wire",
                "custom_id": "pay_wire",
                "amount": {"currency_code": "USD", "value": "20.00"},
                "description": "Order #42",
            }
        ],
        "payment_source": {
            "paypal": {
                "experience_context": {
                    "return_url": "https://shop.example.com/paydesk/return/pay_wire/",
                    "cancel_url": "https://shop.example.com/paydesk/return/pay_wire/?paypal=cancel",
                    "user_action": "PAY_NOW",
                    "shipping_preference": "NO_SHIPPING",
                    "brand_name": "Paydesk Shop",
                }
            }
        },
    }
    # Only the summary reaches the ledger: ids, statuses and amounts.
    assert result.raw["order_id"] == result.provider_payment_id
    assert result.raw["status"] == "PAYER_ACTION_REQUIRED"


def test_vault_token_and_intent_authorize(paypal: PayPalProvider, fake: FakePayPal) -> None:
    result = paypal.create_payment(pay_request("auth", capture=False))
    assert result.status == ProviderStatus.AUTHORIZED
    assert result.amount_authorized == Money("20.00", "USD")
    body = wire_body(fake, "/v2/checkout/orders$")
    assert body["intent"] == "AUTHORIZE"
    assert body["payment_source"]["paypal"]["vault_id"] == VAULT_APPROVED
    assert fake.count("authorization") == 1


def test_return_url_base_falls_back_to_an_absolute_return_url(fake: FakePayPal) -> None:
    provider = make(fake)  # no PUBLIC_BASE_URL anywhere: the return_url's origin is used
    provider.create_payment(pay_request("origin", token=REDIRECT))
    context = wire_body(fake, "/v2/checkout/orders$")["payment_source"]["paypal"]
    assert context["experience_context"]["return_url"] == (
        "https://shop.example.com/paydesk/return/pay_origin/"
    )
    relative = PaymentRequest(
        payment_id="pay_rel",
        amount=Money("1.00", "USD"),
        idempotency_key="k-rel",
        payment_method_token=REDIRECT,
        return_url="/orders/1/",
    )
    with pytest.raises(ProviderRequestError, match="PUBLIC_BASE_URL"):
        provider.create_payment(relative)


@pytest.mark.parametrize(
    ("amount", "currency", "on_wire"),
    [
        ("500", "JPY", "500"),
        ("19.99", "USD", "19.99"),
        ("1.234", "KWD", "1.234"),
        ("1500", "HUF", "1500"),
        ("300", "TWD", "300"),
        ("5", "EUR", "5.00"),
    ],
)
def test_amounts_on_the_wire(fake: FakePayPal, amount: str, currency: str, on_wire: str) -> None:
    provider = make(fake)
    created = provider.create_payment(pay_request("amt", amount, currency))
    assert created.status == ProviderStatus.CAPTURED
    assert created.amount_captured == Money(amount, currency)
    assert wire_body(fake, "/v2/checkout/orders$")["purchase_units"][0]["amount"] == {
        "currency_code": currency,
        "value": on_wire,
    }
    refund = provider.create_refund(
        refund_request(created.provider_payment_id, "amt", amount, currency)
    )
    assert refund.status == "completed"
    assert wire_body(fake, "/refund$")["amount"] == {"currency_code": currency, "value": on_wire}


@pytest.mark.parametrize(("amount", "currency"), [("10.50", "HUF"), ("99.90", "TWD")])
def test_fractional_amounts_in_no_decimal_currencies_are_refused_before_any_call(
    fake: FakePayPal, amount: str, currency: str
) -> None:
    provider = make(fake)
    with pytest.raises(AmountPrecisionError, match=f"PayPal treats {currency} as zero-decimal"):
        provider.create_payment(pay_request("frac", amount, currency))
    with pytest.raises(AmountPrecisionError):
        provider.create_refund(refund_request("ORDER", "frac", amount, currency))
    with pytest.raises(AmountPrecisionError):
        provider.capture_payment(
            CaptureRequest(
                payment_id="pay_frac",
                provider_payment_id="ORDER",
                amount=Money(amount, currency),
                idempotency_key="k",
            )
        )
    assert fake.requests == []  # not even a token request
    with pytest.raises(AmountPrecisionError):  # JPY has no minor unit at all
        Money("500.5", "JPY")


# -- the approval flow ------------------------------------------------------------------------


def _confirm(provider: PayPalProvider, order_id: str) -> object:
    return provider.confirm_payment(
        ConfirmRequest(
            payment_id="pay_flow",
            provider_payment_id=order_id,
            amount=Money("20.00", "USD"),
            idempotency_key="paydesk:pay_flow:attempt-1:confirm",
        )
    )


def test_confirm_before_approval_changes_nothing(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("flow", token=REDIRECT))
    result = _confirm(paypal, created.provider_payment_id)
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action == created.next_action
    assert fake.calls("POST", "/capture$") == []


def test_approve_then_confirm_captures_once(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("flow", token=REDIRECT))
    fake.approve(created.next_action.redirect_url)
    result = _confirm(paypal, created.provider_payment_id)
    again = _confirm(paypal, created.provider_payment_id)
    assert result.status == again.status == ProviderStatus.CAPTURED
    assert result.amount_captured == Money("20.00", "USD")
    [capture] = fake.calls("POST", "/capture$")
    assert capture.headers["paypal-request-id"] == f"paydesk:{created.provider_payment_id}:capture"
    assert fake.count("capture") == 1


@pytest.mark.parametrize(
    ("outcome", "status", "failure"),
    [
        ("capture_declined", ProviderStatus.FAILED, "card_declined"),
        ("capture_pending", ProviderStatus.PROCESSING, None),
    ],
)
def test_the_capture_status_decides_not_the_order_status(
    paypal: PayPalProvider, fake: FakePayPal, outcome: str, status: ProviderStatus, failure
) -> None:
    created = paypal.create_payment(pay_request("flow", token=REDIRECT))
    fake.approve(created.provider_payment_id, outcome)
    result = _confirm(paypal, created.provider_payment_id)
    assert fake.order(created.provider_payment_id)["status"] == "COMPLETED"
    assert result.status == status
    assert (result.failure.code if result.failure else None) == failure


def test_capture_declines_map_to_the_taxonomy(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("flow", token=REDIRECT))
    fake.approve(created.provider_payment_id, "instrument_declined")
    with pytest.raises(PaymentDeclined) as declined:
        _confirm(paypal, created.provider_payment_id)
    assert declined.value.code == "card_declined"
    assert declined.value.provider_code == "INSTRUMENT_DECLINED"
    assert declined.value.provider == "paypal"
    assert declined.value.request_id  # PayPal's debug_id, for support tickets
    assert declined.value.request_id in declined.value.message

    other = paypal.create_payment(pay_request("flow2", token=REDIRECT))
    fake.approve(other.provider_payment_id, "payer_action_required")
    with pytest.raises(AuthenticationRequired) as action:
        _confirm(paypal, other.provider_payment_id)
    assert action.value.code == "authentication_required"


def test_payer_action_link_for_a_vaulted_buyer(paypal: PayPalProvider, fake: FakePayPal) -> None:
    result = paypal.create_payment(pay_request("pa", token="paypal_buyer_action"))
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert "checkoutnow?token=" in result.next_action.redirect_url


def test_legacy_approve_link_is_understood() -> None:
    order = {
        "id": "5O190127TN364715T",
        "status": "CREATED",
        "links": [
            {"href": "https://api.sandbox.paypal.com/v2/checkout/orders/5O1", "rel": "self"},
            {"href": "https://www.sandbox.paypal.com/checkoutnow?token=5O1", "rel": "approve"},
        ],
    }
    result = wire.order_result(order)
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action.redirect_url.endswith("token=5O1")
    assert wire.order_result({"id": "X", "status": "COMPLETED"}).status == (
        ProviderStatus.PROCESSING  # COMPLETED without captures says nothing about money
    )
    assert wire.order_result({"id": "X", "status": "APPROVED"}).status == ProviderStatus.PROCESSING
    assert wire.order_result({"id": "X", "status": "VOIDED"}).status == ProviderStatus.CANCELLED


# -- authorizations, cancellation, status -----------------------------------------------------


def test_partial_capture_of_an_authorization(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("cap", capture=False))
    request = CaptureRequest(
        payment_id="pay_cap",
        provider_payment_id=created.provider_payment_id,
        amount=Money("12.50", "USD"),
        idempotency_key="paydesk:pay_cap:capture",
    )
    captured = paypal.capture_payment(request)
    again = paypal.capture_payment(request)  # a retry: same PayPal-Request-Id, one capture
    assert captured.status == again.status == ProviderStatus.CAPTURED
    assert captured.amount_captured == Money("12.50", "USD")
    assert captured.amount_authorized == Money("20.00", "USD")
    assert fake.count("capture") == 1
    call = fake.calls("POST", "/authorizations/.+/capture$")[0]
    assert call.body == {
        "amount": {"currency_code": "USD", "value": "12.50"},
        "final_capture": True,
    }
    assert call.headers["paypal-request-id"] == "paydesk:pay_cap:capture"
    status = paypal.get_payment_status(
        StatusRequest(
            payment_id="pay_cap",
            provider_payment_id=created.provider_payment_id,
            idempotency_key="k",
            amount=Money("20.00", "USD"),
        )
    )
    assert status.status == ProviderStatus.CAPTURED
    assert status.amount_captured == Money("12.50", "USD")


def test_capture_of_a_capture_intent_order_is_refused_or_a_no_op(
    paypal: PayPalProvider,
) -> None:
    created = paypal.create_payment(pay_request("nocap"))
    done = paypal.capture_payment(
        CaptureRequest(
            payment_id="pay_nocap",
            provider_payment_id=created.provider_payment_id,
            amount=Money("20.00", "USD"),
            idempotency_key="k",
        )
    )
    assert done.status == ProviderStatus.CAPTURED  # already captured: the same answer
    waiting = paypal.create_payment(pay_request("nocap2", token=REDIRECT))
    with pytest.raises(ProviderRequestError, match="no authorization"):
        paypal.capture_payment(
            CaptureRequest(
                payment_id="pay_nocap2",
                provider_payment_id=waiting.provider_payment_id,
                amount=Money("20.00", "USD"),
                idempotency_key="k2",
            )
        )


def test_void_an_authorization(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("void", capture=False))
    request = CancelRequest(
        payment_id="pay_void",
        provider_payment_id=created.provider_payment_id,
        idempotency_key="paydesk:pay_void:cancel",
    )
    assert paypal.cancel_payment(request).status == ProviderStatus.CANCELLED
    assert paypal.cancel_payment(request).status == ProviderStatus.CANCELLED
    assert fake.count("void") == 1
    [void] = [c for c in fake.calls("POST", "/void$") if not c.replayed]
    assert void.headers["paypal-request-id"] == "paydesk:pay_void:cancel"


def test_cancelling_an_unapproved_order_is_local(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("local", token=REDIRECT))
    result = paypal.cancel_payment(
        CancelRequest(
            payment_id="pay_local",
            provider_payment_id=created.provider_payment_id,
            idempotency_key="k",
        )
    )
    assert result.status == ProviderStatus.CANCELLED
    assert result.raw["cancelled"] == "local"
    assert fake.calls("POST", "/void$") == []
    captured = paypal.create_payment(pay_request("local2"))
    with pytest.raises(ProviderRequestError, match="refund it instead"):
        paypal.cancel_payment(
            CancelRequest(
                payment_id="pay_local2",
                provider_payment_id=captured.provider_payment_id,
                idempotency_key="k2",
            )
        )


def test_status_of_unknown_orders(paypal: PayPalProvider) -> None:
    def status(order_id: str) -> ProviderStatus:
        return paypal.get_payment_status(
            StatusRequest(
                payment_id="p",
                provider_payment_id=order_id,
                idempotency_key="k",
                amount=Money("1.00", "USD"),
            )
        ).status

    assert status("") == ProviderStatus.NOT_FOUND
    assert status("NOSUCHORDER123") == ProviderStatus.NOT_FOUND


# -- refunds ----------------------------------------------------------------------------------


def test_refunds_partial_multiple_and_capped(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("ref"))
    first = paypal.create_refund(refund_request(created.provider_payment_id, "a", "5.00"))
    second = paypal.create_refund(refund_request(created.provider_payment_id, "b", "15.00"))
    assert first.status == second.status == "completed"
    body = wire_body(fake, "/refund$")
    assert body == {
        "amount": {"currency_code": "USD", "value": "5.00"},
        "custom_id": "re_a",
        "note_to_payer": "damaged box",
    }
    assert fake.calls("POST", "/refund$")[0].headers["paypal-request-id"] == "paydesk:re_a:refund"
    with pytest.raises(ProviderRequestError) as refused:
        paypal.create_refund(refund_request(created.provider_payment_id, "c", "0.01"))
    assert refused.value.provider_code == "CAPTURE_FULLY_REFUNDED"
    assert fake.count("refund") == 2


def test_pending_refund(paypal: PayPalProvider, fake: FakePayPal) -> None:
    fake.refund_status = "PENDING"
    created = paypal.create_payment(pay_request("pend"))
    assert paypal.create_refund(
        refund_request(created.provider_payment_id, "p", "1.00")
    ).status == ("pending")
    assert wire.refund_result({"id": "R", "status": "CANCELLED"}).status == "failed"


# -- error mapping ----------------------------------------------------------------------------


def _error(status: int, name: str = "", issue: str = "", **headers: str) -> ProviderError:
    body: dict = {"name": name, "message": "msg", "debug_id": "f00dcafe12345"}
    if issue:
        body["details"] = [{"issue": issue, "description": f"{issue} happened."}]
    response = httpx.Response(status, json=body, headers=headers)
    return wire.error_from_response(response, provider="pp")


@pytest.mark.parametrize(
    ("status", "name", "issue", "cls", "code", "retryable"),
    [
        (422, "UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED", PaymentDeclined, "card_declined", 0),
        (422, "UNPROCESSABLE_ENTITY", "TRANSACTION_REFUSED", PaymentDeclined, "card_declined", 0),
        (422, "UNPROCESSABLE_ENTITY", "CARD_EXPIRED", PaymentDeclined, "expired_card", 0),
        (
            422,
            "UNPROCESSABLE_ENTITY",
            "PAYER_ACTION_REQUIRED",
            AuthenticationRequired,
            "authentication_required",
            0,
        ),
        (
            422,
            "UNPROCESSABLE_ENTITY",
            "DUPLICATE_INVOICE_ID",
            ProviderRequestError,
            "invalid_request",
            0,
        ),
        (
            422,
            "UNPROCESSABLE_ENTITY",
            "ORDER_NOT_APPROVED",
            ProviderRequestError,
            "invalid_request",
            0,
        ),
        (
            422,
            "UNPROCESSABLE_ENTITY",
            "COMPLIANCE_VIOLATION",
            ProviderProcessingError,
            "processing_error",
            0,
        ),
        (
            400,
            "INVALID_REQUEST",
            "INVALID_PARAMETER_VALUE",
            ProviderRequestError,
            "invalid_request",
            0,
        ),
        (
            404,
            "RESOURCE_NOT_FOUND",
            "INVALID_RESOURCE_ID",
            ProviderRequestError,
            "invalid_request",
            0,
        ),
        (
            401,
            "AUTHENTICATION_FAILURE",
            "",
            ProviderAuthenticationError,
            "provider_authentication",
            0,
        ),
        (
            403,
            "NOT_AUTHORIZED",
            "PERMISSION_DENIED",
            ProviderAuthenticationError,
            "provider_authentication",
            0,
        ),
        (429, "RATE_LIMIT_REACHED", "", ProviderUnavailable, "provider_unavailable", 1),
        (500, "INTERNAL_SERVER_ERROR", "", ProviderUnavailable, "provider_unavailable", 1),
        (503, "SERVICE_UNAVAILABLE", "", ProviderUnavailable, "provider_unavailable", 1),
        (
            409,
            "RESOURCE_CONFLICT",
            "PREVIOUS_REQUEST_IN_PROGRESS",
            ProviderUnavailable,
            "provider_unavailable",
            1,
        ),
    ],
)
def test_error_mapping(status, name, issue, cls, code, retryable) -> None:
    error = _error(status, name, issue)
    assert type(error) is cls
    assert error.code == code
    assert error.retryable is bool(retryable)
    assert error.provider == "pp"
    assert error.provider_code == (issue or name)
    assert error.request_id == "f00dcafe12345"


def test_transport_errors_are_retryable_and_say_so() -> None:
    request = httpx.Request("POST", "https://api-m.sandbox.paypal.com/v2/checkout/orders")
    timeout = wire.transport_error(httpx.ReadTimeout("x", request=request), provider="pp", what="w")
    reset = wire.transport_error(httpx.ConnectError("x", request=request), provider="pp", what="w")
    assert isinstance(timeout, ProviderUnavailable)
    assert timeout.retryable
    assert "timed out" in timeout.message
    assert "unknown" in timeout.message
    assert isinstance(reset, ProviderUnavailable)
    assert reset.code == "provider_unavailable"


def test_unknown_vault_id_is_an_invalid_request(paypal: PayPalProvider) -> None:
    with pytest.raises(ProviderRequestError) as refused:
        paypal.create_payment(pay_request("bad", token="pm_does_not_exist_x"))
    assert refused.value.provider_code == "INVALID_PARAMETER_VALUE"
    assert refused.value.provider == "paypal"


# -- the OAuth token --------------------------------------------------------------------------


def test_token_is_cached_and_refreshed_before_expiry(fake: FakePayPal) -> None:
    clock = Clock()
    fake.clock = clock
    fake.token_ttl = 600
    provider = PayPalProvider(alias="paypal", options=provider_options(fake), clock=clock)
    provider.create_payment(pay_request("t1"))
    provider.create_payment(pay_request("t2"))
    assert fake.token_requests == 1
    clock.now += 539  # 1 s before the refresh point (expiry 600 s minus the 60 s margin)
    provider.create_payment(pay_request("t2b"))
    assert fake.token_requests == 1
    clock.now += 2  # inside the margin: refreshed before PayPal would refuse it
    provider.create_payment(pay_request("t3"))
    assert fake.token_requests == 2
    assert all(c.status != 401 for c in fake.requests)


def test_a_401_refreshes_the_token_once_and_retries(fake: FakePayPal) -> None:
    provider = make(fake)
    created = provider.create_payment(pay_request("r1"))
    fake.expire_tokens()  # PayPal forgot the token (revoked, or expired early)
    refund = provider.create_refund(refund_request(created.provider_payment_id, "r1", "1.00"))
    assert refund.status == "completed"
    assert fake.token_requests == 2
    assert [c.status for c in fake.calls(path="/v2/checkout/orders/")][-2:] == [401, 200]


def test_a_persistent_401_is_an_authentication_error_not_a_loop(fake: FakePayPal) -> None:
    def always_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return fake(request)
        return httpx.Response(401, json={"error": "invalid_token", "error_description": "nope"})

    provider = PayPalProvider(
        alias="paypal",
        options=provider_options(
            fake, HTTP_CLIENT=httpx.Client(transport=httpx.MockTransport(always_401))
        ),
    )
    with pytest.raises(ProviderAuthenticationError):
        provider.create_payment(pay_request("401"))
    assert fake.token_requests == 2


def test_bad_credentials(fake: FakePayPal) -> None:
    provider = make(fake, CLIENT_SECRET="wrong")
    with pytest.raises(ProviderAuthenticationError, match="CLIENT_ID / CLIENT_SECRET") as caught:
        provider.create_payment(pay_request("bad"))
    assert caught.value.provider_code == "invalid_client"
    assert not caught.value.retryable
    health = provider.health_check()
    assert not health.ok
    assert "CLIENT_SECRET" in health.detail


def test_concurrent_callers_fetch_one_token(fake: FakePayPal) -> None:
    provider = make(fake)
    fake.slow(0.02)
    barrier = threading.Barrier(10)
    tokens: list[str] = []

    def worker() -> None:
        barrier.wait()
        tokens.append(provider.access_token())

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.token_requests == 1
    assert len(set(tokens)) == 1
    assert len(tokens) == 10


def test_health_check_fetches_a_token(fake: FakePayPal) -> None:
    provider = make(fake)
    health = provider.health_check()
    assert health.ok
    assert health.response_time_ms is not None
    assert health.response_time_ms >= 0
    assert "sandbox" in health.detail
    assert fake.token_requests == 1
    assert not PayPalProvider(alias="pp", options={}).health_check().ok


# -- retries inside the adapter ---------------------------------------------------------------


def test_transient_failures_are_retried_with_the_same_request_id(fake: FakePayPal) -> None:
    delays: list[float] = []
    provider = PayPalProvider(
        alias="paypal", options=provider_options(fake, MAX_RETRIES=3), sleep=delays.append
    )
    fake.retry_after = "2"
    fake.inject("500", "429", "timeout_after", path="/v2/checkout/orders$")
    result = provider.create_payment(pay_request("retry"))
    assert result.status == ProviderStatus.CAPTURED
    calls = fake.calls("POST", "/v2/checkout/orders$")
    assert [c.fault for c in calls] == ["500", "429", "timeout_after", ""]
    assert {c.headers["paypal-request-id"] for c in calls} == {"paydesk:pay_retry:attempt-1:create"}
    assert calls[-1].replayed  # the order made before the timeout, not a second one
    assert len(fake.orders) == 1
    assert fake.count("capture") == 1
    assert delays == [0.0, 2.0, 0.0]  # Retry-After honoured, backoff 0 in tests


def test_retries_run_out_and_the_error_is_retryable(fake: FakePayPal) -> None:
    provider = make(fake, MAX_RETRIES=1)
    fake.inject("reset", "503", path="/v2/checkout/orders$")
    with pytest.raises(ProviderUnavailable) as caught:
        provider.create_payment(pay_request("out"))
    assert caught.value.retryable
    assert caught.value.provider_code == "SERVICE_UNAVAILABLE"
    assert fake.orders == {}


def test_retry_after_is_capped(fake: FakePayPal) -> None:
    delays: list[float] = []
    provider = PayPalProvider(
        alias="paypal",
        options=provider_options(fake, MAX_RETRIES=1, RETRY_MAX_DELAY=5),
        sleep=delays.append,
    )
    fake.retry_after = "3600"
    fake.inject("429", path="/v2/checkout/orders$")
    provider.create_payment(pay_request("cap"))
    assert delays == [5.0]


# -- async twins ------------------------------------------------------------------------------


def test_async_twins_with_an_async_client(fake: FakePayPal) -> None:
    provider = PayPalProvider(
        alias="paypal",
        options=provider_options(fake, HTTP_CLIENT=None),
        async_http_client=fake.async_client(),
        http_client=httpx.Client(transport=httpx.MockTransport(lambda r: pytest.fail("sync"))),
    )

    async def flow():
        waiting = await provider.create_payment_async(pay_request("as", token=REDIRECT))
        fake.approve(waiting.provider_payment_id)
        confirmed = await provider.confirm_payment_async(
            ConfirmRequest(
                payment_id="pay_as",
                provider_payment_id=waiting.provider_payment_id,
                amount=Money("20.00", "USD"),
                idempotency_key="k",
            )
        )
        authorized = await provider.create_payment_async(pay_request("as2", capture=False))
        captured = await provider.capture_payment_async(
            CaptureRequest(
                payment_id="pay_as2",
                provider_payment_id=authorized.provider_payment_id,
                amount=Money("7.00", "USD"),
                idempotency_key="paydesk:pay_as2:capture",
            )
        )
        voidable = await provider.create_payment_async(pay_request("as3", capture=False))
        cancelled = await provider.cancel_payment_async(
            CancelRequest(
                payment_id="pay_as3",
                provider_payment_id=voidable.provider_payment_id,
                idempotency_key="paydesk:pay_as3:cancel",
            )
        )
        status = await provider.get_payment_status_async(
            StatusRequest(
                payment_id="pay_as",
                provider_payment_id=waiting.provider_payment_id,
                idempotency_key="k",
                amount=Money("20.00", "USD"),
            )
        )
        refunds = await asyncio.gather(
            *(
                provider.create_refund_async(
                    refund_request(waiting.provider_payment_id, f"as{i}", "2.00")
                )
                for i in range(3)
            )
        )
        return waiting, confirmed, captured, cancelled, status, refunds

    waiting, confirmed, captured, cancelled, status, refunds = asyncio.run(flow())
    assert waiting.status == ProviderStatus.REQUIRES_ACTION
    assert confirmed.status == status.status == ProviderStatus.CAPTURED
    assert captured.amount_captured == Money("7.00", "USD")
    assert cancelled.status == ProviderStatus.CANCELLED
    assert [r.status for r in refunds] == ["completed"] * 3
    assert fake.count("refund") == 3
    assert fake.token_requests == 1


def test_async_concurrent_callers_fetch_one_token_and_retry(fake: FakePayPal) -> None:
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    provider = PayPalProvider(
        alias="paypal",
        options=provider_options(fake, MAX_RETRIES=2),
        async_http_client=fake.async_client(),
        async_sleep=record,
    )
    fake.inject("timeout", "500", path="/v2/checkout/orders$")

    async def flow():
        return await asyncio.gather(
            *(provider.create_payment_async(pay_request(f"c{i}")) for i in range(10))
        )

    results = asyncio.run(flow())
    assert {r.status for r in results} == {ProviderStatus.CAPTURED}
    assert fake.token_requests == 1
    assert len(sleeps) == 2
    assert len(fake.orders) == 10
    # A second event loop (asyncio.run again) still works with the cached token.
    again = asyncio.run(provider.create_payment_async(pay_request("c0")))
    assert again.provider_payment_id == results[0].provider_payment_id


def test_async_errors_are_mapped(fake: FakePayPal) -> None:
    provider = PayPalProvider(
        alias="paypal", options=provider_options(fake), async_http_client=fake.async_client()
    )
    with pytest.raises(PaymentDeclined):
        asyncio.run(provider.create_payment_async(pay_request("ad", token=VAULT_DECLINED)))


def test_raw_results_keep_no_payer_data(paypal: PayPalProvider, fake: FakePayPal) -> None:
    created = paypal.create_payment(pay_request("pii", token=REDIRECT))
    fake.approve(created.provider_payment_id)
    result = _confirm(paypal, created.provider_payment_id)
    text = json.dumps(dict(result.raw))
    assert "sb-buyer@personal.example.com" not in text
    assert "John" not in text
    assert result.raw["captures"][0]["amount"] == {"currency_code": "USD", "value": "20.00"}
    assert Decimal(result.raw["amount"]["value"]) == Decimal("20.00")


def test_default_clients_are_built_lazily_with_timeouts() -> None:
    provider = PayPalProvider(alias="pp", options={"TIMEOUT": "12"})
    assert provider._http_client is None  # nothing is built until the first call
    client = provider.http_client
    assert provider.http_client is client
    assert client.timeout.read == 12
    assert client.timeout.connect == 10
    provider.close()
    assert client.is_closed
    injected = httpx.Client()
    PayPalProvider(alias="pp", options={}, http_client=injected).close()
    assert not injected.is_closed  # an injected client belongs to the caller

    async def per_loop() -> bool:
        async_client = provider.async_http_client()
        same = provider.async_http_client() is async_client
        await provider.aclose()
        return same and async_client.is_closed

    assert asyncio.run(per_loop())
