"""The sandbox provider end to end: every test card, capture, cancel, refunds, sync,
idempotency, and the hosted checkout / 3-D Secure pages driven through Django's test client.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from paydesk import services
from paydesk.exceptions import (
    InvalidTransition,
    ProviderRequestError,
    RefundExceedsCaptured,
)
from paydesk.models import Payment, Refund, SandboxCharge, TransactionLog
from paydesk.money import Money
from paydesk.providers.registry import get_payment_provider
from paydesk.providers.sandbox import SandboxProvider
from paydesk.testing import assert_ledger_kinds
from paydesk.types import PaymentRequest, ProviderStatus, RefundRequest, StatusRequest

pytestmark = pytest.mark.django_db

D = Decimal


def _sandbox() -> SandboxProvider:
    provider = get_payment_provider("sandbox")
    assert isinstance(provider, SandboxProvider)
    return provider


def _pay(card: str | None = None, *, amount: str = "100.00", **kwargs) -> Payment:
    """Create and process a sandbox payment with the token for ``card`` (or no token)."""
    payment = services.create_payment(amount=amount, currency="USD", **kwargs)
    token = SandboxProvider.token_for_card(card) if card else None
    return services.process_payment(payment=payment, payment_method_token=token)


def _charge(payment: Payment) -> SandboxCharge:
    return SandboxCharge.objects.get(payment_ref=payment.pk)


# -- test cards through the services ---------------------------------------------------


@pytest.mark.parametrize(
    ("card", "token"),
    [
        ("4242424242424242", "pm_sandbox_visa"),
        ("5555 5555 5555 4444", "pm_sandbox_mastercard"),
    ],
)
def test_succeeding_cards_complete_the_payment(card, token):
    assert SandboxProvider.token_for_card(card) == token
    payment = _pay(card, amount="25.00")

    assert payment.status == "completed"
    assert payment.authorized_amount == D("25.00")
    assert payment.captured_amount == D("25.00")
    assert payment.failure_code == ""
    assert payment.next_action is None
    assert payment.processed_at is not None
    assert payment.lease_operation == ""
    charge = _charge(payment)
    assert payment.provider_payment_id == charge.id
    assert (charge.status, charge.captured_amount) == ("captured", D("25.00"))
    assert_ledger_kinds(payment, ["payment_created", "submitted", "authorization", "capture"])
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.captured_amount) == ("completed", D("25.00"))


@pytest.mark.parametrize(
    ("card", "code", "message"),
    [
        ("4000000000000002", "card_declined", "Your card was declined."),
        ("4000000000009995", "insufficient_funds", "Your card has insufficient funds."),
        ("4000000000000069", "expired_card", "Your card has expired."),
        ("4000000000000127", "incorrect_cvc", "Your card's security code is incorrect."),
        ("4000000000000119", "processing_error", "An error occurred while processing your card"),
    ],
)
def test_failing_cards_fail_the_payment_with_their_code(card, code, message):
    payment = _pay(card)

    assert payment.status == "failed"
    assert payment.failure_code == code
    assert message in payment.failure_message
    assert payment.captured_amount == D(0)
    assert payment.authorized_amount == D(0)
    assert payment.lease_operation == ""
    assert _charge(payment).status == "failed"
    assert_ledger_kinds(payment, ["payment_created", "submitted", "payment_failed"])
    assert Payment.objects.get(pk=payment.pk).status == "failed"


def test_3ds_card_requires_a_redirect_to_the_challenge_page():
    payment = _pay("4000002500003155")

    charge = _charge(payment)
    assert payment.status == "requires_action"
    assert payment.next_action == {
        "type": "redirect",
        "redirect_url": f"/paydesk/sandbox/3ds/{charge.id}/",
    }
    assert payment.captured_amount == D(0)
    assert charge.status == "requires_action"
    assert charge.scenario == "3ds"
    assert_ledger_kinds(payment, ["payment_created", "submitted", "requires_action"])


def test_token_for_an_unknown_card_number_is_refused():
    with pytest.raises(ProviderRequestError) as info:
        SandboxProvider.token_for_card("4111111111111111")
    assert info.value.code == "incorrect_number"


def test_unknown_token_is_reraised_and_fails_the_payment():
    payment = services.create_payment(amount="10.00", currency="USD")

    with pytest.raises(ProviderRequestError) as info:
        services.process_payment(payment=payment, payment_method_token="pm_sandbox_nope")

    assert info.value.code == "invalid_request"
    assert info.value.provider == "sandbox"
    assert "pm_sandbox_visa" in info.value.message  # tells the caller which tokens exist
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "invalid_request"
    assert payment.lease_operation == ""
    assert not SandboxCharge.objects.filter(payment_ref=payment.pk).exists()
    assert_ledger_kinds(payment, ["payment_created", "submitted", "payment_failed"])


# -- manual capture and cancel ---------------------------------------------------------


def test_manual_capture_in_full():
    payment = _pay("4242424242424242", capture=False)

    assert payment.status == "authorized"
    assert (payment.authorized_amount, payment.captured_amount) == (D("100.00"), D(0))
    assert (_charge(payment).status, _charge(payment).captured_amount) == ("authorized", D(0))

    payment = services.capture_payment(payment=payment)

    assert payment.status == "completed"
    assert payment.captured_amount == D("100.00")
    assert (_charge(payment).status, _charge(payment).captured_amount) == (
        "captured",
        D("100.00"),
    )
    assert_ledger_kinds(payment, ["payment_created", "submitted", "authorization", "capture"])
    with pytest.raises(InvalidTransition):
        services.capture_payment(payment=payment)


def test_manual_capture_in_part_limits_what_can_be_refunded():
    payment = _pay("4242424242424242", capture=False)

    payment = services.capture_payment(payment=payment, amount="60.00")

    assert payment.status == "completed"
    assert payment.authorized_amount == D("100.00")
    assert payment.captured_amount == D("60.00")
    assert _charge(payment).captured_amount == D("60.00")
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment, amount="60.01")
    refund = services.create_refund(payment=payment)  # the rest: all that was captured
    assert (refund.status, refund.amount) == ("completed", D("60.00"))
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", D("60.00"))


def test_cancel_an_authorized_payment_voids_it_at_the_sandbox():
    payment = _pay("4242424242424242", capture=False)

    payment = services.cancel_payment(payment=payment, reason="customer changed their mind")

    assert payment.status == "cancelled"
    assert payment.cancelled_at is not None
    assert payment.captured_amount == D(0)
    assert _charge(payment).status == "cancelled"
    assert_ledger_kinds(payment, ["payment_created", "submitted", "authorization", "cancellation"])
    with pytest.raises(InvalidTransition):
        services.capture_payment(payment=payment)


# -- refunds ---------------------------------------------------------------------------


def test_multiple_partial_refunds_until_fully_refunded():
    payment = _pay("4242424242424242")

    first = services.create_refund(payment=payment, amount="30.00", reason="one")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", D("30.00"))
    second = services.create_refund(payment=payment, amount="30.00", reason="two")
    third = services.create_refund(payment=payment, amount="40.00", reason="three")

    for refund in (first, second, third):
        assert refund.status == "completed"
        assert refund.provider_refund_id.startswith("re_sb_")
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert (payment.refunded_amount, payment.refund_reserved_amount) == (D("100.00"), D(0))
    charge = _charge(payment)
    assert charge.refunded_amount == D("100.00")
    assert len(charge.refunds) == 3
    assert sorted(D(r["amount"]) for r in charge.refunds.values()) == [
        D("30.00"),
        D("30.00"),
        D("40.00"),
    ]
    assert Refund.objects.filter(payment=payment).count() == 3


def test_refunding_a_fully_refunded_payment_says_nothing_is_left():
    # The same answer as when the other refunds are still in flight (see test_concurrency):
    # a caller racing a full refund must not get a different error depending on timing.
    payment = _pay("4242424242424242", amount="20.00")
    services.create_refund(payment=payment, amount="20.00")
    ledger_before = TransactionLog.objects.filter(payment=payment).count()

    with pytest.raises(RefundExceedsCaptured) as info:
        services.create_refund(payment=payment, amount="0.01")

    assert info.value.code == "refund_exceeds_captured"
    assert info.value.http_status == 409
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment)  # "all that is left" when nothing is left
    assert Refund.objects.filter(payment=payment).count() == 1
    assert TransactionLog.objects.filter(payment=payment).count() == ledger_before


def test_sandbox_refuses_to_over_refund_at_its_own_side():
    payment = _pay("4242424242424242", amount="50.00")
    sandbox = _sandbox()

    def request(key: str, amount: str) -> RefundRequest:
        return RefundRequest(
            refund_id=key,
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            amount=Money(amount, "USD"),
            idempotency_key=key,
        )

    first = sandbox.create_refund(request("k1", "40.00"))
    assert first.status == "completed"
    # The same key again is the same refund, not a second one.
    assert sandbox.create_refund(request("k1", "40.00")).provider_refund_id == (
        first.provider_refund_id
    )
    with pytest.raises(ProviderRequestError) as info:
        sandbox.create_refund(request("k2", "10.01"))
    assert info.value.provider_code == "charge_already_refunded"
    assert sandbox.create_refund(request("k3", "10.00")).status == "completed"
    with pytest.raises(ProviderRequestError):
        sandbox.create_refund(request("k4", "0.01"))
    assert _charge(payment).refunded_amount == D("50.00")


def test_sandbox_refuses_to_refund_an_uncaptured_charge():
    payment = _pay("4242424242424242", capture=False)
    with pytest.raises(ProviderRequestError) as info:
        _sandbox().create_refund(
            RefundRequest(
                refund_id="r",
                payment_id=payment.pk,
                provider_payment_id=payment.provider_payment_id,
                amount=Money("1.00", "USD"),
                idempotency_key="r",
            )
        )
    assert info.value.provider_code == "charge_not_captured"


# -- sync ------------------------------------------------------------------------------


def test_sync_after_the_hosted_page_completed():
    payment = _pay(None, amount="12.00")
    assert payment.status == "requires_action"

    status = _sandbox().complete_checkout(
        provider_payment_id=payment.provider_payment_id, card_number="4242 4242 4242 4242"
    )
    assert status == "captured"
    # paydesk does not know yet: only the remote side changed.
    assert Payment.objects.get(pk=payment.pk).status == "requires_action"

    payment = services.sync_payment(payment=payment)

    assert payment.status == "completed"
    assert payment.captured_amount == D("12.00")
    assert payment.next_action is None
    # A second sync records nothing new.
    before = TransactionLog.objects.filter(payment=payment).count()
    services.sync_payment(payment=payment)
    assert TransactionLog.objects.filter(payment=payment).count() == before


def test_sync_of_a_submission_that_never_reached_the_sandbox(monkeypatch):
    sandbox = _sandbox()
    payment = services.create_payment(amount="20.00", currency="USD")

    def died_mid_call(request):
        raise RuntimeError("worker killed before the request left")

    monkeypatch.setattr(sandbox, "create_payment", died_mid_call)
    with pytest.raises(RuntimeError):
        services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    monkeypatch.undo()

    payment.refresh_from_db()
    assert payment.status == "processing"
    assert payment.lease_operation == "process"  # nobody released it: the process died
    assert not SandboxCharge.objects.filter(payment_ref=payment.pk).exists()

    # While the lease runs, somebody may still be waiting for the answer: sync leaves it.
    assert services.sync_payment(payment=payment).status == "processing"

    Payment.objects.filter(pk=payment.pk).update(lease_until=timezone.now() - dt.timedelta(1))
    payment = services.sync_payment(payment=payment)

    assert payment.status == "failed"
    assert payment.failure_code == "provider_unavailable"
    assert Payment.objects.get(pk=payment.pk).status == "failed"

    # The failure is recoverable: a retry is a new attempt with a new key.
    payment = services.retry_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "completed"
    assert payment.attempt == 2
    assert SandboxCharge.objects.filter(payment_ref=payment.pk).count() == 1


def test_sync_of_a_pending_payment_asks_nothing():
    payment = services.create_payment(amount="5.00", currency="USD")
    assert services.sync_payment(payment=payment).status == "pending"


# -- idempotency at the provider -------------------------------------------------------


def test_create_payment_twice_with_the_same_key_is_one_charge():
    sandbox = _sandbox()
    request = PaymentRequest(
        payment_id="pay_idem",
        amount=Money("33.00", "USD"),
        idempotency_key="paydesk:pay_idem:attempt-1:create",
        payment_method_token="pm_sandbox_visa",
    )

    first = sandbox.create_payment(request)
    second = sandbox.create_payment(request)

    assert first.status == second.status == ProviderStatus.CAPTURED
    assert first.provider_payment_id == second.provider_payment_id
    assert SandboxCharge.objects.filter(idempotency_key=request.idempotency_key).count() == 1
    assert SandboxCharge.objects.filter(payment_ref="pay_idem").count() == 1
    status = sandbox.get_payment_status(
        StatusRequest(
            payment_id="pay_idem",
            provider_payment_id="",
            idempotency_key=request.idempotency_key,
            amount=request.amount,
        )
    )
    assert status.provider_payment_id == first.provider_payment_id


# -- hosted pages through the test client ----------------------------------------------


def _hosted(**kwargs) -> tuple[Payment, str]:
    payment = _pay(None, amount="42.50", **kwargs)
    assert payment.status == "requires_action"
    url = f"/paydesk/sandbox/checkout/{payment.provider_payment_id}/"
    assert payment.next_action == {"type": "redirect", "redirect_url": url}
    return payment, url


def test_hosted_checkout_renders_the_form(client):
    _payment, url = _hosted()

    response = client.get(url)

    assert response.status_code == 200
    body = response.content.decode()
    assert "$42.50" in body
    assert "4242 4242 4242 4242" in body
    assert "4000 0025 0000 3155" in body
    assert 'name="card_number"' in body


def test_hosted_checkout_rejects_a_card_that_is_not_a_test_card(client):
    payment, url = _hosted()
    ledger_before = TransactionLog.objects.filter(payment=payment).count()

    response = client.post(url, {"card_number": "4111 1111 1111 1111"})

    assert response.status_code == 400
    assert "That is not a sandbox test card." in response.content.decode()
    assert _charge(payment).status == "requires_action"
    assert Payment.objects.get(pk=payment.pk).status == "requires_action"
    assert TransactionLog.objects.filter(payment=payment).count() == ledger_before


def test_hosted_checkout_success_returns_to_the_status_page(
    client, recorder, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment, url = _hosted()

        response = client.post(url, {"card_number": "4242 4242 4242 4242"})
        return_path = reverse("paydesk:payment-return", args=[payment.pk])
        assert return_path == f"/paydesk/return/{payment.pk}/"
        assert response.status_code == 302
        assert response["Location"] == return_path

        page = client.get(return_path)

    assert page.status_code == 200
    assert "Payment completed" in page.content.decode()
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == D("42.50")
    assert payment.next_action is None

    # Coming back to the checkout page after it completed goes to the return URL.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.get(url)
        assert again.status_code == 302
        assert again["Location"] == return_path
        assert client.get(return_path).status_code == 200  # reloading the return page

    assert recorder.names.count("payment_confirmed") == 1
    assert recorder.names == [
        "payment_created",
        "payment_requires_action",
        "payment_registered",  # the hosted page is a redirect next action
        "payment_confirmed",
    ]


@pytest.mark.parametrize("return_url", ["/shop/thanks/", "http://testserver/shop/thanks/"])
def test_return_page_redirects_to_a_same_host_return_url(client, return_url):
    payment, url = _hosted(return_url=return_url)

    client.post(url, {"card_number": "4242424242424242"})
    response = client.get(f"/paydesk/return/{payment.pk}/")

    assert response.status_code == 302
    assert response["Location"] == return_url
    assert Payment.objects.get(pk=payment.pk).status == "completed"


@pytest.mark.parametrize(
    "return_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]
)
def test_return_page_never_redirects_off_site(client, return_url):
    payment, url = _hosted(return_url=return_url)

    client.post(url, {"card_number": "4242424242424242"})
    response = client.get(f"/paydesk/return/{payment.pk}/")

    assert response.status_code == 200
    assert "evil.example" not in response.get("Location", "")
    assert "Payment completed" in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).status == "completed"


def test_hosted_3ds_card_pass(client, recorder, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment, url = _hosted()
        challenge = f"/paydesk/sandbox/3ds/{payment.provider_payment_id}/"

        response = client.post(url, {"card_number": "4000 0025 0000 3155"})
        assert response.status_code == 302
        assert response["Location"] == challenge
        page = client.get(challenge)
        assert page.status_code == 200
        assert "$42.50" in page.content.decode()
        assert Payment.objects.get(pk=payment.pk).status == "requires_action"

        response = client.post(challenge, {"outcome": "pass"})
        assert response.status_code == 302
        assert response["Location"] == f"/paydesk/return/{payment.pk}/"
        assert client.get(response["Location"]).status_code == 200

        # The challenge page, once done, only sends the browser back.
        assert client.get(challenge)["Location"] == f"/paydesk/return/{payment.pk}/"

    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == D("42.50")
    assert recorder.names.count("payment_confirmed") == 1
    assert "payment_failed" not in recorder.names


def test_hosted_3ds_card_fail(client, recorder, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment, url = _hosted()
        challenge = f"/paydesk/sandbox/3ds/{payment.provider_payment_id}/"
        assert client.post(url, {"card_number": "4000002500003155"})["Location"] == challenge

        response = client.post(challenge, {"outcome": "fail"})
        page = client.get(response["Location"])

    assert page.status_code == 200
    assert "Payment failed" in page.content.decode()
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "authentication_required"
    assert payment.captured_amount == D(0)
    assert "payment_confirmed" not in recorder.names
    assert recorder.names.count("payment_failed") == 1


def test_token_3ds_payment_passes_the_challenge_page(client):
    payment = _pay("4000002500003155")
    challenge = payment.next_action["redirect_url"]

    response = client.post(challenge, {"outcome": "pass"})
    client.get(response["Location"])

    assert Payment.objects.get(pk=payment.pk).status == "completed"


@pytest.mark.parametrize(
    "path",
    ["/paydesk/sandbox/checkout/nope/", "/paydesk/sandbox/3ds/nope/", "/paydesk/return/nope/"],
)
def test_unknown_ids_are_404(client, path):
    assert client.get(path).status_code == 404
    assert client.post(path, {"card_number": "4242424242424242"}).status_code == 404
