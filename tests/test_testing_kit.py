"""The public testing kit (``paydesk.testing``) that host projects use in their own tests.

What these tests prove: ``MockPaymentProvider`` answers as documented (success by default,
queued results in order, ``set_should_fail``, one-shot ``set_exception``, call counting,
same idempotency key -> same answer) and drives the real services; ``mock_provider``
configures it and cleans up; the factories go through the services; every ``assert_*``
helper passes on the right state and raises ``AssertionError`` with a useful message on the
wrong one; ``PaymentTestCase`` works as the base of a real unittest-style test class.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from paydesk import services
from paydesk import testing as kit
from paydesk.exceptions import (
    ConfigurationError,
    PaymentDeclined,
    ProviderAuthenticationError,
    ProviderUnavailable,
)
from paydesk.models import Payment, Refund
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.states import PaymentStatus
from paydesk.types import (
    CancelRequest,
    Capability,
    Customer,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
)

pytestmark = pytest.mark.django_db


def request(key="k1", *, capture=True, amount="10.00"):
    return PaymentRequest(
        payment_id="pay_x", amount=Money(amount, "USD"), idempotency_key=key, capture=capture
    )


# -- MockPaymentProvider on its own ----------------------------------------------------------


def test_mock_defaults():
    mock = kit.MockPaymentProvider(alias="m")
    assert mock.alias == "m"
    assert mock.capabilities == frozenset(Capability) - {Capability.WEBHOOKS}  # nothing to verify
    captured = mock.create_payment(request("a"))
    assert captured.status == ProviderStatus.CAPTURED
    assert captured.amount_captured == Money("10.00", "USD")
    assert captured.provider_payment_id.startswith("mock_")
    authorized = mock.create_payment(request("b", capture=False))
    assert authorized.status == ProviderStatus.AUTHORIZED
    assert authorized.amount_captured is None
    refund = mock.create_refund(
        RefundRequest(
            refund_id="re_x",
            payment_id="pay_x",
            provider_payment_id=captured.provider_payment_id,
            amount=Money("1.00", "USD"),
            idempotency_key="r1",
        )
    )
    assert refund.status == "completed"
    assert refund.provider_refund_id.startswith("mock_re_")


def test_mock_same_key_same_answer():
    mock = kit.MockPaymentProvider()
    first = mock.create_payment(request("same"))
    mock.set_should_fail(True)
    again = mock.create_payment(request("same"))
    assert again == first
    assert mock.get_call_count("create_payment") == 2
    assert mock.create_payment(request("other")).status == ProviderStatus.FAILED


def test_mock_queued_results_are_used_in_order():
    mock = kit.MockPaymentProvider()
    scripted = PaymentResult(status=ProviderStatus.PROCESSING, provider_payment_id="mock_fixed")
    mock.set_next_result("requires_action")
    mock.set_next_result(scripted)
    mock.set_next_result(ProviderStatus.FAILED)
    assert mock.create_payment(request("1")).status == ProviderStatus.REQUIRES_ACTION
    assert mock.create_payment(request("2")) is scripted
    failed = mock.create_payment(request("3"))
    assert failed.status == ProviderStatus.FAILED
    assert failed.failure is not None
    assert mock.create_payment(request("4")).status == ProviderStatus.CAPTURED
    with pytest.raises(ValueError, match="no_such_status"):
        mock.set_next_result("no_such_status")


def test_mock_should_fail_until_turned_off():
    mock = kit.MockPaymentProvider()
    mock.set_should_fail(True, message="Stolen card", code="stolen_card")
    for key in ("1", "2"):
        result = mock.create_payment(request(key))
        assert result.status == ProviderStatus.FAILED
        assert result.failure == ProviderFailure(code="stolen_card", message="Stolen card")
    mock.set_should_fail(False)
    assert mock.create_payment(request("3")).status == ProviderStatus.CAPTURED


def test_mock_exceptions_are_one_shot():
    mock = kit.MockPaymentProvider(alias="mk")
    mock.set_exception("card_declined", "Declined")
    with pytest.raises(PaymentDeclined) as info:
        mock.create_payment(request("1"))
    assert info.value.provider == "mk"
    assert info.value.code == "card_declined"
    assert info.value.message == "Declined"
    mock.set_exception("rate_limited")
    with pytest.raises(ProviderUnavailable) as info:
        mock.create_payment(request("1"))
    assert info.value.retryable is True
    custom = ProviderAuthenticationError("bad key", provider="mk")
    mock.set_exception(custom)
    with pytest.raises(ProviderAuthenticationError) as info:
        mock.create_payment(request("1"))
    assert info.value is custom
    # The failed calls were recorded but remembered no answer for the key.
    assert mock.create_payment(request("1")).status == ProviderStatus.CAPTURED
    assert mock.get_call_count("create_payment") == 4


def test_mock_call_log_and_counts():
    mock = kit.MockPaymentProvider()
    assert mock.get_call_count() == 0
    first = request("1")
    mock.create_payment(first)
    mock.create_payment(request("2"))
    mock.get_payment_status(
        StatusRequest(
            payment_id="p", provider_payment_id="", idempotency_key="1", amount=Money("1", "USD")
        )
    )
    assert mock.get_call_count() == 3
    assert mock.get_call_count("create_payment") == 2
    assert mock.get_call_count("get_payment_status") == 1
    assert mock.get_call_count("create_refund") == 0
    assert mock.calls[0] == ("create_payment", first)
    mock.reset()
    assert mock.calls == []
    assert mock.get_call_count() == 0


def test_mock_status_of_a_known_payment_is_its_create_answer():
    mock = kit.MockPaymentProvider()
    created = mock.create_payment(request("k"))
    status = mock.get_payment_status(
        StatusRequest(
            payment_id="pay_x",
            provider_payment_id=created.provider_payment_id,
            idempotency_key="k",
            amount=Money("10.00", "USD"),
        )
    )
    assert status == created
    unknown = mock.get_payment_status(
        StatusRequest(
            payment_id="pay_y",
            provider_payment_id="",
            idempotency_key="?",
            amount=Money("1", "USD"),
        )
    )
    assert unknown.status == ProviderStatus.NOT_FOUND


def test_mock_can_cancel():
    mock = kit.MockPaymentProvider()
    result = mock.cancel_payment(
        CancelRequest(payment_id="pay_x", provider_payment_id="mock_1", idempotency_key="c")
    )
    assert result.status == ProviderStatus.CANCELLED
    assert result.provider_payment_id == "mock_1"


def test_mock_scripted_refund_results():
    mock = kit.MockPaymentProvider()
    failed = RefundResult(status="failed", failure=ProviderFailure("x", "y"))
    mock.set_next_refund_result(failed)
    req = RefundRequest(
        refund_id="re",
        payment_id="p",
        provider_payment_id="m",
        amount=Money("1.00", "USD"),
        idempotency_key="r",
    )
    assert mock.create_refund(req) is failed
    assert mock.create_refund(req).status == "completed"


# -- the mock through the services ----------------------------------------------------------


def test_mock_provider_context_configures_and_cleans_up():
    with kit.mock_provider("scripted", default=True) as mock:
        assert isinstance(mock, kit.MockPaymentProvider)
        assert get_payment_provider("scripted") is mock
        assert get_payment_provider() is mock
        # The sandbox configured in settings is still there.
        assert get_payment_provider("sandbox").alias == "sandbox"
        payment = services.create_payment(amount="5.00", currency="USD")
        assert payment.provider == "scripted"
    with pytest.raises(ConfigurationError, match="scripted"):
        get_payment_provider("scripted")
    assert get_payment_provider().alias == "sandbox"


def test_a_queued_result_settles_a_processing_payment_on_sync(mock):
    # "Queue the answer to the next payment call": a status query is a payment call, so a
    # test can script a payment that the provider finishes later (processing -> captured).
    mock.set_next_result(ProviderStatus.PROCESSING)
    payment = services.process_payment(
        payment=services.create_payment(amount="5.00", provider="mock")
    )
    assert payment.status == PaymentStatus.PROCESSING
    mock.set_next_result(ProviderStatus.CAPTURED)
    payment = services.sync_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    # And the queued answer was consumed, not left behind for an unrelated later call.
    other = services.process_payment(
        payment=services.create_payment(amount="1.00", provider="mock")
    )
    assert other.status == PaymentStatus.COMPLETED


# -- factories ------------------------------------------------------------------------------


def test_create_test_payment_defaults_to_a_pending_sandbox_payment():
    payment = kit.create_test_payment()
    assert payment.status == PaymentStatus.PENDING
    assert payment.provider == "sandbox"
    assert payment.amount == Decimal("100.00")
    assert payment.currency == "USD"
    assert payment.ledger.count() == 1


def test_create_test_payment_processes_with_the_sandbox_visa():
    payment = kit.create_test_payment(amount="12.34", process=True, reference="order-9")
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("12.34")
    assert payment.payment_method_token == "pm_sandbox_visa"
    assert Payment.objects.get(pk=payment.pk).reference == "order-9"


def test_create_test_payment_with_a_token_and_the_mock(mock, user):
    payment = kit.create_test_payment(
        provider="mock", process=True, payment_method_token="tok_x", user=user, currency="EUR"
    )
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.user == user
    [(_, req)] = mock.calls
    assert req.payment_method_token == "tok_x"
    assert req.amount == Money("100.00", "EUR")


def test_create_test_buyer_info():
    buyer = kit.create_test_buyer_info()
    assert isinstance(buyer, Customer)
    assert buyer.email == "buyer@example.com"
    assert buyer.name
    assert buyer.ip_address == "127.0.0.1"
    assert buyer.country == "US"
    custom = kit.create_test_buyer_info(email="x@example.org", country="TR")
    assert (custom.email, custom.country, custom.name) == ("x@example.org", "TR", buyer.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom.email = "changed@example.com"
    with pytest.raises(TypeError):
        kit.create_test_buyer_info(shoe_size=42)


# -- assertions ----------------------------------------------------------------------------


def test_assert_payment_success(mock):
    completed = kit.create_test_payment(provider="mock", process=True)
    kit.assert_payment_success(completed)
    kit.assert_payment_success(completed, status="completed")
    with pytest.raises(AssertionError, match="authorized"):
        kit.assert_payment_success(completed, status="authorized")

    authorized = kit.create_test_payment(provider="mock", process=True, capture=False)
    kit.assert_payment_success(authorized)

    mock.set_should_fail(True, message="Nope", code="expired_card")
    failed = kit.create_test_payment(provider="mock", process=True)
    with pytest.raises(AssertionError) as info:
        kit.assert_payment_success(failed)
    assert "failed" in str(info.value)
    assert "expired_card" in str(info.value)

    with pytest.raises(AssertionError, match="pending"):
        kit.assert_payment_success(kit.create_test_payment(provider="mock"))


def test_assertions_read_the_database_not_the_object(mock):
    payment = kit.create_test_payment(provider="mock")
    stale = Payment.objects.get(pk=payment.pk)
    services.process_payment(payment=payment)
    assert stale.status == "pending"
    kit.assert_payment_success(stale)


def test_assert_payment_failed(mock):
    mock.set_should_fail(True, code="insufficient_funds")
    failed = kit.create_test_payment(provider="mock", process=True)
    kit.assert_payment_failed(failed)
    kit.assert_payment_failed(failed, code="insufficient_funds")
    with pytest.raises(AssertionError, match="card_declined"):
        kit.assert_payment_failed(failed, code="card_declined")
    mock.set_should_fail(False)
    completed = kit.create_test_payment(provider="mock", process=True)
    with pytest.raises(AssertionError, match="completed"):
        kit.assert_payment_failed(completed)


def test_assert_refund_success(mock):
    payment = kit.create_test_payment(provider="mock", process=True)
    refund = services.create_refund(payment=payment, amount="10.00")
    kit.assert_refund_success(refund)
    mock.set_next_refund_result(
        RefundResult(status="failed", failure=ProviderFailure("declined", "Refund refused"))
    )
    failed = services.create_refund(payment=payment, amount="10.00")
    with pytest.raises(AssertionError) as info:
        kit.assert_refund_success(failed)
    assert "failed" in str(info.value)
    assert "Refund refused" in str(info.value)
    pending = services.create_refund(payment=payment, amount="1.00", process=False)
    with pytest.raises(AssertionError, match="pending"):
        kit.assert_refund_success(Refund.objects.get(pk=pending.pk))


def test_assert_ledger_kinds(mock):
    payment = kit.create_test_payment(provider="mock", process=True)
    kit.assert_ledger_kinds(payment, ["payment_created", "submitted", "authorization", "capture"])
    with pytest.raises(AssertionError, match="capture"):
        kit.assert_ledger_kinds(payment, ["payment_created", "submitted", "authorization"])
    with pytest.raises(AssertionError):
        kit.assert_ledger_kinds(
            payment, ["payment_created", "authorization", "submitted", "capture"]
        )


def test_signal_recorder(mock, django_capture_on_commit_callbacks):
    with kit.SignalRecorder() as rec, django_capture_on_commit_callbacks(execute=True):
        payment = kit.create_test_payment(provider="mock", process=True)
    assert rec.names == ["payment_created", "payment_confirmed"]
    name, kwargs = rec.calls[1]
    assert name == "payment_confirmed"
    assert kwargs["payment"].pk == payment.pk
    # Disconnected on exit.
    with django_capture_on_commit_callbacks(execute=True):
        kit.create_test_payment(provider="mock")
    assert len(rec.calls) == 2


# -- PaymentTestCase ----------------------------------------------------------------------


class CheckoutTests(kit.PaymentTestCase):
    """How a host project uses the kit: a plain unittest-style Django test case."""

    def test_order_is_paid(self):
        payment = self.create_payment(amount="25.00", process=True)
        kit.assert_payment_success(payment)
        assert isinstance(self.provider, kit.MockPaymentProvider)
        assert payment.provider == "mock"
        assert self.provider.get_call_count("create_payment") == 1
        assert payment.captured_amount == Decimal("25.00")

    def test_mock_is_the_default_provider(self):
        assert get_payment_provider() is self.provider
        payment = self.create_payment()
        assert payment.status == PaymentStatus.PENDING
        assert self.provider.get_call_count() == 0

    def test_declines_can_be_scripted(self):
        self.provider.set_should_fail(True, code="card_declined")
        payment = self.create_payment(process=True)
        kit.assert_payment_failed(payment, code="card_declined")

    def test_signals_are_sent_on_commit(self):
        with kit.SignalRecorder() as rec:
            self.create_payment(process=True)
        assert rec.names == ["payment_created", "payment_confirmed"]

    def test_each_test_gets_a_fresh_mock(self):
        # Nothing from the other tests' calls or scripts is left over.
        assert self.provider.calls == []
        assert self.create_payment(process=True).status == PaymentStatus.COMPLETED


class JpyCheckoutTests(kit.PaymentTestCase):
    provider_alias = "mock_jp"

    def test_alias_can_be_changed(self):
        payment = self.create_payment(amount="500", currency="JPY", process=True)
        assert payment.provider == "mock_jp"
        assert self.provider.alias == "mock_jp"
        kit.assert_payment_success(payment, status="completed")
