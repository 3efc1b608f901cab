"""Races on PostgreSQL with real threads and real row locks.

Every test starts its threads together on a ``threading.Barrier`` so that they really
contend for the payment row, and checks the invariants that must hold whatever the
interleaving: no refund above what was captured (on paydesk's side *and* the sandbox's
remote side), one provider charge per payment, one payment per idempotency key, one default
payment method per user. Each thread closes its own database connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from paydesk import services
from paydesk.exceptions import InvalidTransition, PaymentInProgress, RefundExceedsCaptured
from paydesk.models import Payment, PaymentMethod, Refund, SandboxCharge, TransactionLog

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

D = Decimal
JOIN_TIMEOUT = 60


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(0..n-1)`` in ``n`` threads released at once; return results or exceptions."""
    barrier = threading.Barrier(n, timeout=JOIN_TIMEOUT)
    outcomes: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            outcomes[i] = fn(i)
        except BaseException as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    return outcomes


def split(outcomes: list[Any]) -> tuple[list[Any], list[BaseException]]:
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    return ok, errors


def captured_payment(amount: str = "100.00") -> Payment:
    payment = services.create_payment(amount=amount, currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "completed"
    assert payment.captured_amount == D(amount)
    return payment


def assert_only(errors: list[BaseException], *allowed: type[BaseException]) -> None:
    unexpected = [e for e in errors if not isinstance(e, allowed)]
    assert not unexpected, f"unexpected exceptions: {unexpected!r}"


# -- refunds ---------------------------------------------------------------------------


def test_twenty_concurrent_refunds_never_exceed_the_captured_amount():
    payment = captured_payment("100.00")

    outcomes = race(20, lambda i: services.create_refund(payment=payment, amount="10.00"))

    refunds, errors = split(outcomes)
    assert_only(errors, RefundExceedsCaptured)
    assert len(refunds) == 10
    assert len(errors) == 10
    for exc in errors:
        assert exc.code == "refund_exceeds_captured"
        assert "Cannot refund 10.00 USD" in exc.message
        assert "can still be refunded" in exc.message
    assert {r.status for r in refunds} == {"completed"}
    assert sum(r.amount for r in refunds) == D("100.00")

    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert payment.refunded_amount == D("100.00")
    assert payment.refund_reserved_amount == D(0)
    assert Refund.objects.filter(payment=payment).count() == 10
    assert Refund.objects.filter(payment=payment, status="completed").count() == 10
    ledger = TransactionLog.objects.filter(payment=payment)
    assert ledger.filter(kind="refund_requested").count() == 10
    assert ledger.filter(kind="refund_completed").count() == 10
    charge = SandboxCharge.objects.get(payment_ref=payment.pk)
    assert charge.refunded_amount == D("100.00")  # the remote side never over-refunded
    assert len(charge.refunds) == 10


def test_mixed_refund_race_stops_at_the_last_whole_refund_that_fits():
    payment = captured_payment("100.00")

    outcomes = race(10, lambda i: services.create_refund(payment=payment, amount="15.00"))

    refunds, errors = split(outcomes)
    assert_only(errors, RefundExceedsCaptured)
    assert len(refunds) == 6
    assert len(errors) == 4
    assert sum(r.amount for r in refunds) == D("90.00")
    assert {r.status for r in refunds} == {"completed"}
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == D("90.00")
    assert payment.refund_reserved_amount == D(0)
    assert payment.refundable_amount == D("10.00")
    assert SandboxCharge.objects.get(payment_ref=payment.pk).refunded_amount == D("90.00")

    # What is left can still be refunded, and not a cent more.
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment, amount="10.01")
    services.create_refund(payment=payment, amount="10.00")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", D("100.00"))


# -- processing the same payment twice -------------------------------------------------


def _assert_one_winner(outcomes: list[Any]) -> Payment:
    winners, errors = split(outcomes)
    assert len(winners) == 1, outcomes
    assert len(errors) == 1, outcomes
    assert_only(errors, PaymentInProgress, InvalidTransition)
    return winners[0]


def test_concurrent_process_payment_charges_the_sandbox_once():
    for _ in range(5):
        payment = services.create_payment(amount="30.00", currency="USD")

        outcomes = race(
            2,
            lambda i, p=payment: services.process_payment(
                payment=p, payment_method_token="pm_sandbox_visa"
            ),
        )

        winner = _assert_one_winner(outcomes)
        assert winner.status == "completed"
        assert SandboxCharge.objects.filter(payment_ref=payment.pk).count() == 1
        ledger = TransactionLog.objects.filter(payment=payment)
        assert ledger.filter(kind="capture").count() == 1
        assert ledger.filter(kind="authorization").count() == 1
        payment.refresh_from_db()
        assert (payment.status, payment.captured_amount) == ("completed", D("30.00"))
        assert payment.lease_operation == ""


def test_concurrent_process_payment_calls_the_provider_once(mock):
    for _ in range(5):
        mock.reset()
        payment = services.create_payment(amount="30.00", currency="USD", provider="mock")

        outcomes = race(2, lambda i, p=payment: services.process_payment(payment=p))

        winner = _assert_one_winner(outcomes)
        assert winner.status == "completed"
        assert mock.get_call_count("create_payment") == 1
        assert mock.get_call_count() == 1  # the loser never reached the provider at all
        (request,) = [r for name, r in mock.calls if name == "create_payment"]
        assert request.payment_id == payment.pk
        assert TransactionLog.objects.filter(payment=payment, kind="capture").count() == 1
        payment.refresh_from_db()
        assert (payment.status, payment.captured_amount) == ("completed", D("30.00"))


# -- idempotent creation ---------------------------------------------------------------


def test_concurrent_create_payment_with_one_idempotency_key_creates_one_payment(user):
    outcomes = race(
        10,
        lambda i: services.create_payment(
            amount="55.00", currency="USD", user=user, idempotency_key="checkout-42"
        ),
    )

    payments, errors = split(outcomes)
    assert errors == []
    assert len({p.pk for p in payments}) == 1
    assert Payment.objects.filter(user=user).count() == 1
    only = Payment.objects.get(user=user)
    assert payments[0].pk == only.pk
    assert only.idempotency_key == f"{user.pk}:checkout-42"
    assert TransactionLog.objects.filter(payment=only, kind="payment_created").count() == 1


# -- default payment method ------------------------------------------------------------


def test_concurrent_set_default_leaves_exactly_one_default(user):
    first = services.add_payment_method(
        user=user, provider="sandbox", provider_token="pm_sandbox_visa", last4="4242"
    )
    second = services.add_payment_method(
        user=user, provider="sandbox", provider_token="pm_sandbox_mastercard", last4="4444"
    )
    methods = [first, second]

    for _ in range(5):
        outcomes = race(10, lambda i: services.set_default_payment_method(method=methods[i % 2]))

        _, errors = split(outcomes)
        assert errors == []
        defaults = PaymentMethod.objects.filter(user=user, is_default=True)
        assert defaults.count() == 1
        assert defaults.get().pk in {first.pk, second.pk}
