"""Refund services: reserve, call the provider, record.

What these tests prove: full, partial and repeated partial refunds add up to at most what was
captured; an in-flight refund reserves its amount so nothing can be refunded twice; every
refusal (over-refund, wrong state, bad amount, missing provider capability, the project's
refund policy) writes nothing and calls no provider; a provider failure releases the
reservation; a retryable provider error keeps it and a retry sends the same idempotency key;
a refund the provider leaves pending stays reserved until its outcome is recorded.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import (
    ConfigurationError,
    InvalidTransition,
    NotSupported,
    PaymentInProgress,
    PaymentValidationError,
    ProviderUnavailable,
    RefundExceedsCaptured,
    RefundNotAllowed,
)
from paydesk.models import Payment, Refund, TransactionLog
from paydesk.money import Money
from paydesk.policy import RefundPolicy
from paydesk.providers import get_payment_provider
from paydesk.services.refunds import record_refund_result
from paydesk.states import LedgerKind, PaymentStatus, RefundStatus
from paydesk.testing import MockPaymentProvider
from paydesk.types import Capability, ProviderFailure, RefundRequest, RefundResult

pytestmark = pytest.mark.django_db

SANDBOX = {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}}
MOCK = {"BACKEND": "paydesk.testing.MockPaymentProvider", "OPTIONS": {}}


class NoRefundProvider(MockPaymentProvider):
    capabilities = frozenset(Capability) - {
        Capability.REFUND,
        Capability.PARTIAL_REFUND,
        Capability.MULTIPLE_REFUNDS,
    }


class WholeRefundProvider(MockPaymentProvider):
    capabilities = frozenset(Capability) - {Capability.PARTIAL_REFUND}


class SingleRefundProvider(MockPaymentProvider):
    capabilities = frozenset(Capability) - {Capability.MULTIPLE_REFUNDS}


class ClosedRefundPolicy(RefundPolicy):
    """Refuses every refund and remembers what it was asked."""

    asked: list = []

    def check_refund(self, *, payment, amount, user):
        ClosedRefundPolicy.asked.append((payment.pk, amount, user))
        raise RefundNotAllowed("The event has started; refunds are closed.")


class CappedRefundPolicy(RefundPolicy):
    """Allows refunds of at most 10 units (the policy can only refuse more)."""

    def check_refund(self, *, payment, amount, user):
        if amount.amount > 10:
            raise RefundNotAllowed(f"Refunds above 10 {amount.currency} need a manager.")


@contextmanager
def configured(alias="mock", backend="paydesk.testing.MockPaymentProvider", **extra):
    config = {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {"sandbox": SANDBOX, alias: {"BACKEND": backend}},
        **extra,
    }
    with override_settings(PAYDESK=config):
        yield get_payment_provider(alias)


def counts():
    return (Payment.objects.count(), TransactionLog.objects.count(), Refund.objects.count())


def kinds(payment):
    return list(
        TransactionLog.objects.filter(payment=payment).order_by("id").values_list("kind", flat=True)
    )


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def paid(amount="100.00", currency="USD", provider="mock", **kwargs):
    payment = services.create_payment(amount=amount, currency=currency, provider=provider, **kwargs)
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == PaymentStatus.COMPLETED
    return payment


# -- the happy paths -------------------------------------------------------------------------


def test_full_refund_by_default(mock, user):
    payment = paid(user=user)
    refund = services.create_refund(payment=payment, reason="requested_by_customer", user=user)
    assert isinstance(refund, Refund)
    assert refund.pk.startswith("re_")
    assert refund.status == RefundStatus.COMPLETED
    refund = fresh(refund)
    assert refund.status == RefundStatus.COMPLETED
    assert refund.amount == Decimal("100.00")
    assert refund.currency == "USD"
    assert refund.reason == "requested_by_customer"
    assert refund.processed_by == user
    assert refund.processed_at is not None
    assert refund.provider_refund_id.startswith("mock_re_")
    assert refund.failure_code == ""

    payment = fresh(payment)
    assert payment.status == PaymentStatus.REFUNDED
    assert payment.refunded_amount == Decimal("100.00")
    assert payment.refund_reserved_amount == 0
    assert payment.refundable_amount == 0
    assert kinds(payment)[-2:] == ["refund_requested", "refund_completed"]
    requested = payment.ledger.get(kind="refund_requested")
    assert (requested.ref, requested.refund_id, requested.amount) == (
        refund.pk,
        refund.pk,
        Decimal("100.00"),
    )

    [(_name, request)] = [c for c in mock.calls if c[0] == "create_refund"]
    assert isinstance(request, RefundRequest)
    assert request.refund_id == refund.pk
    assert request.payment_id == payment.pk
    assert request.provider_payment_id == payment.provider_payment_id
    assert request.amount == Money("100.00", "USD")
    assert request.idempotency_key == f"paydesk:{refund.pk}:refund"
    assert request.reason == "requested_by_customer"


def test_partial_refund(mock):
    payment = paid()
    refund = services.create_refund(payment=payment, amount="30.00")
    assert refund.status == RefundStatus.COMPLETED
    assert fresh(refund).amount == Decimal("30.00")
    payment = fresh(payment)
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert payment.refunded_amount == Decimal("30.00")
    assert payment.refundable_amount == Decimal("70.00")


def test_multiple_partial_refunds_up_to_what_was_captured(mock):
    payment = paid()
    for amount in ("30.00", "30.00", "39.99"):
        assert services.create_refund(payment=payment, amount=amount).status == "completed"
    assert fresh(payment).status == PaymentStatus.PARTIALLY_REFUNDED
    last = services.create_refund(payment=payment)  # the rest: 0.01
    assert fresh(last).amount == Decimal("0.01")
    payment = fresh(payment)
    assert payment.status == PaymentStatus.REFUNDED
    assert payment.refunded_amount == Decimal("100.00")
    assert payment.refundable_amount == 0
    assert Refund.objects.filter(payment=payment, status="completed").count() == 4
    assert kinds(payment).count("refund_completed") == 4


def test_refunds_with_the_sandbox():
    payment = paid(amount="50.00", provider="sandbox")
    first = services.create_refund(payment=payment, amount="20.00")
    second = services.create_refund(payment=payment)
    assert (first.status, second.status) == ("completed", "completed")
    assert fresh(second).amount == Decimal("30.00")
    assert first.provider_refund_id.startswith("re_sb_")
    payment = fresh(payment)
    assert payment.status == PaymentStatus.REFUNDED
    assert payment.refunded_amount == Decimal("50.00")


def test_refund_of_a_partially_captured_payment_is_bounded_by_the_capture():
    payment = services.create_payment(amount="100.00", currency="USD", capture=False)
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    payment = services.capture_payment(payment=payment, amount="40.00")
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment, amount="40.01")
    assert services.create_refund(payment=payment).status == "completed"
    payment = fresh(payment)
    assert payment.refunded_amount == Decimal("40.00")
    assert payment.status == PaymentStatus.REFUNDED


def test_jpy_refund(mock):
    payment = paid(amount="1000", currency="JPY")
    refund = services.create_refund(payment=payment, amount="300")
    assert fresh(refund).amount == Decimal("300")
    assert fresh(payment).refundable_amount == Decimal("700")


# -- refusals write nothing -----------------------------------------------------------------


def test_over_refund_is_refused_and_names_the_amounts(mock):
    payment = paid()
    services.create_refund(payment=payment, amount="30.00")
    before = counts()
    with pytest.raises(RefundExceedsCaptured) as info:
        services.create_refund(payment=payment, amount="80.00")
    assert info.value.code == "refund_exceeds_captured"
    assert info.value.http_status == 409
    message = info.value.message
    assert "80.00 USD" in message
    assert "100.00" in message  # captured
    assert "30.00" in message  # already refunded
    assert "at most 70.00" in message
    assert counts() == before
    assert mock.get_call_count("create_refund") == 1


def test_refund_messages_use_the_currency_precision(mock):
    payment = paid()
    with pytest.raises(RefundExceedsCaptured) as info:
        services.create_refund(payment=payment, amount="150.00")
    message = info.value.message
    # The amounts come from the database (four decimals); show them as USD does.
    assert re.search(r"\b150\.00 USD\b", message), message
    assert re.search(r"\b100\.00 USD was captured", message), message
    assert re.search(r"\b0\.00 USD is refunded", message), message
    assert re.search(r"\bat most 100\.00 USD can\b", message), message


def test_in_flight_refunds_are_reserved(mock):
    payment = paid()
    reserved = services.create_refund(payment=payment, amount="60.00", process=False)
    assert reserved.status == RefundStatus.PENDING
    payment = fresh(payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.refund_reserved_amount == Decimal("60.00")
    assert payment.refundable_amount == Decimal("40.00")
    assert mock.get_call_count("create_refund") == 0

    before = counts()
    with pytest.raises(RefundExceedsCaptured, match=r"60\.00"):
        services.create_refund(payment=payment, amount="50.00")
    assert counts() == before
    assert services.create_refund(payment=payment, amount="40.00").status == "completed"

    refund = services.process_refund(refund=reserved)
    assert refund.status == RefundStatus.COMPLETED
    payment = fresh(payment)
    assert payment.status == PaymentStatus.REFUNDED
    assert payment.refund_reserved_amount == 0
    assert payment.refunded_amount == Decimal("100.00")


@pytest.mark.parametrize("state", ["pending", "authorized", "failed", "cancelled"])
def test_refund_of_a_payment_without_captured_money_is_refused(mock, state):
    payment = services.create_payment(
        amount="100.00", currency="USD", provider="mock", capture=state != "authorized"
    )
    if state == "authorized":
        payment = services.process_payment(payment=payment)
    elif state == "failed":
        mock.set_should_fail(True)
        payment = services.process_payment(payment=payment)
    elif state == "cancelled":
        payment = services.cancel_payment(payment=payment)
    assert fresh(payment).status == state
    before = counts()
    with pytest.raises(InvalidTransition) as info:
        services.create_refund(payment=payment, amount="10.00")
    assert state in info.value.message
    assert "only completed or partially refunded" in info.value.message
    assert counts() == before
    assert mock.get_call_count("create_refund") == 0


def test_refund_of_a_fully_refunded_payment_is_refused(mock):
    # The same answer a caller racing in-flight refunds for the last of the money gets.
    payment = paid()
    services.create_refund(payment=payment)
    before = counts()
    with pytest.raises(RefundExceedsCaptured) as info:
        services.create_refund(payment=payment, amount="1.00")
    assert "100.00 USD is refunded" in info.value.message
    assert "at most 0.00 USD" in info.value.message
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment)
    assert counts() == before
    assert mock.get_call_count("create_refund") == 1


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00", Decimal("-0.01")])
def test_non_positive_refund_amount_is_refused(mock, amount):
    payment = paid()
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_refund(payment=payment, amount=amount)
    assert info.value.field == "amount"
    assert "greater than zero" in info.value.message
    assert counts() == before
    assert mock.get_call_count("create_refund") == 0


def test_refund_amount_with_too_many_decimals_is_refused(mock):
    payment = paid()
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_refund(payment=payment, amount="10.001")
    assert info.value.code == "amount_precision"
    assert info.value.field == "amount"
    with pytest.raises(PaymentValidationError) as info:
        services.create_refund(payment=payment, amount=Money("10.00", "EUR"))
    assert info.value.field == "currency"
    assert counts() == before


def test_provider_without_refunds():
    with configured("norefund", f"{__name__}.NoRefundProvider") as provider:
        payment = paid(provider="norefund")
        before = counts()
        with pytest.raises(NotSupported) as info:
            services.create_refund(payment=payment)
        assert info.value.code == "not_supported"
        assert "'norefund'" in info.value.message
        assert counts() == before
        assert provider.get_call_count("create_refund") == 0


def test_provider_without_partial_refunds():
    with configured("whole", f"{__name__}.WholeRefundProvider") as provider:
        payment = paid(provider="whole")
        before = counts()
        with pytest.raises(NotSupported, match="whole payments"):
            services.create_refund(payment=payment, amount="30.00")
        assert counts() == before
        assert provider.get_call_count("create_refund") == 0
        assert services.create_refund(payment=payment).status == "completed"


def test_provider_without_multiple_refunds():
    with configured("single", f"{__name__}.SingleRefundProvider") as provider:
        payment = paid(provider="single")
        # A refund that failed released its reservation, so it does not count as "one".
        provider.set_next_refund_result(
            RefundResult(status="failed", failure=ProviderFailure("declined", "No."))
        )
        assert services.create_refund(payment=payment, amount="30.00").status == "failed"
        assert services.create_refund(payment=payment, amount="30.00").status == "completed"
        before = counts()
        with pytest.raises(NotSupported, match="one refund per payment"):
            services.create_refund(payment=payment, amount="10.00")
        assert counts() == before
        assert provider.get_call_count("create_refund") == 2


def test_refund_policy_refusal_writes_nothing(user):
    ClosedRefundPolicy.asked = []
    policy = f"{__name__}.ClosedRefundPolicy"
    with configured(REFUND_POLICY=policy) as provider:
        payment = paid(user=user)
        before = counts()
        with pytest.raises(RefundNotAllowed) as info:
            services.create_refund(payment=payment, amount="25.00", user=user)
        assert info.value.code == "refund_not_allowed"
        assert "refunds are closed" in info.value.message
        with pytest.raises(RefundNotAllowed):
            services.create_refund(payment=payment)
        assert counts() == before
        assert provider.get_call_count("create_refund") == 0
        payment = fresh(payment)
        assert payment.refund_reserved_amount == 0
        assert payment.status == PaymentStatus.COMPLETED
    # The policy saw the payment, the amount as Money (the default: all that is left) and
    # the user asking.
    assert ClosedRefundPolicy.asked == [
        (payment.pk, Money("25.00", "USD"), user),
        (payment.pk, Money("100.00", "USD"), None),
    ]


def test_refund_policy_can_refuse_only_part(mock):
    with configured(REFUND_POLICY=f"{__name__}.CappedRefundPolicy"):
        payment = paid()
        with pytest.raises(RefundNotAllowed, match="manager"):
            services.create_refund(payment=payment, amount="10.01")
        assert services.create_refund(payment=payment, amount="10.00").status == "completed"


def test_unimportable_refund_policy_is_a_configuration_error():
    with configured(REFUND_POLICY="tests.nowhere.Policy"):
        payment = paid()
        before = counts()
        with pytest.raises(ConfigurationError, match="REFUND_POLICY"):
            services.create_refund(payment=payment)
        assert counts() == before


# -- provider outcomes -----------------------------------------------------------------------


def test_provider_refund_failure_releases_the_reservation(
    mock, recorder, django_capture_on_commit_callbacks
):
    payment = paid()
    mock.set_next_refund_result(
        RefundResult(
            status="failed",
            provider_refund_id="mock_re_failed",
            failure=ProviderFailure(
                code="charge_disputed", message="The charge is disputed.", provider_code="x1"
            ),
            raw={"id": "mock_re_failed", "status": "failed"},
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.create_refund(payment=payment, amount="40.00")
    assert refund.status == RefundStatus.FAILED
    refund = fresh(refund)
    assert refund.status == RefundStatus.FAILED
    assert refund.failure_code == "charge_disputed"
    assert refund.failure_message == "The charge is disputed."
    assert refund.provider_refund_id == "mock_re_failed"
    assert refund.provider_response == {"id": "mock_re_failed", "status": "failed"}

    payment = fresh(payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.refund_reserved_amount == 0
    assert payment.refunded_amount == 0
    assert payment.refundable_amount == Decimal("100.00")
    assert kinds(payment)[-2:] == ["refund_requested", "refund_failed"]

    assert recorder.names == ["refund_failed"]
    _, sent = recorder.calls[0]
    assert sent["refund"].pk == refund.pk
    assert sent["error_code"] == "charge_disputed"
    assert sent["error_message"] == "The charge is disputed."

    # Refundable again, in full.
    assert services.create_refund(payment=payment).status == RefundStatus.COMPLETED
    assert fresh(payment).status == PaymentStatus.REFUNDED


def test_non_retryable_provider_error_fails_the_refund(mock):
    payment = paid()
    mock.set_exception("invalid_request", "Refund amount too large for this charge")
    refund = services.create_refund(payment=payment, amount="40.00")
    assert refund.status == RefundStatus.FAILED
    assert refund.failure_code == "invalid_request"
    assert "too large" in refund.failure_message
    assert fresh(payment).refund_reserved_amount == 0


def test_retryable_provider_error_keeps_the_reservation_and_retries_with_the_same_key(mock):
    payment = paid()
    mock.set_exception("provider_unavailable", "Gateway timeout")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="40.00")
    refund = Refund.objects.get(payment=payment)
    assert refund.status == RefundStatus.PENDING
    assert refund.failure_code == "provider_unavailable"
    payment = fresh(payment)
    assert payment.refund_reserved_amount == Decimal("40.00")
    assert payment.refundable_amount == Decimal("60.00")
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment, amount="60.01")

    refund = services.process_refund(refund=refund)
    assert refund.status == RefundStatus.COMPLETED
    assert refund.failure_code == ""
    assert refund.failure_message == ""
    first, second = [request for name, request in mock.calls if name == "create_refund"]
    assert first.idempotency_key == second.idempotency_key == f"paydesk:{refund.pk}:refund"
    assert first.amount == second.amount == Money("40.00", "USD")
    payment = fresh(payment)
    assert payment.refund_reserved_amount == 0
    assert payment.refunded_amount == Decimal("40.00")
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_process_refund_of_a_settled_refund_is_refused(mock, outcome):
    payment = paid()
    if outcome == "failed":
        mock.set_next_refund_result(RefundResult(status="failed"))
    refund = services.create_refund(payment=payment, amount="10.00")
    assert refund.status == outcome
    before = counts()
    with pytest.raises(InvalidTransition) as info:
        services.process_refund(refund=refund.pk)
    assert outcome in info.value.message
    assert "only pending refunds" in info.value.message
    assert counts() == before
    assert mock.get_call_count("create_refund") == 1


def test_refund_pending_at_the_provider_stays_reserved_until_recorded(mock):
    payment = paid()
    mock.set_next_refund_result(RefundResult(status="pending", provider_refund_id="mock_re_slow"))
    refund = services.create_refund(payment=payment, amount="25.00")
    assert refund.status == RefundStatus.PROCESSING
    refund = fresh(refund)
    assert refund.status == RefundStatus.PROCESSING
    assert refund.provider_refund_id == "mock_re_slow"
    payment = fresh(payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.refund_reserved_amount == Decimal("25.00")
    assert payment.refundable_amount == Decimal("75.00")

    with pytest.raises(PaymentInProgress):
        services.process_refund(refund=refund)
    assert mock.get_call_count("create_refund") == 1

    # The provider's webhook (or a sync) reports the outcome.
    refund = record_refund_result(
        refund=refund, result=RefundResult(status="completed", provider_refund_id="mock_re_slow")
    )
    assert refund.status == RefundStatus.COMPLETED
    payment = fresh(payment)
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert payment.refund_reserved_amount == 0
    assert payment.refunded_amount == Decimal("25.00")


def test_a_late_failure_report_does_not_undo_a_completed_refund(mock, recorder):
    payment = paid()
    refund = services.create_refund(payment=payment, amount="25.00")
    refund = record_refund_result(
        refund=refund,
        result=RefundResult(status="failed", failure=ProviderFailure("x", "late failure")),
    )
    assert refund.status == RefundStatus.COMPLETED
    assert fresh(refund).status == RefundStatus.COMPLETED
    assert fresh(refund).failure_code == ""
    payment = fresh(payment)
    assert payment.refunded_amount == Decimal("25.00")
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED


def test_process_refund_accepts_the_refund_or_its_id(mock):
    payment = paid()
    a = services.create_refund(payment=payment, amount="10.00", process=False)
    b = services.create_refund(payment=payment, amount="10.00", process=False)
    assert services.process_refund(refund=a).status == "completed"
    assert services.process_refund(refund=b.pk).status == "completed"
    assert LedgerKind.REFUND_COMPLETED in kinds(payment)
