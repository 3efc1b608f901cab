"""Two staff members approve the same bank transfer at the same moment, on PostgreSQL.

The threads start together on a ``threading.Barrier`` and really contend for the payment and
transfer rows. Whatever the interleaving: exactly one approval, the other gets
``InvalidTransition``; one capture in the ledger; one ``eft_approved`` signal. Each thread
closes its own database connection.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from paydesk import signals
from paydesk.exceptions import InvalidTransition
from paydesk.models import AuditLog, BankTransfer, Payment, TransactionLog
from paydesk.services.eft import approve_transfer, reject_transfer

from . import test_provider_bank_transfer as shared
from .test_provider_bank_transfer import (
    awaiting_payment,
)

bank = shared.bank
second_staff = shared.second_staff
staff = shared.staff

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JOIN_TIMEOUT = 60


def race(*calls: Any) -> list[Any]:
    """Run each call in its own thread, released at once; return results or exceptions."""
    barrier = threading.Barrier(len(calls), timeout=JOIN_TIMEOUT)
    outcomes: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            outcomes[index] = calls[index]()
        except BaseException as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    return outcomes


@pytest.fixture
def approvals():
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    def receiver(sender: Any, **kwargs: Any) -> None:
        with lock:
            calls.append(kwargs)

    signals.eft_approved.connect(receiver, weak=False, dispatch_uid="test-eft-race")
    yield calls
    signals.eft_approved.disconnect(dispatch_uid="test-eft-race")


def test_two_staff_approving_at_once_give_one_approval(bank, staff, second_staff, approvals):
    payment = awaiting_payment(amount="250.00", currency="EUR")

    outcomes = race(
        lambda: approve_transfer(payment=payment.pk, user=staff),
        lambda: approve_transfer(payment=payment.pk, user=second_staff),
    )

    done = [o for o in outcomes if isinstance(o, BankTransfer)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(done) == 1, outcomes
    assert len(errors) == 1, outcomes
    assert isinstance(errors[0], InvalidTransition), errors
    assert "already approved by" in errors[0].message

    winner = done[0].decided_by
    transfer = BankTransfer.objects.get(payment_id=payment.pk)
    assert transfer.status == "approved"
    assert transfer.decided_by == winner
    fresh = Payment.objects.get(pk=payment.pk)
    assert fresh.status == "completed"
    assert fresh.captured_amount == Decimal("250.00")
    ledger = TransactionLog.objects.filter(payment_id=payment.pk)
    assert ledger.filter(kind="capture").count() == 1
    assert ledger.filter(kind="authorization").count() == 1
    assert len(approvals) == 1
    assert approvals[0]["approved_by"] == winner
    assert AuditLog.objects.filter(action="eft_approved", success=True).count() == 1
    assert AuditLog.objects.filter(action="eft_approved", success=False).count() == 1


def test_approve_and_reject_at_once_give_one_decision(bank, staff, second_staff, approvals):
    payment = awaiting_payment(amount="40.00", currency="EUR")

    outcomes = race(
        lambda: approve_transfer(payment=payment.pk, user=staff),
        lambda: reject_transfer(payment=payment.pk, user=second_staff, reason="not seen"),
    )

    done = [o for o in outcomes if isinstance(o, BankTransfer)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(done) == 1, outcomes
    assert len(errors) == 1, outcomes
    assert isinstance(errors[0], InvalidTransition), outcomes
    fresh = Payment.objects.get(pk=payment.pk)
    transfer = BankTransfer.objects.get(payment_id=payment.pk)
    if transfer.status == "approved":
        assert fresh.status == "completed"
        assert len(approvals) == 1
    else:
        assert transfer.status == "rejected"
        assert fresh.status == "failed"
        assert approvals == []
        assert not TransactionLog.objects.filter(payment_id=payment.pk, kind="capture").exists()
