"""PayPal through paydesk's services and views, with faults injected into the fake API.

The claim under test: whatever fails between paydesk and PayPal (timeouts before or after
PayPal acted, connection resets, 500s, 429s), a retried call sends the same
``PayPal-Request-Id``, the fake's own books show no double capture or refund, and every
payment ends in a state that agrees with PayPal's.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import PaymentValidationError, ProviderUnavailable
from paydesk.models import Payment, TransactionLog
from paydesk.providers import get_payment_provider
from paydesk.states import LedgerKind

from .fakes.paypal_api import (
    REDIRECT,
    VAULT_APPROVED,
    FakePayPal,
    PayPalWebhookKit,
    paydesk_settings,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> FakePayPal:
    return FakePayPal()


@pytest.fixture
def kit(fake: FakePayPal) -> PayPalWebhookKit:
    return PayPalWebhookKit(fake=fake)


@pytest.fixture
def paypal(fake: FakePayPal, kit: PayPalWebhookKit):
    with override_settings(PAYDESK=paydesk_settings(fake, kit, options={"MAX_RETRIES": 0})):
        yield get_payment_provider("paypal")


def new_payment(amount: str = "20.00", currency: str = "USD", **kwargs) -> Payment:
    return services.create_payment(amount=amount, currency=currency, provider="paypal", **kwargs)


def kinds(payment: Payment) -> list[str]:
    return list(
        TransactionLog.objects.filter(payment=payment).order_by("pk").values_list("kind", flat=True)
    )


# -- the approval redirect, end to end --------------------------------------------------------


def test_redirect_flow_through_the_return_view(client, paypal, fake) -> None:
    payment = new_payment(return_url="/orders/42/")
    payment = services.process_payment(payment=payment)  # no token: the approval redirect
    assert payment.status == "requires_action"
    redirect = payment.next_action["redirect_url"]
    assert redirect.startswith("https://www.sandbox.paypal.com/checkoutnow?token=")
    back = fake.approve(redirect)  # the buyer approves on PayPal's page
    response = client.get(back.removeprefix("https://shop.example.com"))
    assert response.status_code == 302
    assert response["Location"] == "/orders/42/"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("20.00")
    assert fake.count("capture", status="COMPLETED") == 1
    # Coming back again (reload) changes nothing.
    client.get(back.removeprefix("https://shop.example.com"))
    assert fake.count("capture") == 1
    assert kinds(payment).count(LedgerKind.CAPTURE) == 1


def test_buyer_cancels_at_paypal(client, paypal, fake) -> None:
    payment = services.process_payment(payment=new_payment())
    order = fake.order(payment.provider_payment_id)
    cancel_url = "/paydesk/return/{}/?paypal=cancel&token={}".format(payment.pk, order["id"])
    response = client.get(cancel_url)
    assert response.status_code == 200  # no return_url: paydesk's status page
    payment.refresh_from_db()
    assert payment.status == "requires_action"  # the approval link still works
    payment = services.cancel_payment(payment=payment, reason="buyer left")
    assert payment.status == "cancelled"
    assert fake.calls("POST", "/void$") == []


def test_declined_at_capture_then_retried_with_a_new_order(client, paypal, fake) -> None:
    payment = services.process_payment(payment=new_payment(), payment_method_token=REDIRECT)
    first_order = payment.provider_payment_id
    back = fake.approve(first_order, "instrument_declined")
    client.get(back.removeprefix("https://shop.example.com"))
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"
    payment = services.retry_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    assert payment.status == "completed"
    assert payment.provider_payment_id != first_order
    assert fake.count("capture") == 1


def test_capture_pending_then_completed_by_sync(paypal, fake) -> None:
    payment = services.process_payment(payment=new_payment(), payment_method_token=REDIRECT)
    fake.approve(payment.provider_payment_id, "capture_pending")
    payment = services.confirm_payment(payment=payment)
    assert payment.status == "processing"
    [capture] = fake.captures.values()
    capture["status"] = "COMPLETED"  # PayPal's review passed
    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"


def test_authorize_capture_part_and_refund(paypal, fake) -> None:
    payment = services.process_payment(
        payment=new_payment(capture=False), payment_method_token=VAULT_APPROVED
    )
    assert payment.status == "authorized"
    payment = services.capture_payment(payment=payment, amount="12.50")
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("12.50")
    refund = services.create_refund(payment=payment, amount="2.50")
    assert refund.status == "completed"
    refund = services.create_refund(payment=payment)
    assert refund.amount == Decimal("10.00")
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert fake.count("refund") == 2


def test_cancel_an_authorized_payment(paypal, fake) -> None:
    payment = services.process_payment(
        payment=new_payment(capture=False), payment_method_token=VAULT_APPROVED
    )
    payment = services.cancel_payment(payment=payment)
    assert payment.status == "cancelled"
    assert fake.count("void") == 1


@pytest.mark.parametrize(
    ("amount", "currency", "refund", "wire_amount", "wire_refund"),
    [
        ("500", "JPY", "120", "500", "120"),
        ("1.234", "KWD", "0.117", "1.234", "0.117"),
        ("19.99", "USD", "4.99", "19.99", "4.99"),
    ],
)
def test_exact_amounts_through_the_services(
    paypal, fake, amount, currency, refund, wire_amount, wire_refund
) -> None:
    payment = services.process_payment(
        payment=new_payment(amount, currency), payment_method_token=VAULT_APPROVED
    )
    assert payment.status == "completed"
    services.create_refund(payment=payment, amount=refund)
    [create] = fake.calls("POST", "/v2/checkout/orders$")
    [refund_call] = fake.calls("POST", "/refund$")
    assert create.body["purchase_units"][0]["amount"]["value"] == wire_amount
    assert refund_call.body["amount"] == {"currency_code": currency, "value": wire_refund}


def test_fractional_forint_is_refused_before_a_payment_exists(paypal, fake) -> None:
    with pytest.raises(PaymentValidationError) as refused:
        new_payment("1500.50", "HUF")
    assert refused.value.code == "amount_precision"
    assert Payment.objects.count() == 0
    assert fake.requests == []


# -- faults -----------------------------------------------------------------------------------


def test_a_refund_that_timed_out_after_paypal_acted_is_sent_again_once(paypal, fake) -> None:
    payment = services.process_payment(payment=new_payment(), payment_method_token=VAULT_APPROVED)
    fake.inject("timeout_after", path="/refund$")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="5.00")
    refund = payment.refunds.get()
    assert refund.status == "pending"  # outcome unknown: the reservation is kept
    assert fake.count("refund") == 1
    refund = services.process_refund(refund=refund)
    assert refund.status == "completed"
    assert fake.count("refund") == 1  # PayPal replayed the first answer
    ids = {c.headers["paypal-request-id"] for c in fake.calls("POST", "/refund$")}
    assert ids == {f"paydesk:{refund.pk}:refund"}
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("5.00")
    assert payment.status == "partially_refunded"


def test_a_capture_that_timed_out_is_confirmed_again_once(client, paypal, fake) -> None:
    payment = services.process_payment(payment=new_payment(), payment_method_token=REDIRECT)
    back = fake.approve(payment.provider_payment_id)
    fake.inject("timeout_after", path="/capture$")
    response = client.get(back.removeprefix("https://shop.example.com"))
    assert response.status_code == 200  # the status page shows the error
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert fake.count("capture") == 1  # PayPal captured; paydesk did not hear it
    client.get(back.removeprefix("https://shop.example.com"))  # the buyer reloads
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert fake.count("capture") == 1


def test_a_partial_capture_retried_after_a_connection_reset(paypal, fake) -> None:
    payment = services.process_payment(
        payment=new_payment(capture=False), payment_method_token=VAULT_APPROVED
    )
    fake.inject("reset_after", path="/authorizations/.+/capture$")
    with pytest.raises(ProviderUnavailable):
        services.capture_payment(payment=payment, amount="7.00")
    payment.refresh_from_db()
    assert payment.status == "authorized"
    payment = services.capture_payment(payment=payment, amount="7.00")
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("7.00")
    assert fake.count("capture") == 1


def test_a_create_that_failed_before_paypal_saw_it(paypal, fake) -> None:
    fake.inject("reset", path="/v2/checkout/orders$")
    payment = new_payment()
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert fake.orders == {}


def test_a_charge_whose_answer_was_lost_is_found_by_sync(paypal, fake) -> None:
    # A vaulted buyer is charged at creation; the answer is lost. PayPal has no lookup by
    # request id, so sync sends the same create again with the same PayPal-Request-Id.
    fake.inject("timeout_after", path="/v2/checkout/orders$")
    payment = new_payment()
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert payment.provider_payment_id == ""
    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"
    assert payment.provider_payment_id == next(iter(fake.orders))
    assert len(fake.orders) == 1
    assert fake.count("capture") == 1
    calls = fake.calls("POST", "/v2/checkout/orders$")
    assert [c.replayed for c in calls] == [False, True]
    assert len({c.headers["paypal-request-id"] for c in calls}) == 1


def test_an_unknown_outcome_from_another_process_is_not_found(paypal, fake) -> None:
    fake.inject("timeout", path="/v2/checkout/orders$")
    payment = new_payment()
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token=REDIRECT)
    from paydesk.providers.registry import providers

    providers.reset()  # as if sync ran in another process: nothing remembered
    payment = services.sync_payment(payment=payment)
    assert payment.status == "failed"  # the lease is released: paydesk may retry
    payment = services.retry_payment(payment=payment)
    assert payment.status == "requires_action"
    assert len(fake.orders) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_faults_leave_every_payment_consistent(seed, kit) -> None:
    """A third of the calls fail in every way; retries inside the adapter and by the caller
    (same keys) settle everything, with exactly one capture and one refund per payment."""
    fake = FakePayPal(seed=seed)
    kit.serve(fake)
    options = {"MAX_RETRIES": 2}
    with override_settings(PAYDESK=paydesk_settings(fake, kit, options=options)):
        fake.fail_share(
            0.34, ("timeout", "timeout_after", "reset", "reset_after", "500", "503", "429")
        )
        payments = []
        for _ in range(12):
            payment = new_payment("10.00")
            for _attempt in range(10):
                try:
                    if payment.status == "pending":
                        payment = services.process_payment(
                            payment=payment, payment_method_token=VAULT_APPROVED
                        )
                    elif payment.status == "processing":
                        payment = services.sync_payment(payment=payment)
                        if payment.status == "failed":
                            payment = services.retry_payment(payment=payment)
                    if payment.status == "completed":
                        break
                except ProviderUnavailable:
                    payment.refresh_from_db()
            payments.append(payment)
        for payment in payments:
            if payment.status != "completed":
                continue
            refund = None
            for _attempt in range(10):
                try:
                    refund = (
                        services.create_refund(payment=payment, amount="4.00")
                        if refund is None
                        else services.process_refund(refund=refund)
                    )
                    if refund.status == "completed":
                        break
                except ProviderUnavailable:
                    refund = payment.refunds.order_by("created_at").last()
        fake.heal()
        assert any(c.fault for c in fake.requests), "the share should have injected faults"
        for payment in payments:
            payment = (
                services.sync_payment(payment=payment) if payment.status != "pending" else payment
            )
            payment.refresh_from_db()
            orders = [o for o in fake.orders.values() if o.unit["custom_id"] == payment.pk]
            captured = [
                c
                for o in orders
                for c in o.captures
                if fake.captures[c]["status"] in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")
            ]
            refunded = sum(
                (
                    Decimal(fake.refunds[r]["amount"]["value"])
                    for c in captured
                    for r in fake.captures[c]["_refunds"]
                ),
                Decimal(0),
            )
            # paydesk's books agree with PayPal's, and nothing happened twice.
            assert payment.captured_amount == Decimal("10.00") * len(captured)
            assert payment.refunded_amount == refunded
            assert len(captured) <= 1
            assert refunded in (Decimal(0), Decimal("4.00"))
        assert sum(p.status in ("completed", "partially_refunded") for p in payments) >= 8


def test_fractional_forint_capture_and_refund_are_refused_before_anything_is_reserved(
    paypal, fake
) -> None:
    authorized = services.process_payment(
        payment=new_payment("1000", "HUF", capture=False), payment_method_token=VAULT_APPROVED
    )
    calls = len(fake.requests)
    with pytest.raises(PaymentValidationError) as refused:
        services.capture_payment(payment=authorized, amount="500.50")
    assert refused.value.code == "amount_precision"
    assert len(fake.requests) == calls
    payment = services.capture_payment(payment=authorized, amount="500")  # no lease left over
    assert payment.captured_amount == Decimal("500")

    with pytest.raises(PaymentValidationError) as refused:
        services.create_refund(payment=payment, amount="100.50")
    assert refused.value.code == "amount_precision"
    assert payment.refunds.count() == 0
    payment.refresh_from_db()
    assert payment.refund_reserved_amount == 0
    assert services.create_refund(payment=payment, amount="100").status == "completed"
