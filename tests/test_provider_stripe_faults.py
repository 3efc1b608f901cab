"""Faults between paydesk and Stripe: retried calls never charge or refund twice.

The fake fails the first attempts of a call (500, 429 with Stripe-Should-Retry, a reset
connection before or after doing the work, an answer held back past the client's timeout).
The SDK retries with the same Idempotency-Key; the fake's own books must show one charge or
refund. When the retries run out, paydesk's services keep the outcome open and
``sync_payment`` / ``process_refund`` settle it.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import ProviderRequestError, ProviderUnavailable
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.types import PaymentRequest, ProviderStatus, RefundRequest

from .fakes.stripe_server import FakeStripe, paydesk_settings

TIMEOUT = 0.5  # the client's; a "timeout" fault holds the answer for 1.5 s


@pytest.fixture
def fake_stripe():
    fake = FakeStripe(seed=4).start()
    fake.hang_seconds = 1.5
    yield fake
    fake.stop()


@pytest.fixture
def retrying(fake_stripe):
    """Stripe configured as in production: the SDK retries twice."""
    with override_settings(
        PAYDESK=paydesk_settings(fake_stripe, MAX_NETWORK_RETRIES=2, TIMEOUT=TIMEOUT)
    ):
        yield get_payment_provider("stripe")


def _request(key: str, amount: str = "20.00") -> PaymentRequest:
    return PaymentRequest(
        payment_id=f"pay_{key}",
        amount=Money(amount, "USD"),
        idempotency_key=f"paydesk:pay_{key}:attempt-1:create",
        payment_method_token="pm_card_visa",
    )


FLAKY = [
    ("500",),
    ("429",),
    ("reset",),
    ("reset_after",),
    ("timeout",),
    ("500", "429"),
    ("reset", "timeout"),
    ("reset_after", "500"),
]


@pytest.mark.parametrize("faults", FLAKY, ids="+".join)
def test_a_retried_charge_is_one_charge(retrying, fake_stripe, faults):
    fake_stripe.fail_next(*faults, method="POST", path="/v1/payment_intents")
    result = retrying.create_payment(_request("flaky"))
    assert result.status == ProviderStatus.CAPTURED
    attempts = fake_stripe.posts("/v1/payment_intents")
    assert [a.fault for a in attempts] == [*faults, None]
    assert {a.idempotency_key for a in attempts} == {"paydesk:pay_flaky:attempt-1:create"}
    assert len(fake_stripe.movements_for("pay_flaky", "charge")) == 1
    assert len(fake_stripe.intents) == 1
    assert fake_stripe.charged("pay_flaky") == 2000


@pytest.mark.parametrize("faults", FLAKY, ids="+".join)
def test_a_retried_refund_is_one_refund(retrying, fake_stripe, faults):
    paid = retrying.create_payment(_request("refundflaky"))
    fake_stripe.fail_next(*faults, method="POST", path="/v1/refunds")
    refund = retrying.create_refund(
        RefundRequest(
            refund_id="ref_flaky",
            payment_id="pay_refundflaky",
            provider_payment_id=paid.provider_payment_id,
            amount=Money("7.00", "USD"),
            idempotency_key="paydesk:ref_flaky:refund",
        )
    )
    assert refund.status == "completed"
    attempts = fake_stripe.posts("/v1/refunds")
    assert len(attempts) == len(faults) + 1
    assert {a.idempotency_key for a in attempts} == {"paydesk:ref_flaky:refund"}
    assert len(fake_stripe.refunds) == 1
    assert fake_stripe.refunded("pay_refundflaky") == 700


def test_a_refusal_is_not_retried(retrying, fake_stripe):
    bad = PaymentRequest(
        payment_id="pay_bad",
        amount=Money("20.00", "USD"),
        idempotency_key="paydesk:pay_bad:attempt-1:create",
        payment_method_token="pm_nope",
    )
    with pytest.raises(ProviderRequestError):
        retrying.create_payment(bad)
    declined = retrying.create_payment(
        PaymentRequest(
            payment_id="pay_declined",
            amount=Money("20.00", "USD"),
            idempotency_key="paydesk:pay_declined:attempt-1:create",
            payment_method_token="pm_card_chargeDeclined",
        )
    )
    assert declined.status == ProviderStatus.FAILED
    assert len(fake_stripe.posts("/v1/payment_intents")) == 2  # one each, no retries


# -- through paydesk's services --------------------------------------------------------------


@pytest.mark.django_db
def test_lost_answers_leave_the_payment_processing_until_sync(retrying, fake_stripe):
    # Stripe charged the card, but none of the three answers arrived in time.
    fake_stripe.fail_next(
        "timeout", "timeout", "timeout", method="POST", path="/v1/payment_intents"
    )
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    with pytest.raises(ProviderUnavailable) as caught:
        services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    assert caught.value.retryable
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert payment.provider_payment_id == ""
    assert fake_stripe.charged(payment.pk) == 2000  # it did happen

    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"
    assert payment.captured_amount == Money("20.00", "USD").amount
    assert payment.provider_payment_id == fake_stripe.intents_for(payment.pk)[0]["id"]
    assert len(fake_stripe.movements_for(payment.pk, "charge")) == 1


@pytest.mark.django_db
def test_a_charge_that_never_arrived_fails_on_sync_and_is_retried_once(retrying, fake_stripe):
    fake_stripe.fail_next("500", "500", "500", method="POST", path="/v1/payment_intents")
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert fake_stripe.intents == {}

    payment = services.sync_payment(payment=payment)
    assert payment.status == "failed"
    assert payment.failure_code == "provider_unavailable"
    payment = services.retry_payment(payment=payment, payment_method_token="pm_card_visa")
    assert payment.status == "completed"
    assert fake_stripe.charged(payment.pk) == 2000
    keys = {r.idempotency_key for r in fake_stripe.posts("/v1/payment_intents")}
    assert keys == {
        f"paydesk:{payment.pk}:attempt-1:create",
        f"paydesk:{payment.pk}:attempt-2:create",
    }


@pytest.mark.django_db
def test_a_refund_whose_answer_was_lost_is_sent_again_with_the_same_key(retrying, fake_stripe):
    payment = services.create_payment(amount="30.00", currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    fake_stripe.fail_next("timeout", "reset", "reset_after", method="POST", path="/v1/refunds")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="10.00", reason="requested_by_customer")
    refund = payment.refunds.get()
    assert refund.status == "pending"  # reserved, outcome unknown
    assert fake_stripe.refunded(payment.pk) == 1000

    refund = services.process_refund(refund=refund)
    assert refund.status == "completed"
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Money("10.00", "USD").amount
    assert len(fake_stripe.refunds) == 1
    assert {r.idempotency_key for r in fake_stripe.posts("/v1/refunds")} == {
        f"paydesk:{refund.pk}:refund"
    }


@pytest.mark.django_db
def test_a_share_of_failing_calls_never_double_charges(fake_stripe):
    fake_stripe.fault_rate = 0.3
    fake_stripe.fault_kinds = ("500", "429", "reset", "reset_after")
    with override_settings(
        PAYDESK=paydesk_settings(fake_stripe, MAX_NETWORK_RETRIES=2, TIMEOUT=TIMEOUT)
    ):
        payments = []
        for index in range(12):
            payment = services.create_payment(
                amount=f"{10 + index}.00", currency="USD", provider="stripe"
            )
            try:
                payment = services.process_payment(
                    payment=payment, payment_method_token="pm_card_visa"
                )
                if payment.status == "completed":
                    services.create_refund(payment=payment, amount="1.00")
            except ProviderUnavailable:
                pass
            payments.append(payment)
        fake_stripe.fault_rate = 0
        for payment in payments:
            payment.refresh_from_db()
            if payment.status == "processing":
                payment = services.sync_payment(payment=payment)
            for refund in payment.refunds.filter(status="pending"):
                services.process_refund(refund=refund)
            payment.refresh_from_db()
            charges = fake_stripe.movements_for(payment.pk, "charge")
            assert len(charges) <= 1
            assert payment.captured_amount * 100 == fake_stripe.charged(payment.pk)
            assert payment.refunded_amount * 100 == fake_stripe.refunded(payment.pk)
            assert len(fake_stripe.movements_for(payment.pk, "refund")) <= 1
    assert any(r.fault for r in fake_stripe.requests)  # the share did fail some calls
