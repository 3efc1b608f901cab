"""The Stripe provider, driving the real stripe SDK against tests/fakes/stripe_server.py.

What is on the wire is read back from the fake's request log, so these tests pin what paydesk
sends to Stripe (amounts in Stripe's minor units, Idempotency-Key, metadata), not only what the
provider returns.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
import stripe
from django.core import checks
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
from paydesk.money import STRIPE_RULES, Money
from paydesk.providers import get_payment_provider
from paydesk.providers.registry import providers
from paydesk.providers.stripe import StripeProvider, mapping
from paydesk.types import (
    AttachMethodRequest,
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    Customer,
    DetachMethodRequest,
    PaymentRequest,
    ProviderStatus,
    RefundRequest,
    StatusRequest,
)

from .contract import ContractSetup, ProviderContract, WebhookSigner
from .fakes.stripe_server import (
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    fixture,
    paydesk_settings,
    signed,
)


@pytest.fixture
def fake_stripe():
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def stripe_provider(fake_stripe) -> StripeProvider:
    with override_settings(PAYDESK=paydesk_settings(fake_stripe)):
        provider = get_payment_provider("stripe")
        assert isinstance(provider, StripeProvider)
        yield provider


def _request(key: str, amount: str = "20.00", currency: str = "USD", **kwargs: Any):
    kwargs.setdefault("payment_method_token", "pm_card_visa")
    return PaymentRequest(
        payment_id=f"pay_{key}",
        amount=Money(amount, currency),
        idempotency_key=f"paydesk:pay_{key}:attempt-1:create",
        **kwargs,
    )


# -- the provider contract -----------------------------------------------------------------


def _success_event(provider_payment_id: str, payment_id: str, amount: Money) -> dict:
    event = fixture("payment_intent.succeeded")
    intent = event["data"]["object"]
    units = STRIPE_RULES.to_minor_units(amount)
    intent.update(
        id=provider_payment_id,
        amount=units,
        amount_received=units,
        currency=amount.currency.lower(),
        description=f"Order total {amount.amount} {amount.currency}",
        metadata={"paydesk_payment_id": payment_id},
    )
    return event


class TestStripeContract(ProviderContract):
    @pytest.fixture
    def contract(self, fake_stripe):
        with override_settings(PAYDESK=paydesk_settings(fake_stripe)):
            yield ContractSetup(
                alias="stripe",
                success_token="pm_card_visa",
                decline_token="pm_card_chargeDeclined",
                action_token="pm_card_threeDSecure2Required",
                signer=WebhookSigner(
                    sign=lambda body, timestamp=None: {
                        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                            body.decode(), WEBHOOK_SECRET, timestamp=timestamp
                        )
                    },
                    sign_with_wrong_secret=lambda body: {
                        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                            body.decode(), "whsec_wrong"
                        )
                    },
                    success_event=_success_event,
                    unknown_event=lambda: fixture("customer.created"),
                ),
            )


# -- configuration -------------------------------------------------------------------------


def test_declares_what_it_is():
    provider = StripeProvider(alias="stripe", options={})
    assert provider.display_name == "Stripe"
    assert provider.capabilities == {
        Capability.CAPTURE,
        Capability.PARTIAL_CAPTURE,
        Capability.CANCEL,
        Capability.REFUND,
        Capability.PARTIAL_REFUND,
        Capability.MULTIPLE_REFUNDS,
        Capability.SAVED_METHODS,
        Capability.WEBHOOKS,
        Capability.SYNC,
    }
    assert provider.currency_rules is STRIPE_RULES
    assert provider.webhook_signature_header == "Stripe-Signature"
    assert provider.webhook_signature_algorithm == "HMAC-SHA256"
    assert provider.supports_currency("JPY")
    assert not provider.supports_currency("IQD")  # not in Stripe's three-decimal list


def test_builds_without_credentials_and_names_what_is_missing():
    provider = StripeProvider(alias="stripe", options={})  # the demo starts like this
    assert provider.configuration_problems() == [
        "OPTIONS['SECRET_KEY'] is not set",
        "OPTIONS['WEBHOOK_SECRET'] is not set",
    ]
    assert not provider.is_configured
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        provider.create_payment(_request("nokey"))
    health = provider.health_check()
    assert not health.ok
    assert "SECRET_KEY" in health.detail


def test_webhook_secrets_list_counts_as_configured():
    provider = StripeProvider(
        alias="stripe",
        options={"SECRET_KEY": SECRET_KEY, "WEBHOOK_SECRETS": ["whsec_a", "whsec_b"]},
    )
    assert provider.configuration_problems() == []


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"SECRET_KEY": PUBLISHABLE_KEY}, "is a publishable key"),
        ({"SECRET_KEY": SECRET_KEY, "PUBLISHABLE_KEY": SECRET_KEY}, "holds a secret key"),
        (
            {"SECRET_KEY": "sk_live_x", "PUBLISHABLE_KEY": "pk_test_x"},
            "mix live and test mode",
        ),
    ],
)
def test_key_mixups_are_configuration_problems(options, problem):
    options = {**options, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    problems = StripeProvider(alias="stripe", options=options).configuration_problems()
    assert any(problem in p for p in problems), problems


def test_system_checks_warn_about_the_missing_key_and_webhook_secret():
    config = {"DEFAULT_PROVIDER": "stripe", "PROVIDERS": {"stripe": {"BACKEND": "stripe"}}}
    with override_settings(PAYDESK=config):
        messages = {m.id: m.msg for m in checks.run_checks() if m.id.startswith("paydesk.")}
    assert "OPTIONS['SECRET_KEY'] is not set" in messages["paydesk.W001"]
    assert "OPTIONS['WEBHOOK_SECRET'] is not set" in messages["paydesk.W002"]


@pytest.mark.parametrize(
    "options",
    [
        {"CAPTURE_METHOD": "manual"},
        {"MAX_NETWORK_RETRIES": "two"},
        {"MAX_NETWORK_RETRIES": -1},
        {"MAX_NETWORK_RETRIES": True},
    ],
)
def test_invalid_option_values_are_configuration_errors(options):
    config = {
        "DEFAULT_PROVIDER": "stripe",
        "PROVIDERS": {"stripe": {"BACKEND": "stripe", "OPTIONS": options}},
    }
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError, match="OPTIONS"):
        get_payment_provider("stripe")


@pytest.mark.parametrize(("value", "expected"), [(None, 2), ("", 2), ("0", 0), ("3", 3), (1, 1)])
def test_max_network_retries_accepts_env_strings(value, expected):
    provider = StripeProvider(alias="stripe", options={"MAX_NETWORK_RETRIES": value})
    assert provider.max_network_retries == expected


def test_client_config_holds_the_publishable_key_only(stripe_provider):
    assert stripe_provider.client_config() == {
        "provider": "stripe",
        "publishable_key": PUBLISHABLE_KEY,
    }


def test_each_instance_owns_its_client_and_never_sets_sdk_globals(fake_stripe):
    api_key, api_base = stripe.api_key, stripe.api_base
    settings = paydesk_settings(fake_stripe)
    settings["PROVIDERS"]["stripe_other"] = {
        "BACKEND": "stripe",
        "OPTIONS": {**settings["PROVIDERS"]["stripe"]["OPTIONS"], "SECRET_KEY": "sk_test_other"},
    }
    with override_settings(PAYDESK=settings):
        good = get_payment_provider("stripe")
        other = get_payment_provider("stripe_other")
        assert good.client is not other.client
        assert good.create_payment(_request("own")).status == ProviderStatus.CAPTURED
        with pytest.raises(ProviderAuthenticationError) as caught:
            other.create_payment(_request("other"))
    assert caught.value.provider == "stripe_other"
    assert "SECRET_KEY" in caught.value.message
    assert (stripe.api_key, stripe.api_base) == (api_key, api_base)
    assert [r.headers["Authorization"] for r in fake_stripe.requests] == [
        f"Bearer {SECRET_KEY}",
        "Bearer sk_test_other",
    ]


def test_the_client_is_built_lazily_and_once(fake_stripe):
    with override_settings(PAYDESK=paydesk_settings(fake_stripe)):
        provider = get_payment_provider("stripe")
        assert provider._client is None
        assert provider.client is provider.client
        providers.reset()


# -- what goes on the wire -----------------------------------------------------------------


def test_create_sends_stripe_parameters_and_the_idempotency_key(stripe_provider, fake_stripe):
    request = _request(
        "wire",
        amount="19.99",
        return_url="https://shop.example/return/",
        description="Booking #42",
        metadata={"paydesk_payment_id": "pay_wire", "reference": "booking-42", "empty": ""},
    )
    result = stripe_provider.create_payment(request)
    assert result.status == ProviderStatus.CAPTURED
    assert result.amount_captured == Money("19.99", "USD")
    (sent,) = fake_stripe.posts("/v1/payment_intents")
    assert sent.idempotency_key == "paydesk:pay_wire:attempt-1:create"
    assert sent.params == {
        "amount": "1999",
        "currency": "usd",
        "capture_method": "automatic",
        "confirm": "true",
        "payment_method": "pm_card_visa",
        "return_url": "https://shop.example/return/",
        "description": "Booking #42",
        "metadata": {
            "paydesk_payment_id": "pay_wire",
            "paydesk_idempotency_key": "paydesk:pay_wire:attempt-1:create",
            "reference": "booking-42",
        },
    }
    assert "client_secret" not in result.raw  # the secret is not kept in the ledger


def test_without_return_url_redirecting_methods_are_turned_off(stripe_provider, fake_stripe):
    stripe_provider.create_payment(_request("noreturn"))
    (sent,) = fake_stripe.posts("/v1/payment_intents")
    assert sent.params["automatic_payment_methods"] == {
        "enabled": "true",
        "allow_redirects": "never",
    }
    assert "return_url" not in sent.params


def test_capture_method_option_applies_to_automatic_captures(fake_stripe):
    with override_settings(PAYDESK=paydesk_settings(fake_stripe, CAPTURE_METHOD="automatic_async")):
        provider = get_payment_provider("stripe")
        provider.create_payment(_request("async_capture"))
        provider.create_payment(_request("manual", capture=False))
    auto, manual = fake_stripe.posts("/v1/payment_intents")
    assert auto.params["capture_method"] == "automatic_async"
    assert manual.params["capture_method"] == "manual"


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("500", "JPY", "500"),
        ("1.230", "KWD", "1230"),
        ("19.99", "USD", "1999"),
        ("1500", "MGA", "1500"),
    ],
)
def test_amounts_go_out_in_stripes_minor_units(
    stripe_provider, fake_stripe, amount, currency, units
):
    money = Money(amount, currency)
    result = stripe_provider.create_payment(_request(f"units_{currency}", amount, currency))
    assert result.amount_captured == money
    refund = stripe_provider.create_refund(
        RefundRequest(
            refund_id=f"ref_{currency}",
            payment_id=f"pay_units_{currency}",
            provider_payment_id=result.provider_payment_id,
            amount=money,
            idempotency_key=f"paydesk:ref_{currency}:refund",
        )
    )
    assert refund.status == "completed"
    created, refunded = fake_stripe.posts()
    assert (created.params["amount"], created.params["currency"]) == (units, currency.lower())
    assert refunded.params["amount"] == units


@pytest.mark.parametrize(
    ("amount", "currency"), [("1.234", "KWD"), ("10.50", "ISK"), ("1.5", "MGA")]
)
def test_amounts_stripe_cannot_take_are_refused_before_any_call(
    stripe_provider, fake_stripe, amount, currency
):
    with pytest.raises(AmountPrecisionError):
        stripe_provider.create_payment(_request("precision", amount, currency))
    assert fake_stripe.requests == []


# -- PaymentIntent statuses ------------------------------------------------------------------


def _intent(status: str, **fields: Any) -> dict[str, Any]:
    intent = fixture("payment_intent.succeeded")["data"]["object"]
    intent.update({"status": status, "amount_received": 0, **fields})
    return intent


@pytest.mark.parametrize(
    ("intent", "status"),
    [
        (_intent("succeeded", amount_received=2000), ProviderStatus.CAPTURED),
        (_intent("requires_capture", amount_capturable=2000), ProviderStatus.AUTHORIZED),
        (_intent("requires_action"), ProviderStatus.REQUIRES_ACTION),
        (_intent("processing"), ProviderStatus.PROCESSING),
        (_intent("requires_payment_method"), ProviderStatus.REQUIRES_ACTION),
        (_intent("requires_confirmation"), ProviderStatus.REQUIRES_ACTION),
        (
            _intent("requires_payment_method", last_payment_error={"code": "card_declined"}),
            ProviderStatus.FAILED,
        ),
        (_intent("canceled"), ProviderStatus.CANCELLED),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_every_intent_status_maps(intent, status):
    result = mapping.intent_result(intent)
    assert result.status == status
    assert result.provider_payment_id == intent["id"]
    if status == ProviderStatus.REQUIRES_ACTION:
        assert result.next_action.type == "use_client_secret"
        assert result.next_action.client_secret == intent["client_secret"]
    if status == ProviderStatus.FAILED:
        assert result.failure.code == "card_declined"


def test_partial_capture_keeps_authorized_and_captured_apart():
    result = mapping.intent_result(_intent("succeeded", amount=2000, amount_received=1250))
    assert result.amount_authorized == Money("20.00", "USD")
    assert result.amount_captured == Money("12.50", "USD")


def test_redirect_next_action_carries_the_url():
    intent = _intent(
        "requires_action",
        next_action={
            "type": "redirect_to_url",
            "redirect_to_url": {"url": "https://hooks.stripe.com/3ds"},
        },
    )
    action = mapping.intent_result(intent).next_action
    assert action.as_dict() == {
        "type": "use_client_secret",
        "client_secret": intent["client_secret"],
        "redirect_url": "https://hooks.stripe.com/3ds",
    }


def test_an_unknown_status_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="Unknown Stripe PaymentIntent status"):
        mapping.intent_result(_intent("something_new"))


def test_no_token_asks_the_frontend_for_a_card(stripe_provider, fake_stripe):
    result = stripe_provider.create_payment(_request("notoken", payment_method_token=""))
    assert result.status == ProviderStatus.REQUIRES_ACTION
    intent = fake_stripe.intent(result.provider_payment_id)
    assert result.next_action.client_secret == intent["client_secret"]
    (sent,) = fake_stripe.posts("/v1/payment_intents")
    assert "confirm" not in sent.params
    fake_stripe.client_confirm(intent["id"], "pm_card_visa")  # Stripe.js in the browser
    confirmed = stripe_provider.confirm_payment(
        ConfirmRequest(
            payment_id="pay_notoken",
            provider_payment_id=intent["id"],
            amount=Money("20.00", "USD"),
            idempotency_key="paydesk:pay_notoken:attempt-1:confirm",
        )
    )
    assert confirmed.status == ProviderStatus.CAPTURED


def test_three_d_secure_surfaces_the_client_secret_and_redirect(stripe_provider, fake_stripe):
    request = _request(
        "3ds", payment_method_token="pm_card_threeDSecure2Required", return_url="https://x.test/r/"
    )
    result = stripe_provider.create_payment(request)
    assert result.status == ProviderStatus.REQUIRES_ACTION
    intent = fake_stripe.intent(result.provider_payment_id)
    assert result.next_action.client_secret == intent["client_secret"]
    assert result.next_action.redirect_url == intent["next_action"]["redirect_to_url"]["url"]
    confirm = ConfirmRequest(
        payment_id=request.payment_id,
        provider_payment_id=intent["id"],
        amount=request.amount,
        idempotency_key="paydesk:pay_3ds:attempt-1:confirm",
    )
    assert stripe_provider.confirm_payment(confirm).status == ProviderStatus.REQUIRES_ACTION
    fake_stripe.complete_3ds(intent["id"])
    assert stripe_provider.confirm_payment(confirm).status == ProviderStatus.CAPTURED
    assert fake_stripe.posts("/v1/payment_intents/") == []  # retrieving was enough


def test_failed_three_d_secure_is_authentication_required(stripe_provider, fake_stripe):
    result = stripe_provider.create_payment(
        _request("3dsfail", payment_method_token="pm_card_threeDSecure2Required")
    )
    fake_stripe.complete_3ds(result.provider_payment_id, passed=False)
    status = stripe_provider.get_payment_status(
        StatusRequest(
            payment_id="pay_3dsfail",
            provider_payment_id=result.provider_payment_id,
            idempotency_key="k",
            amount=Money("20.00", "USD"),
        )
    )
    assert status.status == ProviderStatus.FAILED
    assert status.failure.code == "authentication_required"


def test_confirm_posts_when_the_intent_waits_for_confirmation(stripe_provider, fake_stripe):
    result = stripe_provider.create_payment(
        _request("manualconfirm", payment_method_token="pm_card_threeDSecure2Required")
    )
    fake_stripe.authenticate(result.provider_payment_id)
    confirmed = stripe_provider.confirm_payment(
        ConfirmRequest(
            payment_id="pay_manualconfirm",
            provider_payment_id=result.provider_payment_id,
            amount=Money("20.00", "USD"),
            idempotency_key="paydesk:pay_manualconfirm:attempt-1:confirm",
        )
    )
    assert confirmed.status == ProviderStatus.CAPTURED
    (sent,) = fake_stripe.posts(f"/v1/payment_intents/{result.provider_payment_id}/confirm")
    assert sent.idempotency_key == "paydesk:pay_manualconfirm:attempt-1:confirm"


def test_confirm_with_a_new_payment_method_uses_its_own_key(stripe_provider, fake_stripe):
    failed = stripe_provider.create_payment(
        _request("newpm", payment_method_token="pm_card_chargeDeclined")
    )
    assert failed.status == ProviderStatus.FAILED
    request = ConfirmRequest(
        payment_id="pay_newpm",
        provider_payment_id=failed.provider_payment_id,
        amount=Money("20.00", "USD"),
        idempotency_key="paydesk:pay_newpm:attempt-1:confirm",
        params={"payment_method": "pm_card_visa"},
    )
    assert stripe_provider.confirm_payment(request).status == ProviderStatus.CAPTURED
    (sent,) = fake_stripe.posts(f"/v1/payment_intents/{failed.provider_payment_id}/confirm")
    assert sent.params == {"payment_method": "pm_card_visa"}
    assert sent.idempotency_key == "paydesk:pay_newpm:attempt-1:confirm:pm_card_visa"


def test_processing_and_cancelled_through_the_api(stripe_provider, fake_stripe):
    created = stripe_provider.create_payment(_request("proc", payment_method_token=""))
    fake_stripe.set_status(created.provider_payment_id, "processing")
    status = StatusRequest(
        payment_id="pay_proc",
        provider_payment_id=created.provider_payment_id,
        idempotency_key="k",
        amount=Money("20.00", "USD"),
    )
    assert stripe_provider.get_payment_status(status).status == ProviderStatus.PROCESSING
    fake_stripe.set_status(created.provider_payment_id, "requires_payment_method")
    cancelled = stripe_provider.cancel_payment(
        CancelRequest(
            payment_id="pay_proc",
            provider_payment_id=created.provider_payment_id,
            idempotency_key="paydesk:pay_proc:cancel",
            reason="requested_by_customer",
        )
    )
    assert cancelled.status == ProviderStatus.CANCELLED
    (sent,) = fake_stripe.posts(f"/v1/payment_intents/{created.provider_payment_id}/cancel")
    assert sent.params == {"cancellation_reason": "requested_by_customer"}
    assert sent.idempotency_key == "paydesk:pay_proc:cancel"


def test_cancel_reason_outside_stripes_list_is_not_sent(stripe_provider, fake_stripe):
    created = stripe_provider.create_payment(_request("cancelreason", capture=False))
    stripe_provider.cancel_payment(
        CancelRequest(
            payment_id="pay_cancelreason",
            provider_payment_id=created.provider_payment_id,
            idempotency_key="paydesk:pay_cancelreason:cancel",
            reason="customer changed their mind",
        )
    )
    assert (
        fake_stripe.posts(f"/v1/payment_intents/{created.provider_payment_id}/cancel")[0].params
        == {}
    )


def test_partial_capture_sends_amount_to_capture(stripe_provider, fake_stripe):
    authorized = stripe_provider.create_payment(_request("partial", capture=False))
    assert authorized.status == ProviderStatus.AUTHORIZED
    assert authorized.amount_authorized == Money("20.00", "USD")
    captured = stripe_provider.capture_payment(
        CaptureRequest(
            payment_id="pay_partial",
            provider_payment_id=authorized.provider_payment_id,
            amount=Money("12.50", "USD"),
            idempotency_key="paydesk:pay_partial:capture",
        )
    )
    assert captured.amount_captured == Money("12.50", "USD")
    assert captured.amount_authorized == Money("20.00", "USD")
    (sent,) = fake_stripe.posts(f"/v1/payment_intents/{authorized.provider_payment_id}/capture")
    assert (sent.params, sent.idempotency_key) == (
        {"amount_to_capture": "1250"},
        "paydesk:pay_partial:capture",
    )
    assert fake_stripe.charged("pay_partial") == 1250


def test_operations_need_the_intent_id(stripe_provider, fake_stripe):
    with pytest.raises(ProviderRequestError, match="PaymentIntent id") as caught:
        stripe_provider.capture_payment(
            CaptureRequest(
                payment_id="p",
                provider_payment_id="",
                amount=Money("1.00", "USD"),
                idempotency_key="k",
            )
        )
    assert caught.value.provider == "stripe"
    assert fake_stripe.requests == []


def test_status_without_an_intent_id_searches_paydesks_metadata(stripe_provider, fake_stripe):
    first = _request("search")
    created = stripe_provider.create_payment(first)
    second_attempt = StatusRequest(
        payment_id="pay_search",
        provider_payment_id="",
        idempotency_key="paydesk:pay_search:attempt-2:create",
        amount=first.amount,
    )
    assert stripe_provider.get_payment_status(second_attempt).status == ProviderStatus.NOT_FOUND
    found = stripe_provider.get_payment_status(
        StatusRequest(
            payment_id="pay_search",
            provider_payment_id="",
            idempotency_key=first.idempotency_key,
            amount=first.amount,
        )
    )
    assert (found.status, found.provider_payment_id) == (
        ProviderStatus.CAPTURED,
        created.provider_payment_id,
    )
    searches = [r for r in fake_stripe.requests if r.path == "/v1/payment_intents/search"]
    assert searches[0].params["query"] == "metadata['paydesk_payment_id']:'pay_search'"


# -- declines and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "code", "provider_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
        ("pm_card_chargeDeclinedLostCard", "lost_card", "lost_card"),
        ("pm_card_chargeDeclinedStolenCard", "stolen_card", "stolen_card"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ],
)
def test_declines_are_failed_results_with_taxonomy_codes(
    stripe_provider, fake_stripe, token, code, provider_code
):
    result = stripe_provider.create_payment(_request(f"decline_{code}", payment_method_token=token))
    assert result.status == ProviderStatus.FAILED
    assert (result.failure.code, result.failure.provider_code) == (code, provider_code)
    assert result.failure.message
    intent = fake_stripe.intent(result.provider_payment_id)  # Stripe made the intent
    assert intent["status"] == "requires_payment_method"
    assert result.raw["request_id"].startswith("req_")
    assert fake_stripe.charged(f"pay_decline_{code}") == 0


def test_a_replayed_decline_is_the_same_answer(stripe_provider, fake_stripe):
    request = _request("replaydecline", payment_method_token="pm_card_chargeDeclined")
    first = stripe_provider.create_payment(request)
    second = stripe_provider.create_payment(request)
    assert second.provider_payment_id == first.provider_payment_id
    assert fake_stripe.requests[-1].replayed
    assert len(fake_stripe.intents) == 1


def _stripe_error(cls, status, error=None, **kwargs):
    body = {"error": error or {}}
    headers = {"request-id": "req_table"}
    if cls in (stripe.CardError, stripe.InvalidRequestError):
        return cls(
            (error or {}).get("message", "m"),
            (error or {}).get("param"),
            (error or {}).get("code"),
            http_status=status,
            json_body=body,
            headers=headers,
        )
    return cls("message", http_status=status, json_body=body, headers=headers, **kwargs)


@pytest.mark.parametrize(
    ("exc", "paydesk_class", "code", "retryable"),
    [
        (
            _stripe_error(
                stripe.CardError,
                402,
                {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"},
            ),
            PaymentDeclined,
            "card_declined",
            False,
        ),
        (
            _stripe_error(
                stripe.CardError,
                402,
                {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                },
            ),
            PaymentDeclined,
            "insufficient_funds",
            False,
        ),
        (
            _stripe_error(stripe.CardError, 402, {"type": "card_error", "code": "expired_card"}),
            PaymentDeclined,
            "expired_card",
            False,
        ),
        (
            _stripe_error(stripe.CardError, 402, {"type": "card_error", "code": "incorrect_cvc"}),
            PaymentDeclined,
            "incorrect_cvc",
            False,
        ),
        (
            _stripe_error(
                stripe.CardError,
                402,
                {
                    "type": "card_error",
                    "code": "authentication_required",
                    "decline_code": "authentication_required",
                },
            ),
            AuthenticationRequired,
            "authentication_required",
            False,
        ),
        (
            _stripe_error(
                stripe.CardError, 402, {"type": "card_error", "code": "processing_error"}
            ),
            ProviderProcessingError,
            "processing_error",
            False,
        ),
        (
            _stripe_error(
                stripe.RateLimitError, 429, {"type": "invalid_request_error", "code": "rate_limit"}
            ),
            ProviderUnavailable,
            "rate_limited",
            True,
        ),
        (
            stripe.APIConnectionError("Network error", should_retry=True),
            ProviderUnavailable,
            "provider_unavailable",
            True,
        ),
        (
            _stripe_error(stripe.APIError, 500, {"type": "api_error"}),
            ProviderUnavailable,
            "provider_unavailable",
            True,
        ),
        (
            _stripe_error(stripe.APIError, 503, {"type": "api_error"}),
            ProviderUnavailable,
            "provider_unavailable",
            True,
        ),
        (
            _stripe_error(stripe.APIError, 409, {"type": "idempotency_error"}),
            ProviderUnavailable,
            "provider_unavailable",
            True,
        ),
        (
            _stripe_error(stripe.IdempotencyError, 400, {"type": "idempotency_error"}),
            ProviderRequestError,
            "idempotency_error",
            False,
        ),
        (
            _stripe_error(
                stripe.InvalidRequestError,
                400,
                {"type": "invalid_request_error", "code": "parameter_missing"},
            ),
            ProviderRequestError,
            "invalid_request",
            False,
        ),
        (
            _stripe_error(
                stripe.InvalidRequestError,
                404,
                {"type": "invalid_request_error", "code": "resource_missing"},
            ),
            ProviderRequestError,
            "invalid_request",
            False,
        ),
        (
            _stripe_error(stripe.AuthenticationError, 401, {"type": "invalid_request_error"}),
            ProviderAuthenticationError,
            "provider_authentication",
            False,
        ),
        (
            _stripe_error(stripe.PermissionError, 403, {"type": "invalid_request_error"}),
            ProviderAuthenticationError,
            "provider_authentication",
            False,
        ),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_error_mapping_table(exc, paydesk_class, code, retryable):
    error = mapping.provider_error(exc, alias="stripe")
    assert type(error) is paydesk_class
    assert (error.code, error.retryable, error.provider) == (code, retryable, "stripe")
    if not isinstance(exc, stripe.APIConnectionError):
        assert error.request_id == "req_table"
    assert error.message.startswith("Stripe")


def test_errors_from_the_fake_map_with_request_ids(stripe_provider, fake_stripe):
    with pytest.raises(ProviderRequestError) as caught:
        stripe_provider.get_payment_status(
            StatusRequest(
                payment_id="p",
                provider_payment_id="pi_missing",
                idempotency_key="k",
                amount=Money("1.00", "USD"),
            )
        )
    assert (caught.value.code, caught.value.provider_code) == (
        "invalid_request",
        "resource_missing",
    )
    assert caught.value.request_id.startswith("req_")
    bad = _request("badpm", payment_method_token="pm_does_not_exist")
    with pytest.raises(ProviderRequestError) as caught:
        stripe_provider.create_payment(bad)
    assert caught.value.provider_code == "resource_missing"


def test_reusing_a_key_with_other_parameters_is_an_idempotency_error(stripe_provider, fake_stripe):
    stripe_provider.create_payment(_request("reuse"))
    with pytest.raises(ProviderRequestError) as caught:
        stripe_provider.create_payment(_request("reuse", amount="21.00"))
    assert caught.value.code == "idempotency_error"
    assert not caught.value.retryable
    assert fake_stripe.charged("pay_reuse") == 2000


@pytest.mark.parametrize(
    ("fault", "code"),
    [("500", "provider_unavailable"), ("429", "rate_limited"), ("reset", "provider_unavailable")],
)
def test_transient_failures_without_retries_are_retryable_errors(
    stripe_provider, fake_stripe, fault, code
):
    fake_stripe.fail_next(fault)
    with pytest.raises(ProviderUnavailable) as caught:
        stripe_provider.create_payment(_request(f"fault_{fault}"))
    assert (caught.value.code, caught.value.retryable) == (code, True)


# -- refunds ---------------------------------------------------------------------------------


def _captured(provider, key: str, amount: str = "20.00"):
    return provider.create_payment(_request(key, amount))


def _refund(result, key: str, amount: str, reason: str = ""):
    return RefundRequest(
        refund_id=f"ref_{key}",
        payment_id="pay_x",
        provider_payment_id=result.provider_payment_id,
        amount=Money(amount, "USD"),
        idempotency_key=f"paydesk:ref_{key}:refund",
        reason=reason,
    )


def test_refund_wire_format_and_statuses(stripe_provider, fake_stripe):
    paid = _captured(stripe_provider, "refund")
    done = stripe_provider.create_refund(_refund(paid, "a", "5.00", reason="requested_by_customer"))
    assert done.status == "completed"
    fake_stripe.refund_status = "pending"
    pending = stripe_provider.create_refund(
        _refund(paid, "b", "3.00", reason="the box was damaged")
    )
    assert pending.status == "pending"
    first, second = fake_stripe.posts("/v1/refunds")
    assert first.params == {
        "payment_intent": paid.provider_payment_id,
        "amount": "500",
        "reason": "requested_by_customer",
        "metadata": {"paydesk_refund_id": "ref_a", "paydesk_payment_id": "pay_x"},
    }
    assert first.idempotency_key == "paydesk:ref_a:refund"
    assert "reason" not in second.params
    assert second.params["metadata"]["paydesk_reason"] == "the box was damaged"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", "completed"),
        ("pending", "pending"),
        ("requires_action", "pending"),
        ("failed", "failed"),
        ("canceled", "failed"),
    ],
)
def test_refund_status_mapping(status, expected):
    assert mapping.refund_status(status) == expected


def test_refund_beyond_the_charge_is_refused(stripe_provider):
    paid = _captured(stripe_provider, "over")
    with pytest.raises(ProviderRequestError):
        stripe_provider.create_refund(_refund(paid, "over", "25.00"))


# -- saved payment methods and health ------------------------------------------------------


def test_attach_creates_a_customer_then_reuses_it(stripe_provider, fake_stripe):
    saved = stripe_provider.attach_payment_method(
        AttachMethodRequest(
            token="pm_card_visa",
            user_ref="42",
            customer=Customer(email="jenny@example.com", name="Jenny Rosen"),
            idempotency_key="paydesk:attach:42",
        )
    )
    assert saved.token.startswith("pm_")
    assert saved.token != "pm_card_visa"
    assert saved.customer_ref.startswith("cus_")
    assert (saved.brand, saved.last4, saved.exp_month, saved.exp_year) == ("visa", "4242", 12, 2034)
    assert saved.fingerprint
    assert saved.type == "credit_card"
    customer = fake_stripe.customers[saved.customer_ref]
    assert (customer["email"], customer["metadata"]) == (
        "jenny@example.com",
        {"paydesk_user_ref": "42"},
    )
    debit = stripe_provider.attach_payment_method(
        AttachMethodRequest(
            token="pm_card_visa_debit", user_ref="42", customer_ref=saved.customer_ref
        )
    )
    assert debit.customer_ref == saved.customer_ref
    assert debit.type == "debit_card"
    assert len(fake_stripe.customers) == 1
    customer_post, attach_post, _ = fake_stripe.posts()
    assert customer_post.idempotency_key == "paydesk:attach:42:customer"
    assert attach_post.idempotency_key == f"paydesk:attach:42:attach:{saved.customer_ref}"

    stripe_provider.detach_payment_method(
        DetachMethodRequest(token=saved.token, customer_ref=saved.customer_ref)
    )
    assert fake_stripe.payment_methods[saved.token]["customer"] is None
    # Detaching again (or a method detached in the Dashboard) is done, not an error.
    stripe_provider.detach_payment_method(DetachMethodRequest(token=saved.token))


def test_a_saved_method_is_charged_with_its_customer(stripe_provider, fake_stripe):
    saved = stripe_provider.attach_payment_method(
        AttachMethodRequest(token="pm_card_visa", user_ref="7")
    )
    with pytest.raises(ProviderRequestError, match="customer"):
        stripe_provider.create_payment(_request("nocustomer", payment_method_token=saved.token))
    result = stripe_provider.create_payment(
        _request("withcustomer", payment_method_token=saved.token, customer_ref=saved.customer_ref)
    )
    assert result.status == ProviderStatus.CAPTURED
    assert fake_stripe.posts("/v1/payment_intents")[-1].params["customer"] == saved.customer_ref


def test_health_check_reads_the_balance(stripe_provider, fake_stripe):
    health = stripe_provider.health_check()
    assert health.ok, health.detail
    assert health.response_time_ms is not None
    assert health.response_time_ms >= 0
    assert "test mode" in health.detail
    assert [(r.method, r.path) for r in fake_stripe.requests] == [("GET", "/v1/balance")]


def test_health_check_reports_a_bad_key_and_an_unreachable_api(fake_stripe):
    with override_settings(PAYDESK=paydesk_settings(fake_stripe, SECRET_KEY="sk_test_revoked")):
        health = get_payment_provider("stripe").health_check()
    assert not health.ok
    assert "SECRET_KEY" in health.detail
    fake_stripe.fail_next("reset")
    with override_settings(PAYDESK=paydesk_settings(fake_stripe, MAX_NETWORK_RETRIES=2)):
        health = get_payment_provider("stripe").health_check()
    assert not health.ok  # health checks never retry: one reset is an answer
    assert len(fake_stripe.requests) == 2


# -- async twins -----------------------------------------------------------------------------


# stripe's HTTPXClient posts its form body as data=str, which httpx deprecates (SDK's business).
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_async_twins_use_the_sdks_async_methods(stripe_provider, fake_stripe):
    request = _request("async", capture=False)

    async def flow():
        created = await stripe_provider.create_payment_async(request)
        again = await stripe_provider.create_payment_async(request)
        captured = await stripe_provider.capture_payment_async(
            CaptureRequest(
                payment_id=request.payment_id,
                provider_payment_id=created.provider_payment_id,
                amount=Money("15.00", "USD"),
                idempotency_key="paydesk:pay_async:capture",
            )
        )
        status = await stripe_provider.get_payment_status_async(
            StatusRequest(
                payment_id=request.payment_id,
                provider_payment_id=created.provider_payment_id,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
            )
        )
        refund = await stripe_provider.create_refund_async(_refund(created, "async", "5.00"))
        declined = await stripe_provider.create_payment_async(
            _request("async_declined", payment_method_token="pm_card_chargeDeclined")
        )
        try:
            await stripe_provider.confirm_payment_async(
                ConfirmRequest(
                    payment_id="p",
                    provider_payment_id="pi_nope",
                    amount=request.amount,
                    idempotency_key="k",
                )
            )
        except ProviderError as exc:
            missing = exc
        other = await stripe_provider.create_payment_async(_request("async_cancel", capture=False))
        cancelled = await stripe_provider.cancel_payment_async(
            CancelRequest(
                payment_id="p",
                provider_payment_id=other.provider_payment_id,
                idempotency_key="paydesk:c",
            )
        )
        return created, again, captured, status, refund, declined, missing, cancelled

    created, again, captured, status, refund, declined, missing, cancelled = asyncio.run(flow())
    assert created.status == ProviderStatus.AUTHORIZED
    assert again.provider_payment_id == created.provider_payment_id
    assert captured.amount_captured == Money("15.00", "USD")
    assert status.status == ProviderStatus.CAPTURED
    assert refund.status == "completed"
    assert declined.failure.code == "card_declined"
    assert missing.code == "invalid_request"
    assert missing.provider == "stripe"
    assert cancelled.status == ProviderStatus.CANCELLED
    assert fake_stripe.charged("pay_async") == 1500
    assert fake_stripe.requests[1].replayed


def test_money_helper_reads_stripes_units():
    assert mapping.money(500, "jpy") == Money("500", "JPY")
    assert mapping.money(1230, "kwd") == Money("1.230", "KWD")
    assert mapping.money(1999, "usd") == Money(Decimal("19.99"), "USD")


def test_signed_helper_matches_stripes_sdk():
    body, headers = signed(fixture("payment_intent.succeeded"))
    assert stripe.WebhookSignature.verify_header(
        body.decode(), headers["Stripe-Signature"], WEBHOOK_SECRET, tolerance=300
    )
