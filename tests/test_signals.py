"""Lifecycle signals: notifications sent after commit, once per real state change.

What these tests prove: each signal is sent exactly once, only when the transaction that
caused it commits, with the documented keyword arguments (``sender`` is the ``Payment``
class; ``payment``, ``provider``, ``result``, plus the per-signal extras); nothing is sent when
the surrounding transaction rolls back; a receiver that raises is logged and isolated (the
service call succeeds and later receivers still run); duplicate provider results (a second
sync, a repeated webhook) do not re-send.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.db import transaction

from paydesk import services, signals
from paydesk.exceptions import ProviderAuthenticationError, ProviderUnavailable
from paydesk.models import Payment, Refund
from paydesk.providers import get_payment_provider
from paydesk.services.refunds import record_refund_result
from paydesk.types import (
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundResult,
)

pytestmark = pytest.mark.django_db

SIGNAL_NAMES = (
    "payment_created",
    "payment_requires_action",
    "payment_confirmed",
    "payment_failed",
    "payment_cancelled",
    "payment_refunded",
    "refund_failed",
)
COMMON = {"signal", "payment", "provider", "result"}


class Catcher:
    """Records (name, sender, kwargs) for every paydesk signal, sender included."""

    def __init__(self):
        self.calls = []

    def __enter__(self):
        for name in SIGNAL_NAMES:
            getattr(signals, name).connect(
                self._receiver(name), weak=False, dispatch_uid=f"test-catcher-{id(self)}-{name}"
            )
        return self

    def __exit__(self, *exc):
        for name in SIGNAL_NAMES:
            getattr(signals, name).disconnect(dispatch_uid=f"test-catcher-{id(self)}-{name}")

    def _receiver(self, name):
        def receive(sender, **kwargs):
            self.calls.append((name, sender, kwargs))

        return receive

    @property
    def names(self):
        return [name for name, _, _ in self.calls]

    def only(self, name):
        matching = [(sender, kwargs) for n, sender, kwargs in self.calls if n == name]
        assert len(matching) == 1, f"{name} sent {len(matching)} times: {self.names}"
        return matching[0]


@pytest.fixture
def caught():
    with Catcher() as catcher:
        yield catcher


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed():`` runs the block and then its on-commit callbacks."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _mock_payment(**kwargs):
    kwargs.setdefault("amount", "100.00")
    kwargs.setdefault("currency", "USD")
    return services.create_payment(provider="mock", **kwargs)


def test_payment_approved_is_an_alias_of_payment_confirmed():
    assert signals.payment_approved is signals.payment_confirmed


def test_payment_created_is_sent_only_after_commit(
    mock, caught, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        payment = _mock_payment()
    # The transaction has not committed yet: nothing was announced.
    assert caught.calls == []
    assert len(callbacks) == 1
    callbacks[0]()
    sender, kwargs = caught.only("payment_created")
    assert sender is Payment
    assert set(kwargs) == COMMON
    assert kwargs["payment"].pk == payment.pk
    assert kwargs["provider"] == "mock"
    assert kwargs["result"] is None
    assert kwargs["signal"] is signals.payment_created


def test_payment_confirmed_on_success(mock, caught, committed):
    with committed():
        payment = services.process_payment(payment=_mock_payment())
    assert caught.names == ["payment_created", "payment_confirmed"]
    sender, kwargs = caught.only("payment_confirmed")
    assert sender is Payment
    assert set(kwargs) == COMMON
    assert kwargs["payment"].pk == payment.pk
    assert kwargs["payment"].status == "completed"
    assert kwargs["provider"] == "mock"
    assert isinstance(kwargs["result"], PaymentResult)
    assert kwargs["result"].status == ProviderStatus.CAPTURED


def test_payment_confirmed_on_authorization_and_on_capture(mock, caught, committed):
    with committed():
        payment = services.process_payment(payment=_mock_payment(capture=False))
    assert caught.names == ["payment_created", "payment_confirmed"]
    assert caught.calls[-1][2]["payment"].status == "authorized"
    with committed():
        services.capture_payment(payment=payment)
    assert caught.names == ["payment_created", "payment_confirmed", "payment_confirmed"]
    assert caught.calls[-1][2]["payment"].status == "completed"
    assert caught.calls[-1][2]["result"].status == ProviderStatus.CAPTURED


def test_payment_requires_action_carries_the_next_action(caught, committed):
    with committed():
        payment = services.create_payment(amount="10.00", currency="USD")
        payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_3ds")
    assert caught.names == ["payment_created", "payment_requires_action"]
    sender, kwargs = caught.only("payment_requires_action")
    assert sender is Payment
    assert set(kwargs) == COMMON | {"next_action"}
    assert kwargs["provider"] == "sandbox"
    assert kwargs["next_action"] == {
        "type": "redirect",
        "redirect_url": f"/paydesk/sandbox/3ds/{payment.provider_payment_id}/",
    }
    assert kwargs["result"].status == ProviderStatus.REQUIRES_ACTION

    get_payment_provider("sandbox").complete_challenge(
        provider_payment_id=payment.provider_payment_id, passed=True
    )
    with committed():
        services.confirm_payment(payment=payment)
        services.confirm_payment(payment=payment)  # a second browser return: no new signal
    assert caught.names == ["payment_created", "payment_requires_action", "payment_confirmed"]


def test_payment_failed_carries_the_error(mock, caught, committed):
    mock.set_should_fail(True, message="Insufficient funds.", code="insufficient_funds")
    with committed():
        payment = services.process_payment(payment=_mock_payment())
    assert caught.names == ["payment_created", "payment_failed"]
    sender, kwargs = caught.only("payment_failed")
    assert sender is Payment
    assert set(kwargs) == COMMON | {"error_code", "error_message"}
    assert kwargs["payment"].pk == payment.pk
    assert kwargs["error_code"] == "insufficient_funds"
    assert kwargs["error_message"] == "Insufficient funds."
    assert kwargs["result"].status == ProviderStatus.FAILED


def test_payment_failed_is_sent_when_a_provider_error_is_raised(mock, caught, committed):
    mock.set_exception("provider_authentication", "Bad API key")
    with committed(), pytest.raises(ProviderAuthenticationError):
        services.process_payment(payment=_mock_payment())
    _, kwargs = caught.only("payment_failed")
    assert kwargs["error_code"] == "provider_authentication"
    assert kwargs["error_message"] == "Bad API key"


def test_a_retryable_error_announces_nothing_until_sync_settles_it(mock, caught, committed):
    mock.set_exception("provider_unavailable")
    with committed():
        payment = _mock_payment()
    with committed(), pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment)
    assert caught.names == ["payment_created"]
    mock.set_next_result(ProviderStatus.CAPTURED)
    with committed():
        services.sync_payment(payment=payment)
    assert caught.names == ["payment_created", "payment_confirmed"]


def test_payment_cancelled_locally_and_at_the_provider(mock, caught, committed):
    with committed():
        local = services.cancel_payment(payment=_mock_payment())
    sender, kwargs = caught.only("payment_cancelled")
    assert sender is Payment
    assert set(kwargs) == COMMON
    assert kwargs["payment"].pk == local.pk
    assert kwargs["result"] is None

    with committed():
        remote = services.process_payment(payment=_mock_payment(capture=False))
        remote = services.cancel_payment(payment=remote)
    cancelled = [kw for name, _, kw in caught.calls if name == "payment_cancelled"]
    assert [kw["payment"].pk for kw in cancelled] == [local.pk, remote.pk]
    assert cancelled[1]["result"].status == ProviderStatus.CANCELLED


def test_payment_refunded_carries_the_refund(mock, caught, committed, user):
    payment = services.process_payment(payment=_mock_payment())
    with committed():
        refund = services.create_refund(
            payment=payment, amount="30.00", reason="damaged", user=user
        )
    assert caught.names == ["payment_refunded"]
    sender, kwargs = caught.only("payment_refunded")
    assert sender is Payment
    assert set(kwargs) == COMMON | {"refund", "amount", "reason"}
    assert kwargs["payment"].pk == payment.pk
    assert kwargs["payment"].status == "partially_refunded"
    assert kwargs["provider"] == "mock"
    assert isinstance(kwargs["refund"], Refund)
    assert kwargs["refund"].pk == refund.pk
    assert isinstance(kwargs["amount"], Decimal)
    assert kwargs["amount"] == Decimal("30.00")
    assert kwargs["reason"] == "damaged"
    assert isinstance(kwargs["result"], RefundResult)
    assert kwargs["result"].status == "completed"


def test_refund_failed_carries_the_error(mock, caught, committed):
    payment = services.process_payment(payment=_mock_payment())
    mock.set_next_refund_result(
        RefundResult(status="failed", failure=ProviderFailure("refund_declined", "Too late."))
    )
    with committed():
        refund = services.create_refund(payment=payment, amount="30.00")
    assert caught.names == ["refund_failed"]
    sender, kwargs = caught.only("refund_failed")
    assert sender is Payment
    assert set(kwargs) == COMMON | {"refund", "error_code", "error_message"}
    assert kwargs["refund"].pk == refund.pk
    assert kwargs["error_code"] == "refund_declined"
    assert kwargs["error_message"] == "Too late."
    assert kwargs["result"].status == "failed"


def test_a_refund_left_pending_announces_nothing_until_it_completes(mock, caught, committed):
    payment = services.process_payment(payment=_mock_payment())
    mock.set_next_refund_result(RefundResult(status="pending"))
    with committed():
        refund = services.create_refund(payment=payment, amount="30.00")
    assert caught.calls == []
    with committed():
        record_refund_result(refund=refund, result=RefundResult(status="completed"))
    assert caught.names == ["payment_refunded"]


# -- rollbacks -------------------------------------------------------------------------------


class Boom(Exception):
    pass


def rolled_back(*steps):
    """Run ``steps`` in one transaction, then roll it back by raising ``Boom``.

    Returns what the steps returned, through the list passed to ``Boom``.
    """
    results = []
    with transaction.atomic():
        for step in steps:
            results.append(step())
        raise Boom(results)


def test_nothing_is_sent_when_the_surrounding_transaction_rolls_back(mock, caught, committed):
    with committed(), pytest.raises(Boom) as info:
        rolled_back(lambda: services.process_payment(payment=_mock_payment()))
    [payment] = info.value.args[0]
    assert payment.status == "completed"  # it did complete, inside the transaction
    assert caught.calls == []
    assert not Payment.objects.filter(pk=payment.pk).exists()


def test_rolled_back_refunds_and_cancellations_are_not_announced(mock, caught, committed):
    payment = services.process_payment(payment=_mock_payment())
    pending = _mock_payment()
    with committed(), pytest.raises(Boom):
        rolled_back(
            lambda: services.create_refund(payment=payment, amount="10.00"),
            lambda: services.cancel_payment(payment=pending),
        )
    assert caught.calls == []
    assert Refund.objects.count() == 0
    assert Payment.objects.get(pk=pending.pk).status == "pending"


def test_a_failure_rolled_back_is_not_announced(mock, caught, committed):
    mock.set_should_fail(True)
    with committed(), pytest.raises(Boom):
        rolled_back(lambda: services.process_payment(payment=_mock_payment()))
    assert caught.calls == []


def test_only_the_committed_part_is_announced(mock, caught, committed):
    with committed():
        kept = _mock_payment()
        with pytest.raises(Boom):
            rolled_back(_mock_payment)
    assert caught.names == ["payment_created"]
    assert caught.calls[0][2]["payment"].pk == kept.pk


# -- receiver failures -----------------------------------------------------------------------


def test_a_failing_receiver_is_logged_and_isolated(mock, committed, caplog):
    received = []

    def broken(sender, **kwargs):
        raise RuntimeError("receiver exploded")

    def healthy(sender, **kwargs):
        received.append(kwargs["payment"].pk)

    # ``broken`` is connected first, so ``healthy`` runs after it has raised.
    signals.payment_confirmed.connect(broken, weak=False, dispatch_uid="test-broken")
    signals.payment_confirmed.connect(healthy, weak=False, dispatch_uid="test-healthy")
    try:
        with caplog.at_level(logging.ERROR, logger="paydesk.signals"), committed():
            payment = services.process_payment(payment=_mock_payment())
    finally:
        signals.payment_confirmed.disconnect(dispatch_uid="test-broken")
        signals.payment_confirmed.disconnect(dispatch_uid="test-healthy")

    assert payment.status == "completed"
    assert Payment.objects.get(pk=payment.pk).status == "completed"
    assert received == [payment.pk]
    records = [r for r in caplog.records if r.name == "paydesk.signals"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert "committed" in record.getMessage()
    assert "broken" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "receiver exploded" in str(record.exc_info[1])


def test_a_failing_receiver_does_not_stop_other_signals(mock, committed, caplog, caught):
    def broken(sender, **kwargs):
        raise ValueError("nope")

    signals.payment_created.connect(broken, weak=False, dispatch_uid="test-broken-created")
    try:
        with caplog.at_level(logging.ERROR, logger="paydesk.signals"), committed():
            services.process_payment(payment=_mock_payment())
    finally:
        signals.payment_created.disconnect(dispatch_uid="test-broken-created")
    assert caught.names == ["payment_created", "payment_confirmed"]
    assert sum(r.name == "paydesk.signals" for r in caplog.records) == 1


# -- duplicates ------------------------------------------------------------------------------


def test_syncing_twice_does_not_resend(mock, caught, committed):
    with committed():
        payment = services.process_payment(payment=_mock_payment())
    with committed():
        services.sync_payment(payment=payment)
        services.sync_payment(payment=payment)
    assert caught.names == ["payment_created", "payment_confirmed"]


def test_sandbox_sync_after_confirmation_does_not_resend(caught, committed):
    sandbox = get_payment_provider("sandbox")
    with committed():
        payment = services.process_payment(
            payment=services.create_payment(amount="10.00", currency="USD")
        )
    sandbox.complete_checkout(
        provider_payment_id=payment.provider_payment_id, card_number="4242424242424242"
    )
    with committed():
        services.sync_payment(payment=payment)
        services.confirm_payment(payment=payment)
        services.sync_payment(payment=payment)
    assert caught.names == ["payment_created", "payment_requires_action", "payment_confirmed"]


def test_a_repeated_refund_report_does_not_resend(mock, caught, committed):
    payment = services.process_payment(payment=_mock_payment())
    with committed():
        refund = services.create_refund(payment=payment, amount="10.00")
        record_refund_result(refund=refund, result=RefundResult(status="completed"))
        record_refund_result(refund=refund.pk, result=RefundResult(status="completed"))
    assert caught.names == ["payment_refunded"]


def test_a_repeated_refund_failure_report_does_not_resend(mock, caught, committed):
    payment = services.process_payment(payment=_mock_payment())
    mock.set_next_refund_result(RefundResult(status="failed"))
    failed = RefundResult(status="failed", failure=ProviderFailure("declined", "No."))
    with committed():
        refund = services.create_refund(payment=payment, amount="10.00")
        record_refund_result(refund=refund, result=failed)
    assert caught.names == ["refund_failed"]


def test_a_late_failure_report_for_a_completed_refund_is_not_announced(mock, caught, committed):
    # Completion beats failure: the refund stays completed, so announcing refund_failed would
    # tell the project a refund failed that in fact went through.
    payment = services.process_payment(payment=_mock_payment())
    with committed():
        refund = services.create_refund(payment=payment, amount="10.00")
    with committed():
        record_refund_result(
            refund=refund,
            result=RefundResult(status="failed", failure=ProviderFailure("late", "Late report.")),
        )
    assert Refund.objects.get(pk=refund.pk).status == "completed"
    assert caught.names == ["payment_refunded"]
