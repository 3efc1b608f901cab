"""Payment services: create, process, confirm, capture, cancel, retry, sync.

What these tests prove:

* ``create_payment`` refuses invalid input with the right exception, ``code``, ``field`` and a
  message that says what to do, and writes *nothing* when it refuses; the processing fee is
  exact; an idempotency key (scoped per user) returns the first payment for the same request
  and refuses a different one; a payment links to a host object through a generic relation;
* ``process_payment`` against the mock provider and the sandbox: success, manual capture,
  3-D Secure next actions, declines, provider errors (retryable: re-raised, outcome left
  open, settled by ``sync_payment``; non-retryable: payment failed and re-raised; declines:
  payment failed, not raised), double submission refused;
* idempotency keys sent to the provider are stable for a repeated step and new for a retry;
* ``retry_payment``, ``cancel_payment`` and ``sync_payment`` follow the lifecycle table.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from decimal import Decimal
from functools import partial

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import (
    ConfigurationError,
    InvalidTransition,
    NotSupported,
    PaymentDeclined,
    PaymentInProgress,
    PaymentMethodNotUsable,
    PaymentValidationError,
    ProviderAuthenticationError,
    ProviderRequestError,
    ProviderUnavailable,
)
from paydesk.models import Payment, PaymentMethod, Refund, TransactionLog
from paydesk.money import Money
from paydesk.providers import get_payment_provider, register_provider_class
from paydesk.states import LedgerKind, PaymentStatus
from paydesk.testing import MockPaymentProvider
from paydesk.types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    StatusRequest,
)

pytestmark = pytest.mark.django_db

SANDBOX = {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}}
MOCK = {"BACKEND": "paydesk.testing.MockPaymentProvider", "OPTIONS": {}}


class UsdOnlyProvider(MockPaymentProvider):
    supported_currencies = frozenset({"USD"})


class NoCaptureProvider(MockPaymentProvider):
    capabilities = frozenset(Capability) - {Capability.CAPTURE, Capability.PARTIAL_CAPTURE}


class FullCaptureOnlyProvider(MockPaymentProvider):
    capabilities = frozenset(Capability) - {Capability.PARTIAL_CAPTURE}


class NoSyncNoCancelProvider(MockPaymentProvider):
    capabilities = frozenset(Capability) - {Capability.SYNC, Capability.CANCEL}


register_provider_class("test-usd-only", UsdOnlyProvider)


@contextmanager
def providers_configured(**backends):
    """PAYDESK with the sandbox plus ``alias=BACKEND`` entries; yields the instances."""
    config = {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {"sandbox": SANDBOX, **{a: {"BACKEND": b} for a, b in backends.items()}},
    }
    with override_settings(PAYDESK=config):
        yield {alias: get_payment_provider(alias) for alias in backends}


def counts():
    return (Payment.objects.count(), TransactionLog.objects.count(), Refund.objects.count())


def kinds(payment):
    return list(
        TransactionLog.objects.filter(payment=payment).order_by("id").values_list("kind", flat=True)
    )


def calls(mock, method):
    return [request for name, request in mock.calls if name == method]


@pytest.fixture
def sandbox():
    return get_payment_provider("sandbox")


def _mock_payment(amount="100.00", **kwargs):
    kwargs.setdefault("currency", "USD")
    return services.create_payment(amount=amount, provider="mock", **kwargs)


# -- create_payment: validation writes nothing ---------------------------------------------


@pytest.mark.parametrize("amount", ["0", "0.00", "-1.00", Decimal("-0.01"), 0])
def test_create_refuses_non_positive_amounts(amount, recorder):
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount=amount, currency="USD")
    assert info.value.code == "invalid_request"
    assert info.value.field == "amount"
    assert "greater than zero" in info.value.message
    assert counts() == before
    assert recorder.calls == []


def test_create_refuses_a_float_amount():
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount=19.99, currency="USD")
    assert info.value.code == "invalid_request"
    assert info.value.field == "amount"
    assert "float" in info.value.message
    assert "Decimal" in info.value.message
    assert counts() == before


@pytest.mark.parametrize(
    ("amount", "currency"), [("19.999", "USD"), ("100.5", "JPY"), ("1.0001", "KWD")]
)
def test_create_refuses_more_decimals_than_the_currency_has(amount, currency):
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount=amount, currency=currency)
    assert info.value.code == "amount_precision"
    assert info.value.field == "amount"
    assert amount in info.value.message
    assert currency in info.value.message
    assert counts() == before


def test_create_refuses_an_unknown_currency():
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount="10.00", currency="XYZ")
    assert info.value.code == "unknown_currency"
    assert "XYZ" in info.value.message
    # The fault is in the currency, so that is the field an API client must be pointed at.
    assert info.value.field == "currency"
    assert info.value.as_dict()["field"] == "currency"
    assert counts() == before


def test_create_refuses_money_in_another_currency_than_given():
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount=Money("10.00", "EUR"), currency="USD")
    assert info.value.field == "currency"
    assert "EUR" in info.value.message
    assert counts() == before


def test_create_refuses_a_currency_the_provider_does_not_support(recorder):
    with providers_configured(usd="test-usd-only") as configured:
        assert isinstance(configured["usd"], UsdOnlyProvider)
        before = counts()
        with pytest.raises(PaymentValidationError) as info:
            services.create_payment(amount="10.00", currency="EUR", provider="usd")
        assert info.value.code == "currency_not_supported"
        assert info.value.field == "currency"
        assert "'usd'" in info.value.message
        assert "EUR" in info.value.message
        assert counts() == before
        assert recorder.calls == []
        # The same provider takes its own currency.
        assert services.create_payment(amount="10.00", currency="USD", provider="usd").pk


def test_create_refuses_an_unconfigured_provider():
    before = counts()
    with pytest.raises(ConfigurationError, match="nope"):
        services.create_payment(amount="10.00", currency="USD", provider="nope")
    assert counts() == before


def _method(user, *, provider="mock", token="pm_saved", **kwargs):
    return PaymentMethod.objects.create(
        user=user, provider=provider, provider_token=token, type="credit_card", **kwargs
    )


def test_create_refuses_an_inactive_payment_method(mock, user):
    method = _method(user, is_active=False)
    before = counts()
    with pytest.raises(PaymentMethodNotUsable) as info:
        _mock_payment(user=user, payment_method=method)
    assert info.value.code == "payment_method_not_usable"
    assert info.value.field == "payment_method"
    assert "deactivated" in info.value.message
    assert "another one" in info.value.message
    assert isinstance(info.value, PaymentValidationError)
    assert counts() == before


def test_create_refuses_another_users_payment_method(mock, user, other_user):
    method = _method(other_user)
    before = counts()
    with pytest.raises(PaymentMethodNotUsable) as info:
        _mock_payment(user=user, payment_method=method)
    assert info.value.code == "payment_method_not_usable"
    assert info.value.field == "payment_method"
    assert "another user" in info.value.message
    # Nor can an anonymous checkout borrow a saved method.
    with pytest.raises(PaymentMethodNotUsable):
        _mock_payment(payment_method=method)
    assert counts() == before


def test_create_refuses_a_payment_method_of_another_provider(mock, user):
    method = _method(user, provider="sandbox", token="pm_sandbox_visa")
    before = counts()
    with pytest.raises(PaymentMethodNotUsable) as info:
        _mock_payment(user=user, payment_method=method)
    assert info.value.code == "payment_method_not_usable"
    assert info.value.field == "payment_method"
    assert "'sandbox'" in info.value.message
    assert "'mock'" in info.value.message
    assert counts() == before


def test_create_manual_capture_needs_the_capture_capability():
    with providers_configured(nocap=f"{__name__}.NoCaptureProvider"):
        before = counts()
        with pytest.raises(NotSupported) as info:
            services.create_payment(amount="10.00", currency="USD", provider="nocap", capture=False)
        assert info.value.code == "not_supported"
        assert "capture=True" in info.value.message
        assert counts() == before
        assert services.create_payment(amount="10.00", currency="USD", provider="nocap").pk


# -- create_payment: what it writes ----------------------------------------------------------


def test_create_writes_a_pending_payment_and_one_ledger_entry(user, recorder):
    payment = services.create_payment(
        amount="19.99",
        currency="usd",
        user=user,
        reference="order-42",
        description="Two tickets",
        customer_email="buyer@example.com",
        metadata={"order": 42},
        return_url="https://shop.example/return",
    )
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.pk.startswith("pay_")
    assert len(payment.pk) > 20
    assert payment.status == PaymentStatus.PENDING
    assert payment.amount == Decimal("19.99")
    assert payment.currency == "USD"
    assert payment.money == Money("19.99", "USD")
    assert payment.provider == "sandbox"
    assert payment.user == user
    assert payment.reference == "order-42"
    assert payment.metadata == {"order": 42}
    assert payment.capture_method == "automatic"
    assert payment.attempt == 1
    assert payment.authorized_amount == payment.captured_amount == 0
    assert payment.processing_fee == 0
    assert payment.idempotency_key is None
    assert kinds(payment) == [LedgerKind.PAYMENT_CREATED]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(5, "USD", Decimal("5.00")), (Decimal("7.5"), "EUR", Decimal("7.50")), ("500", "JPY", 500)],
)
def test_create_accepts_ints_decimals_and_strings(amount, currency, expected):
    payment = services.create_payment(amount=amount, currency=currency)
    assert Payment.objects.get(pk=payment.pk).amount == expected


def test_processing_fee_is_exact():
    config = {"PROVIDERS": {"sandbox": SANDBOX}, "PROCESSING_FEE_RATE": "3"}
    with override_settings(PAYDESK=config):
        usd = services.create_payment(amount="19.99", currency="USD")
        jpy = services.create_payment(amount="1000", currency="JPY")
    for payment, fee in ((usd, Decimal("0.60")), (jpy, Decimal("30"))):
        assert isinstance(payment.processing_fee, Decimal)
        assert payment.processing_fee == fee
        stored = Payment.objects.get(pk=payment.pk).processing_fee
        assert isinstance(stored, Decimal)
        assert stored == fee
    # 3 % of 19.99 is 0.5997: rounded once, half-up, to the cent; never a float artefact.
    assert usd.processing_fee.as_tuple().exponent == -2


def test_processing_fee_defaults_to_zero():
    payment = services.create_payment(amount="19.99", currency="USD")
    assert payment.processing_fee == Decimal(0)


def test_idempotency_key_returns_the_first_payment(
    user, recorder, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.create_payment(
            amount="25.00", currency="USD", user=user, idempotency_key="checkout-1"
        )
        again = services.create_payment(
            amount="25.00", currency="USD", user=user, idempotency_key="checkout-1"
        )
    assert again.pk == first.pk
    assert Payment.objects.count() == 1
    assert TransactionLog.objects.count() == 1
    assert recorder.names == ["payment_created"]


@pytest.mark.parametrize(
    "changes",
    [{"amount": "26.00"}, {"currency": "EUR"}, {"provider": "mock"}],
    ids=["amount", "currency", "provider"],
)
def test_idempotency_key_reused_for_a_different_payment_is_refused(mock, user, changes):
    params = {"amount": "25.00", "currency": "USD", "provider": "sandbox"}
    first = services.create_payment(user=user, idempotency_key="checkout-1", **params)
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(user=user, idempotency_key="checkout-1", **{**params, **changes})
    assert info.value.code == "idempotency_key_reused"
    assert info.value.field == "idempotency_key"
    assert "new key" in info.value.message
    assert "USD" in info.value.message
    assert counts() == before
    assert Payment.objects.get().pk == first.pk


def test_idempotency_keys_are_scoped_per_user(user, other_user):
    mine = services.create_payment(amount="5.00", currency="USD", user=user, idempotency_key="k")
    theirs = services.create_payment(
        amount="5.00", currency="USD", user=other_user, idempotency_key="k"
    )
    anonymous = services.create_payment(amount="5.00", currency="USD", idempotency_key="k")
    assert len({mine.pk, theirs.pk, anonymous.pk}) == 3
    assert Payment.objects.count() == 3
    # And each owner's replay finds its own payment.
    assert (
        services.create_payment(amount="5.00", currency="USD", user=other_user, idempotency_key="k")
    ).pk == theirs.pk
    assert services.create_payment(amount="5.00", currency="USD", idempotency_key="k").pk == (
        anonymous.pk
    )


def test_content_object_links_through_the_generic_relation():
    group = Group.objects.create(name="Order #7")
    payment = services.create_payment(
        amount="10.00", currency="USD", content_object=group, reference="order-7"
    )
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.content_type == ContentType.objects.get_for_model(Group)
    assert payment.object_id == str(group.pk)
    assert payment.content_object == group
    found = Payment.objects.filter(
        content_type=ContentType.objects.get_for_model(group), object_id=str(group.pk)
    )
    assert list(found) == [payment]


def test_content_object_can_be_the_user(user):
    payment = services.create_payment(amount="10.00", currency="USD", content_object=user)
    assert Payment.objects.get(pk=payment.pk).content_object == user


def test_without_content_object_the_relation_is_empty():
    payment = Payment.objects.get(pk=services.create_payment(amount="1.00", currency="USD").pk)
    assert payment.content_type is None
    assert payment.object_id == ""
    assert payment.content_object is None


# -- process_payment with the mock provider --------------------------------------------------


def test_process_success_with_the_mock(mock, user):
    payment = _mock_payment(user=user, payment_method_token="tok_visa", description="Tickets")
    payment = services.process_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.authorized_amount == Decimal("100.00")
    assert payment.captured_amount == Decimal("100.00")
    assert payment.refundable_amount == Decimal("100.00")
    assert payment.provider_payment_id.startswith("mock_")
    assert payment.processed_at is not None
    assert payment.failure_code == ""
    assert payment.next_action is None
    assert payment.lease_operation == ""
    assert payment.lease_until is None
    assert kinds(payment) == ["payment_created", "submitted", "authorization", "capture"]
    fresh = Payment.objects.get(pk=payment.pk)
    assert fresh.status == PaymentStatus.COMPLETED
    assert fresh.captured_amount == Decimal("100.00")

    [request] = calls(mock, "create_payment")
    assert isinstance(request, PaymentRequest)
    assert request.payment_id == payment.pk
    assert request.amount == Money("100.00", "USD")
    assert request.capture is True
    assert request.attempt == 1
    assert request.payment_method_token == "tok_visa"
    assert request.idempotency_key == f"paydesk:{payment.pk}:attempt-1:create"
    assert request.customer.email == "alice@example.com"
    assert request.description == "Tickets"
    assert request.metadata["paydesk_payment_id"] == payment.pk
    assert mock.get_call_count() == 1


def test_process_uses_the_saved_method_token(mock, user):
    method = _method(user, token="pm_saved_card")
    payment = _mock_payment(user=user, payment_method=method)
    services.process_payment(payment=payment)
    assert calls(mock, "create_payment")[0].payment_method_token == "pm_saved_card"


def test_process_accepts_the_payment_id(mock):
    payment = _mock_payment()
    assert services.process_payment(payment=payment.pk).status == PaymentStatus.COMPLETED


def test_manual_capture_in_full(mock):
    payment = _mock_payment(capture=False)
    payment = services.process_payment(payment=payment, payment_method_token="tok")
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.authorized_amount == Decimal("100.00")
    assert payment.captured_amount == 0
    assert payment.refundable_amount == 0
    assert calls(mock, "create_payment")[0].capture is False

    payment = services.capture_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("100.00")
    [capture] = calls(mock, "capture_payment")
    assert isinstance(capture, CaptureRequest)
    assert capture.amount == Money("100.00", "USD")
    assert capture.provider_payment_id == payment.provider_payment_id
    assert capture.idempotency_key == f"paydesk:{payment.pk}:capture"
    assert kinds(payment) == ["payment_created", "submitted", "authorization", "capture"]


def test_manual_capture_in_part_with_the_sandbox(sandbox):
    payment = services.create_payment(amount="100.00", currency="USD", capture=False)
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == PaymentStatus.AUTHORIZED
    payment = services.capture_payment(payment=payment, amount="40.00")
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.authorized_amount == Decimal("100.00")
    assert payment.captured_amount == Decimal("40.00")
    assert payment.refundable_amount == Decimal("40.00")
    assert kinds(payment) == ["payment_created", "submitted", "authorization", "capture"]
    capture = payment.ledger.get(kind="capture")
    assert capture.amount == Decimal("40.00")


@pytest.mark.parametrize("amount", ["100.01", "150.00", "0", "-5.00"])
def test_capture_outside_the_authorized_amount_is_refused(mock, amount):
    payment = services.process_payment(payment=_mock_payment(capture=False))
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.capture_payment(payment=payment, amount=amount)
    assert info.value.field == "amount"
    assert "between 0" in info.value.message
    assert "100.00 USD" in info.value.message
    assert counts() == before
    assert mock.get_call_count("capture_payment") == 0
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.lease_operation == ""


def test_partial_capture_needs_the_capability():
    with providers_configured(full=f"{__name__}.FullCaptureOnlyProvider") as configured:
        payment = services.create_payment(
            amount="100.00", currency="USD", provider="full", capture=False
        )
        payment = services.process_payment(payment=payment)
        before = counts()
        with pytest.raises(NotSupported):
            services.capture_payment(payment=payment, amount="40.00")
        assert counts() == before
        assert configured["full"].get_call_count("capture_payment") == 0
        assert services.capture_payment(payment=payment).status == PaymentStatus.COMPLETED


@pytest.mark.parametrize("state", ["pending", "completed"])
def test_capture_of_a_payment_that_is_not_authorized_is_refused(mock, state):
    payment = _mock_payment()
    if state == "completed":
        payment = services.process_payment(payment=payment)
    before = counts()
    with pytest.raises(InvalidTransition) as info:
        services.capture_payment(payment=payment)
    assert info.value.code == "invalid_transition"
    assert state in info.value.message
    assert "only authorized payments" in info.value.message
    assert counts() == before
    assert mock.get_call_count("capture_payment") == 0


def test_capture_retried_after_a_timeout_sends_the_same_key(mock):
    payment = services.process_payment(payment=_mock_payment(capture=False))
    mock.set_exception("provider_unavailable", "timed out")
    with pytest.raises(ProviderUnavailable):
        services.capture_payment(payment=payment)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.lease_operation == ""
    assert kinds(payment)[-1] == LedgerKind.NOTE
    payment = services.capture_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    first, second = calls(mock, "capture_payment")
    assert first.idempotency_key == second.idempotency_key == f"paydesk:{payment.pk}:capture"


# -- process_payment with the sandbox --------------------------------------------------------


def test_process_success_with_the_sandbox(sandbox):
    payment = services.create_payment(amount="19.99", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("19.99")
    assert payment.provider_payment_id.startswith("pi_sb_")
    assert kinds(payment) == ["payment_created", "submitted", "authorization", "capture"]


def test_sandbox_3ds_requires_action_with_a_redirect_then_confirms(sandbox):
    payment = services.create_payment(amount="50.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_3ds")
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    ppid = payment.provider_payment_id
    assert payment.next_action == {
        "type": "redirect",
        "redirect_url": f"/paydesk/sandbox/3ds/{ppid}/",
    }
    assert Payment.objects.get(pk=payment.pk).next_action == payment.next_action
    assert kinds(payment) == ["payment_created", "submitted", "requires_action"]

    # Confirming before the customer acted changes nothing.
    payment = services.confirm_payment(payment=payment)
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    assert kinds(payment) == ["payment_created", "submitted", "requires_action"]

    sandbox.complete_challenge(provider_payment_id=ppid, passed=True)
    payment = services.confirm_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("50.00")
    assert payment.next_action is None
    assert Payment.objects.get(pk=payment.pk).next_action is None
    # Confirming again (a late browser redirect) is harmless.
    assert services.confirm_payment(payment=payment).status == PaymentStatus.COMPLETED
    assert kinds(payment).count("capture") == 1


def test_sandbox_3ds_failed_challenge_fails_the_payment(sandbox):
    payment = services.create_payment(amount="50.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_3ds")
    sandbox.complete_challenge(provider_payment_id=payment.provider_payment_id, passed=False)
    payment = services.confirm_payment(payment=payment)
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "authentication_required"
    assert payment.next_action is None


def test_sandbox_without_a_token_sends_the_customer_to_hosted_checkout(sandbox):
    payment = services.process_payment(
        payment=services.create_payment(amount="5.00", currency="USD")
    )
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    assert payment.next_action == {
        "type": "redirect",
        "redirect_url": f"/paydesk/sandbox/checkout/{payment.provider_payment_id}/",
    }


def test_confirm_payment_mock_sends_a_stable_key_for_the_same_attempt(mock):
    mock.set_next_result(
        PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            provider_payment_id="mock_3ds",
            next_action=None,
        )
    )
    payment = services.process_payment(payment=_mock_payment())
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    mock.set_next_result(ProviderStatus.REQUIRES_ACTION)
    services.confirm_payment(payment=payment)
    services.confirm_payment(payment=payment, params={"payment_intent": "mock_3ds"})
    first, second = calls(mock, "confirm_payment")
    assert isinstance(first, ConfirmRequest)
    assert first.idempotency_key == second.idempotency_key
    assert first.provider_payment_id == "mock_3ds"
    assert second.params == {"payment_intent": "mock_3ds"}
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.COMPLETED


def test_confirm_of_a_pending_payment_is_refused(mock):
    payment = _mock_payment()
    with pytest.raises(InvalidTransition, match="nothing to confirm"):
        services.confirm_payment(payment=payment)
    assert mock.get_call_count() == 0


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("pm_sandbox_declined", "card_declined"),
        ("pm_sandbox_insufficient", "insufficient_funds"),
        ("pm_sandbox_expired", "expired_card"),
    ],
)
def test_sandbox_declines(sandbox, token, code):
    payment = services.create_payment(amount="10.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token=token)
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == code
    assert payment.failure_message
    assert payment.captured_amount == 0
    assert kinds(payment) == ["payment_created", "submitted", "payment_failed"]


def test_mock_decline_is_recorded_not_raised(mock):
    mock.set_should_fail(True, message="Do not honor", code="card_declined")
    payment = services.process_payment(payment=_mock_payment())
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "card_declined"
    assert payment.failure_message == "Do not honor"
    assert kinds(payment) == ["payment_created", "submitted", "payment_failed"]
    entry = payment.ledger.get(kind="payment_failed")
    assert entry.provider_data["failure_code"] == "card_declined"
    assert entry.message == "Do not honor"


def test_processing_a_completed_payment_again_is_refused(mock):
    payment = services.process_payment(payment=_mock_payment())
    before = counts()
    with pytest.raises(InvalidTransition) as info:
        services.process_payment(payment=payment)
    assert "completed" in info.value.message
    assert "only pending" in info.value.message
    assert counts() == before
    assert mock.get_call_count("create_payment") == 1


def test_processing_a_failed_payment_points_to_retry(mock):
    mock.set_should_fail(True)
    payment = services.process_payment(payment=_mock_payment())
    with pytest.raises(InvalidTransition, match="retry_payment"):
        services.process_payment(payment=payment)
    assert mock.get_call_count("create_payment") == 1


def test_processing_while_processing_raises_payment_in_progress(mock):
    mock.set_next_result(ProviderStatus.PROCESSING)
    payment = services.process_payment(payment=_mock_payment())
    assert payment.status == PaymentStatus.PROCESSING
    before = counts()
    with pytest.raises(PaymentInProgress) as info:
        services.process_payment(payment=payment)
    assert info.value.code == "payment_in_progress"
    assert info.value.http_status == 409
    assert counts() == before
    assert mock.get_call_count("create_payment") == 1


def test_retryable_provider_error_keeps_processing_and_sync_settles_it(mock):
    mock.set_exception("provider_unavailable", "Gateway timeout")
    payment = _mock_payment()
    with pytest.raises(ProviderUnavailable) as info:
        services.process_payment(payment=payment)
    assert info.value.retryable is True
    assert info.value.provider == "mock"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert payment.failure_code == ""
    assert payment.lease_operation == ""
    assert kinds(payment) == ["payment_created", "submitted", "note"]
    note = payment.ledger.get(kind="note")
    assert note.provider_data["code"] == "provider_unavailable"
    assert "Gateway timeout" in note.message
    assert "sync_payment" in note.message

    # Nobody may resubmit while the outcome is unknown...
    with pytest.raises(PaymentInProgress):
        services.process_payment(payment=payment)

    # ...the provider did charge; sync asks with the same key and records it.
    mock.set_next_result(ProviderStatus.CAPTURED)
    payment = services.sync_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("100.00")
    [create] = calls(mock, "create_payment")
    [status] = calls(mock, "get_payment_status")
    assert isinstance(status, StatusRequest)
    assert status.idempotency_key == create.idempotency_key
    assert status.amount == Money("100.00", "USD")


def test_sync_after_a_timeout_the_provider_never_saw_fails_the_payment(mock):
    mock.set_exception("provider_unavailable")
    payment = _mock_payment()
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment)
    payment = services.sync_payment(payment=payment)  # the mock answers NOT_FOUND
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "provider_unavailable"
    # ... and the payment can be retried with a new attempt and a new key.
    payment = services.retry_payment(payment=payment)
    assert payment.status == PaymentStatus.COMPLETED
    first, second = calls(mock, "create_payment")
    assert first.idempotency_key == f"paydesk:{payment.pk}:attempt-1:create"
    assert second.idempotency_key == f"paydesk:{payment.pk}:attempt-2:create"


def test_non_retryable_provider_error_fails_the_payment_and_is_raised(mock):
    mock.set_exception("provider_authentication", "Invalid API key")
    payment = _mock_payment()
    with pytest.raises(ProviderAuthenticationError) as info:
        services.process_payment(payment=payment)
    assert info.value.retryable is False
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "provider_authentication"
    assert payment.failure_message == "Invalid API key"
    assert payment.lease_operation == ""
    assert kinds(payment) == ["payment_created", "submitted", "payment_failed"]


def test_provider_request_error_from_the_sandbox_fails_and_is_raised(sandbox):
    payment = services.create_payment(amount="10.00", currency="USD")
    with pytest.raises(ProviderRequestError, match="pm_bogus"):
        services.process_payment(payment=payment, payment_method_token="pm_bogus")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "invalid_request"


@pytest.mark.parametrize("code", ["card_declined", "insufficient_funds"])
def test_payment_declined_raised_by_the_provider_is_recorded_not_raised(mock, code):
    mock.set_exception(PaymentDeclined("Declined by issuer", provider="mock", code=code))
    payment = services.process_payment(payment=_mock_payment())
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == code
    assert payment.failure_message == "Declined by issuer"
    assert payment.lease_operation == ""
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.FAILED
    assert kinds(payment) == ["payment_created", "submitted", "payment_failed"]


# -- retry_payment ---------------------------------------------------------------------------


def test_retry_after_failure_with_a_new_token_completes_attempt_two(mock):
    mock.set_should_fail(True)
    payment = services.process_payment(payment=_mock_payment(), payment_method_token="tok_bad")
    assert payment.status == PaymentStatus.FAILED
    first_ppid = payment.provider_payment_id
    mock.set_should_fail(False)

    payment = services.retry_payment(payment=payment, payment_method_token="tok_good")
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.attempt == 2
    assert payment.failure_code == ""
    assert payment.failure_message == ""
    assert payment.captured_amount == Decimal("100.00")
    assert payment.provider_payment_id != first_ppid
    assert kinds(payment) == [
        "payment_created",
        "submitted",
        "payment_failed",
        "attempt_started",
        "submitted",
        "authorization",
        "capture",
    ]
    first, second = calls(mock, "create_payment")
    assert (first.attempt, first.payment_method_token) == (1, "tok_bad")
    assert (second.attempt, second.payment_method_token) == (2, "tok_good")
    assert first.idempotency_key != second.idempotency_key
    assert second.idempotency_key == f"paydesk:{payment.pk}:attempt-2:create"
    assert payment.ledger.filter(attempt=2).count() == 4


def test_retry_without_processing_leaves_attempt_two_pending(mock):
    mock.set_should_fail(True)
    payment = services.process_payment(payment=_mock_payment())
    payment = services.retry_payment(payment=payment, process=False)
    assert payment.status == PaymentStatus.PENDING
    assert payment.attempt == 2
    assert mock.get_call_count("create_payment") == 1
    # Syncing a pending retry does not ask the provider about the old attempt.
    assert services.sync_payment(payment=payment).status == PaymentStatus.PENDING
    assert mock.get_call_count() == 1


def test_retry_with_a_saved_method(mock, user):
    mock.set_should_fail(True)
    payment = services.process_payment(payment=_mock_payment(user=user))
    mock.set_should_fail(False)
    method = _method(user, token="pm_second_card")
    payment = services.retry_payment(payment=payment, payment_method=method)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.payment_method == method
    assert calls(mock, "create_payment")[1].payment_method_token == "pm_second_card"


def test_retry_with_another_users_method_is_refused(mock, user, other_user):
    mock.set_should_fail(True)
    payment = services.process_payment(payment=_mock_payment(user=user))
    before = counts()
    with pytest.raises(PaymentMethodNotUsable):
        services.retry_payment(payment=payment, payment_method=_method(other_user))
    assert counts() == before
    payment.refresh_from_db()
    assert payment.attempt == 1
    assert payment.status == PaymentStatus.FAILED


@pytest.mark.parametrize("state", ["pending", "completed"])
def test_retry_of_a_payment_that_has_not_failed_is_refused(mock, state):
    payment = _mock_payment()
    if state == "completed":
        payment = services.process_payment(payment=payment)
    before = counts()
    with pytest.raises(InvalidTransition, match="only failed payments"):
        services.retry_payment(payment=payment)
    assert counts() == before
    payment.refresh_from_db()
    assert payment.attempt == 1


# -- cancel_payment --------------------------------------------------------------------------


def test_cancel_a_never_submitted_payment_locally(mock):
    payment = _mock_payment()
    payment = services.cancel_payment(payment=payment, reason="customer changed their mind")
    assert payment.status == PaymentStatus.CANCELLED
    assert payment.cancelled_at is not None
    assert mock.calls == []
    assert kinds(payment) == ["payment_created", "cancellation"]
    entry = payment.ledger.get(kind="cancellation")
    assert entry.idempotency_key == "cancellation:local"
    assert entry.message == "customer changed their mind"
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.CANCELLED


def test_cancel_an_authorized_payment_calls_the_provider(mock):
    payment = services.process_payment(payment=_mock_payment(capture=False))
    payment = services.cancel_payment(payment=payment)
    assert payment.status == PaymentStatus.CANCELLED
    assert payment.cancelled_at is not None
    [cancel] = calls(mock, "cancel_payment")
    assert cancel.provider_payment_id == payment.provider_payment_id
    assert cancel.idempotency_key == f"paydesk:{payment.pk}:cancel"
    assert kinds(payment)[-1] == "cancellation"
    with pytest.raises(InvalidTransition):
        services.capture_payment(payment=payment)


def test_cancel_a_payment_waiting_for_3ds_with_the_sandbox(sandbox):
    payment = services.create_payment(amount="10.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_3ds")
    payment = services.cancel_payment(payment=payment)
    assert payment.status == PaymentStatus.CANCELLED
    assert payment.next_action is None


def test_cancel_needs_the_capability_once_submitted():
    with providers_configured(limited=f"{__name__}.NoSyncNoCancelProvider") as configured:
        payment = services.create_payment(
            amount="10.00", currency="USD", provider="limited", capture=False
        )
        payment = services.process_payment(payment=payment)
        before = counts()
        with pytest.raises(NotSupported):
            services.cancel_payment(payment=payment)
        assert counts() == before
        assert configured["limited"].get_call_count("cancel_payment") == 0


@pytest.mark.parametrize("state", ["completed", "cancelled", "failed"])
def test_cancel_refused_outside_cancellable_states(mock, state):
    payment = _mock_payment()
    if state == "completed":
        payment = services.process_payment(payment=payment)
    elif state == "cancelled":
        payment = services.cancel_payment(payment=payment)
    else:
        mock.set_should_fail(True)
        payment = services.process_payment(payment=payment)
    before = counts()
    calls_before = mock.get_call_count()
    with pytest.raises(InvalidTransition) as info:
        services.cancel_payment(payment=payment)
    assert state in info.value.message
    assert counts() == before
    assert mock.get_call_count() == calls_before


def test_completed_cancel_message_points_to_refunds(mock):
    payment = services.process_payment(payment=_mock_payment())
    with pytest.raises(InvalidTransition, match="refund"):
        services.cancel_payment(payment=payment)


# -- sync_payment ----------------------------------------------------------------------------


def test_sync_of_a_pending_payment_does_not_call_the_provider(mock):
    payment = _mock_payment()
    synced = services.sync_payment(payment=payment)
    assert synced.status == PaymentStatus.PENDING
    assert mock.calls == []
    assert kinds(payment) == ["payment_created"]


def test_sync_of_a_completed_payment_is_a_no_op(mock):
    payment = services.process_payment(payment=_mock_payment())
    before = counts()
    for _ in range(2):
        assert services.sync_payment(payment=payment).status == PaymentStatus.COMPLETED
    assert counts() == before
    assert mock.get_call_count("get_payment_status") == 2


def test_sync_with_the_sandbox_picks_up_a_completed_checkout(sandbox):
    payment = services.process_payment(
        payment=services.create_payment(amount="12.00", currency="USD")
    )
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    sandbox.complete_checkout(
        provider_payment_id=payment.provider_payment_id, card_number="4242 4242 4242 4242"
    )
    payment = services.sync_payment(payment=payment.pk)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("12.00")


def test_sync_needs_the_capability():
    with providers_configured(limited=f"{__name__}.NoSyncNoCancelProvider"):
        payment = services.create_payment(amount="10.00", currency="USD", provider="limited")
        with pytest.raises(NotSupported):
            services.sync_payment(payment=payment)


def test_failure_result_without_details_gets_a_generic_code(mock):
    mock.set_next_result(PaymentResult(status=ProviderStatus.FAILED, provider_payment_id="m_1"))
    payment = services.process_payment(payment=_mock_payment())
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "processing_error"
    assert payment.failure_message


def test_provider_fee_overrides_the_configured_fee(mock):
    mock.set_next_result(
        PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id="m_fee",
            amount_authorized=Money("100.00", "USD"),
            amount_captured=Money("100.00", "USD"),
            fee=Money("3.20", "USD"),
        )
    )
    payment = services.process_payment(payment=_mock_payment())
    assert Payment.objects.get(pk=payment.pk).processing_fee == Decimal("3.20")


def test_failed_result_carries_the_failure(mock):
    mock.set_next_result(
        PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id="m_2",
            failure=ProviderFailure(code="expired_card", message="Card expired"),
        )
    )
    payment = services.process_payment(payment=_mock_payment())
    assert (payment.failure_code, payment.failure_message) == ("expired_card", "Card expired")


def test_amounts_in_messages_use_the_currency_precision(mock, user):
    # Amounts read back from the database carry the column's four decimals; messages must
    # still show them as the currency does: "100.00 USD", never "100.0000 USD".
    payment = services.process_payment(payment=_mock_payment(amount="100.00", capture=False))
    with pytest.raises(PaymentValidationError) as info:
        services.capture_payment(payment=payment, amount="150.00")
    assert re.search(r"\b100\.00 USD\b", info.value.message), info.value.message

    services.create_payment(amount="500", currency="JPY", user=user, idempotency_key="jp")
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount="600", currency="JPY", user=user, idempotency_key="jp")
    assert re.search(r"\(500 JPY via sandbox\)", info.value.message), info.value.message


def test_idempotency_key_reused_for_another_host_object_is_refused(user):
    order_1 = Group.objects.create(name="Order #1")
    order_2 = Group.objects.create(name="Order #2")
    first = services.create_payment(
        amount="5.00", currency="USD", user=user, content_object=order_1, idempotency_key="k"
    )
    replay = services.create_payment(
        amount="5.00", currency="USD", user=user, content_object=order_1, idempotency_key="k"
    )
    assert replay.pk == first.pk
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(
            amount="5.00", currency="USD", user=user, content_object=order_2, idempotency_key="k"
        )
    assert info.value.code == "idempotency_key_reused"
    assert counts() == before


@pytest.mark.parametrize("operation", ["capture", "cancel"])
def test_a_decline_of_a_capture_or_cancel_is_raised_not_swallowed(mock, operation):
    # Only a *payment attempt* that is declined becomes a failed payment returned without an
    # exception. A refused capture or void leaves the payment authorized, so returning it
    # unchanged without an error would tell the caller nothing happened when it failed.
    payment = services.process_payment(payment=_mock_payment(capture=False))
    mock.set_exception("card_declined", "The authorization has expired.")
    call = services.capture_payment if operation == "capture" else services.cancel_payment
    with pytest.raises(PaymentDeclined, match="expired"):
        call(payment=payment)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.lease_operation == ""
    assert kinds(payment)[-1] == "note"
    assert "expired" in payment.ledger.order_by("id").last().message


def test_a_capture_refused_by_the_provider_is_raised_and_noted(sandbox):
    payment = services.create_payment(amount="10.00", currency="USD", capture=False)
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    # The remote side was voided behind paydesk's back; the provider refuses the capture.
    sandbox.cancel_payment(
        CancelRequest(
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            idempotency_key="outside",
        )
    )
    with pytest.raises(ProviderRequestError, match="cannot be captured"):
        services.capture_payment(payment=payment)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.lease_operation == ""
    assert kinds(payment)[-1] == "note"
    # A sync then learns the truth from the provider.
    assert services.sync_payment(payment=payment).status == PaymentStatus.CANCELLED


CARD_NUMBER = "4242 4242 4242 4242"


def test_create_refuses_a_card_number_as_payment_method_token(mock):
    # add_payment_method refuses card data; a one-off token on a payment is stored in the
    # same database (Payment.payment_method_token), so the same rule must hold there.
    before = counts()
    with pytest.raises(PaymentValidationError) as info:
        _mock_payment(payment_method_token=CARD_NUMBER)
    assert info.value.field == "payment_method_token"
    assert counts() == before


@pytest.mark.parametrize("entry", ["process", "retry"])
def test_a_card_number_is_never_stored_or_sent_as_a_token(mock, entry):
    payment = _mock_payment()
    if entry == "retry":
        mock.set_should_fail(True)
        payment = services.process_payment(payment=payment)
        mock.set_should_fail(False)
    calls_before = mock.get_call_count()
    before = counts()
    if entry == "process":
        call = partial(services.process_payment, payment_method_token=CARD_NUMBER)
    else:
        call = partial(services.retry_payment, payment_method_token="4242424242424242")
    with pytest.raises(PaymentValidationError) as info:
        call(payment=payment)
    assert info.value.field == "payment_method_token"
    assert counts() == before
    assert mock.get_call_count() == calls_before
    assert "4242" not in Payment.objects.get(pk=payment.pk).payment_method_token


@pytest.mark.django_db
def test_an_amount_too_large_for_the_ledger_columns_is_refused_before_the_database():
    from paydesk.models import Payment
    from paydesk.services.payments import MAX_AMOUNT

    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount=str(MAX_AMOUNT), currency="USD")
    assert info.value.field == "amount"
    assert Payment.objects.count() == 0
    just_fits = services.create_payment(amount=str(MAX_AMOUNT - 1), currency="USD")
    assert just_fits.amount == MAX_AMOUNT - 1
