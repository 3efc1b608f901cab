"""Stripe through paydesk's services: the booking flow, saved methods, currency rules.

The customer's browser (Stripe.js) is played by the fake: ``client_confirm`` is
``stripe.confirmCardPayment(client_secret, ...)`` and ``complete_3ds`` the challenge.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from bookings.models import Booking, Event
from paydesk import services
from paydesk.exceptions import PaymentValidationError, ProviderRequestError
from paydesk.money import Money
from paydesk.providers import get_payment_provider

from .fakes.stripe_server import PUBLISHABLE_KEY, FakeStripe, paydesk_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_stripe():
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _stripe(fake_stripe):
    with override_settings(PAYDESK=paydesk_settings(fake_stripe)):
        yield


@pytest.fixture
def booking(user):
    event = Event.objects.create(
        title="Jazz night",
        starts_at=timezone.now() + dt.timedelta(days=7),
        price="45.00",
        currency="EUR",
    )
    return Booking.objects.create(event=event, email=user.email, user=user)


def _pay_for(booking: Booking, user, **kwargs):
    return services.create_payment(
        amount=booking.event.price,
        currency=booking.event.currency,
        provider="stripe",
        user=user,
        content_object=booking,
        reference=booking.public_id,
        description=f"Booking {booking.public_id}: {booking.event}",
        return_url=f"https://demo.test/bookings/{booking.public_id}/",
        **kwargs,
    )


def test_booking_flow_card_collected_by_stripe_js(booking, user, fake_stripe):
    payment = _pay_for(booking, user)
    # What the page needs to mount Stripe.js: the publishable key and the client secret.
    assert get_payment_provider("stripe").client_config()["publishable_key"] == PUBLISHABLE_KEY
    payment = services.process_payment(payment=payment)
    assert payment.status == "requires_action"
    intent = fake_stripe.intent(payment.provider_payment_id)
    assert payment.next_action == {
        "type": "use_client_secret",
        "client_secret": intent["client_secret"],
    }
    assert (intent["amount"], intent["currency"]) == (4500, "eur")
    assert intent["metadata"] == {
        "paydesk_payment_id": payment.pk,
        "paydesk_idempotency_key": f"paydesk:{payment.pk}:attempt-1:create",
        "reference": booking.public_id,
    }

    # The customer types a card that needs 3-D Secure, then passes the challenge.
    fake_stripe.client_confirm(intent["id"], "pm_card_threeDSecure2Required")
    payment = services.confirm_payment(payment=payment)
    assert payment.status == "requires_action"
    fake_stripe.complete_3ds(intent["id"])
    payment = services.confirm_payment(payment=payment)
    assert payment.status == "completed"
    assert payment.captured_amount == Money("45.00", "EUR").amount

    refund = services.create_refund(payment=payment, amount="15.00", reason="requested_by_customer")
    assert refund.status == "completed"
    assert refund.provider_refund_id.startswith("re_")
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert fake_stripe.refunded(payment.pk) == 1500
    assert fake_stripe.charged(payment.pk) == 4500


def test_booking_flow_retry_with_a_new_method_after_a_decline(booking, user, fake_stripe):
    payment = _pay_for(booking, user)
    payment = services.process_payment(
        payment=payment, payment_method_token="pm_card_chargeDeclined"
    )
    assert (payment.status, payment.failure_code) == ("failed", "card_declined")
    first_intent = payment.provider_payment_id

    payment = services.retry_payment(payment=payment, payment_method_token="pm_card_visa")
    assert payment.status == "completed"
    assert payment.attempt == 2
    assert payment.provider_payment_id != first_intent
    assert fake_stripe.charged(payment.pk) == 4500
    sent = fake_stripe.posts("/v1/payment_intents")
    assert [r.params["payment_method"] for r in sent] == ["pm_card_chargeDeclined", "pm_card_visa"]
    assert all(r.params["return_url"] == payment.return_url for r in sent)


def test_a_redirect_comes_back_through_paydesks_return_view(booking, user, fake_stripe, client):
    settings = paydesk_settings(fake_stripe)
    settings["PUBLIC_BASE_URL"] = "https://demo.test"
    with override_settings(PAYDESK=settings):
        payment = services.process_payment(
            payment=_pay_for(booking, user), payment_method_token="pm_card_threeDSecure2Required"
        )
        (sent,) = fake_stripe.posts("/v1/payment_intents")
        assert sent.params["return_url"] == f"https://demo.test/paydesk/return/{payment.pk}/"
        assert payment.status == "requires_action"
        assert payment.next_action["redirect_url"]  # the bank's 3-D Secure page
        intent = fake_stripe.complete_3ds(payment.provider_payment_id)
        # Stripe sends the customer back with its own query parameters.
        response = client.get(
            f"/paydesk/return/{payment.pk}/",
            {
                "payment_intent": intent["id"],
                "payment_intent_client_secret": intent["client_secret"],
                "redirect_status": "succeeded",
            },
            HTTP_HOST="demo.test",
            secure=True,
        )
    assert response.status_code == 302
    assert response["Location"] == payment.return_url
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert fake_stripe.posts(f"/v1/payment_intents/{intent['id']}/confirm") == []


def test_manual_capture_in_part_then_sync(booking, user, fake_stripe):
    payment = _pay_for(booking, user, capture=False)
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    assert payment.status == "authorized"
    payment = services.capture_payment(payment=payment, amount="30.00")
    assert payment.status == "completed"
    assert payment.captured_amount == Money("30.00", "EUR").amount
    assert services.sync_payment(payment=payment).status == "completed"
    assert fake_stripe.charged(payment.pk) == 3000


def test_cancel_an_authorization(booking, user, fake_stripe):
    payment = _pay_for(booking, user, capture=False)
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    payment = services.cancel_payment(payment=payment, reason="requested_by_customer")
    assert payment.status == "cancelled"
    assert fake_stripe.intent(payment.provider_payment_id)["status"] == "canceled"


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [("500", "JPY", 500), ("1.230", "KWD", 1230), ("19.99", "USD", 1999)],
)
def test_payment_and_refund_amounts_on_the_wire(fake_stripe, amount, currency, units):
    payment = services.create_payment(amount=amount, currency=currency, provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    assert payment.status == "completed"
    services.create_refund(payment=payment)
    created, refunded = fake_stripe.posts()
    assert created.params["amount"] == str(units)
    assert refunded.params["amount"] == str(units)
    payment.refresh_from_db()
    assert payment.status == "refunded"


def test_an_amount_stripe_cannot_take_is_refused_when_the_payment_is_created(fake_stripe):
    with pytest.raises(PaymentValidationError) as caught:
        services.create_payment(amount="1.234", currency="KWD", provider="stripe")
    assert (caught.value.code, caught.value.field) == ("amount_precision", "amount")
    assert fake_stripe.requests == []
    # The sandbox follows ISO 4217, which allows three KWD decimals.
    assert services.create_payment(amount="1.234", currency="KWD", provider="sandbox")


# -- saved payment methods -------------------------------------------------------------------


def test_attach_saves_the_method_at_stripe_and_payments_send_its_customer(user, fake_stripe):
    method = services.add_payment_method(
        user=user, provider="stripe", provider_token="pm_card_visa", attach=True
    )
    assert method.provider_token.startswith("pm_")
    assert method.provider_token != "pm_card_visa"
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == (
        "visa",
        "4242",
        12,
        2034,
    )
    assert method.fingerprint
    customer_ref = method.metadata["customer_ref"]
    assert fake_stripe.customers[customer_ref]["email"] == user.email
    assert fake_stripe.payment_methods[method.provider_token]["customer"] == customer_ref

    second = services.add_payment_method(
        user=user, provider="stripe", provider_token="pm_card_mastercard", attach=True
    )
    assert second.metadata["customer_ref"] == customer_ref  # one Stripe customer per user
    assert len(fake_stripe.customers) == 1

    payment = services.create_payment(
        amount="12.00", currency="USD", provider="stripe", user=user, payment_method=method
    )
    payment = services.process_payment(payment=payment)
    assert payment.status == "completed"
    sent = fake_stripe.posts("/v1/payment_intents")[-1]
    assert (sent.params["customer"], sent.params["payment_method"]) == (
        customer_ref,
        method.provider_token,
    )

    services.deactivate_payment_method(method=method)
    method.refresh_from_db()
    assert not method.is_active
    assert fake_stripe.payment_methods[method.provider_token]["customer"] is None
    detaches = fake_stripe.posts(f"/v1/payment_methods/{method.provider_token}/detach")
    assert len(detaches) == 1
    services.deactivate_payment_method(method=method)  # already inactive: no second call
    assert len(fake_stripe.posts(f"/v1/payment_methods/{method.provider_token}/detach")) == 1


def test_a_raw_token_on_the_payment_wins_over_the_saved_method(user, fake_stripe):
    method = services.add_payment_method(
        user=user, provider="stripe", provider_token="pm_card_visa", attach=True
    )
    payment = services.create_payment(
        amount="12.00",
        currency="USD",
        provider="stripe",
        user=user,
        payment_method=method,
        payment_method_token="pm_card_mastercard",
    )
    assert services.process_payment(payment=payment).status == "completed"
    sent = fake_stripe.posts("/v1/payment_intents")[-1]
    assert sent.params["payment_method"] == "pm_card_mastercard"
    assert "customer" not in sent.params


def test_a_failed_attach_saves_nothing(user, fake_stripe):
    with pytest.raises(ProviderRequestError):
        services.add_payment_method(
            user=user, provider="stripe", provider_token="pm_nope", attach=True
        )
    assert not user.paydesk_payment_methods.exists()


def test_without_attach_no_call_is_made(user, fake_stripe):
    method = services.add_payment_method(user=user, provider="stripe", provider_token="pm_1Abc")
    assert method.metadata == {}
    services.deactivate_payment_method(method=method)
    assert fake_stripe.requests == []


def test_attaching_the_same_card_twice_returns_the_saved_method(user, fake_stripe):
    method = services.add_payment_method(
        user=user, provider="stripe", provider_token="pm_card_visa", attach=True
    )
    again = services.add_payment_method(
        user=user, provider="stripe", provider_token=method.provider_token, attach=True
    )
    assert again.pk == method.pk
