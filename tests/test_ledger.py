"""The append-only ledger (``TransactionLog``) and ``services.ledger.append``.

What these tests prove: no code path can rewrite or delete a ledger row (instance ``save`` /
``delete`` and queryset ``update`` / ``delete`` all raise ``AppendOnlyError``, a
``PaydeskError``); the database refuses a second row with the same idempotency key for the
same payment but allows that key on another payment; ``append`` turns a duplicate into a
no-op that writes nothing; ``refresh`` caches the fold on the payment row.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from paydesk import services
from paydesk.exceptions import PaydeskError
from paydesk.models import Payment, TransactionLog
from paydesk.models.ledger import AppendOnlyError
from paydesk.services import ledger
from paydesk.states import LedgerFact, LedgerKind, PaymentStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment():
    return services.create_payment(amount="10.00", currency="USD", reference="order-1")


def test_append_only_error_is_a_paydesk_error():
    assert issubclass(AppendOnlyError, PaydeskError)
    assert AppendOnlyError("x").code == "ledger_append_only"


def test_create_payment_writes_one_created_entry(payment):
    entries = list(payment.ledger.all())
    assert len(entries) == 1
    entry = entries[0]
    assert entry.kind == LedgerKind.PAYMENT_CREATED
    assert entry.amount == Decimal("10.00")
    assert entry.currency == "USD"
    assert entry.attempt == 1
    assert entry.idempotency_key == "created"


def test_saving_an_existing_entry_raises_and_changes_nothing(payment):
    entry = payment.ledger.get()
    entry.amount = Decimal("999.00")
    entry.message = "rewritten"
    with pytest.raises(AppendOnlyError, match="append-only"):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.save(update_fields=["message"])
    fresh = TransactionLog.objects.get(pk=entry.pk)
    assert fresh.amount == Decimal("10.00")
    assert fresh.message == ""


def test_deleting_an_entry_raises(payment):
    entry = payment.ledger.get()
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        entry.delete()
    assert TransactionLog.objects.filter(pk=entry.pk).exists()


def test_queryset_update_raises(payment):
    with pytest.raises(AppendOnlyError):
        TransactionLog.objects.filter(payment=payment).update(amount=Decimal("1.00"))
    with pytest.raises(AppendOnlyError):
        TransactionLog.objects.all().update(message="x")
    with pytest.raises(AppendOnlyError):
        payment.ledger.update(message="x")
    assert payment.ledger.get().amount == Decimal("10.00")


def test_queryset_delete_raises(payment):
    with pytest.raises(AppendOnlyError):
        TransactionLog.objects.filter(payment=payment).delete()
    with pytest.raises(AppendOnlyError):
        TransactionLog.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        payment.ledger.all().delete()
    assert payment.ledger.count() == 1


def test_a_payment_with_ledger_entries_cannot_be_deleted(payment):
    # on_delete=PROTECT: deleting the payment would orphan (or cascade-delete) its history.
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError), transaction.atomic():
        payment.delete()
    assert Payment.objects.filter(pk=payment.pk).exists()
    assert payment.ledger.count() == 1


def _raw_entry(payment, key, kind=LedgerKind.NOTE):
    return TransactionLog.objects.create(
        payment=payment, kind=kind, currency=payment.currency, idempotency_key=key
    )


def test_duplicate_key_for_the_same_payment_is_refused_by_the_database(payment):
    _raw_entry(payment, "evt_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _raw_entry(payment, "evt_1")
    assert payment.ledger.filter(idempotency_key="evt_1").count() == 1


def test_same_key_on_another_payment_is_fine(payment):
    other = services.create_payment(amount="5.00", currency="USD")
    _raw_entry(payment, "evt_1")
    _raw_entry(other, "evt_1")
    assert TransactionLog.objects.filter(idempotency_key="evt_1").count() == 2
    # Both payments also hold their own "created" entry under the same key.
    assert TransactionLog.objects.filter(idempotency_key="created").count() == 2


def test_append_returns_the_entry_then_none_for_a_duplicate(payment):
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        first = ledger.append(
            locked,
            kind=LedgerKind.CAPTURE,
            key="capture:pi_1",
            amount=Decimal("10.00"),
            ref="pi_1",
            provider_data={"id": "pi_1"},
            message="via webhook",
        )
    assert isinstance(first, TransactionLog)
    assert first.pk is not None
    assert first.kind == LedgerKind.CAPTURE
    assert first.amount == Decimal("10.00")
    assert first.ref == "pi_1"
    assert first.currency == "USD"
    assert first.attempt == 1
    assert first.provider_data == {"id": "pi_1"}
    before = TransactionLog.objects.count()

    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        again = ledger.append(
            locked,
            kind=LedgerKind.CAPTURE,
            key="capture:pi_1",
            amount=Decimal("99.00"),  # a different body under the same key changes nothing
            ref="pi_1",
            message="via sync",
        )
    assert again is None
    assert TransactionLog.objects.count() == before
    stored = payment.ledger.get(idempotency_key="capture:pi_1")
    assert stored.amount == Decimal("10.00")
    assert stored.message == "via webhook"


def test_append_uses_the_payments_attempt_unless_told(payment):
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        locked.attempt = 3
        default = ledger.append(locked, kind=LedgerKind.NOTE, key="n1")
        explicit = ledger.append(locked, kind=LedgerKind.NOTE, key="n2", attempt=2)
    assert default.attempt == 3
    assert explicit.attempt == 2


def test_append_inside_an_outer_transaction_keeps_it_usable(payment):
    # A duplicate must not poison the caller's transaction (PostgreSQL aborts a
    # transaction after an error unless a savepoint wraps it).
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        assert ledger.append(locked, kind=LedgerKind.NOTE, key="created") is None
        entry = ledger.append(locked, kind=LedgerKind.NOTE, key="after-duplicate")
        assert entry is not None
    assert payment.ledger.filter(idempotency_key="after-duplicate").exists()


def test_refresh_caches_the_fold_on_the_payment(payment):
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        ledger.append(
            locked, kind=LedgerKind.AUTHORIZATION, key="a", amount=Decimal("10.00"), ref="pi"
        )
        ledger.append(locked, kind=LedgerKind.CAPTURE, key="c", amount=Decimal("10.00"), ref="pi")
        ledger.append(
            locked,
            kind=LedgerKind.REFUND_REQUESTED,
            key="r",
            amount=Decimal("4.00"),
            ref="re_1",
        )
        state = ledger.refresh(locked)
    assert state.status == PaymentStatus.COMPLETED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.authorized_amount == Decimal("10.00")
    assert payment.captured_amount == Decimal("10.00")
    assert payment.refunded_amount == 0
    assert payment.refund_reserved_amount == Decimal("4.00")
    assert payment.refundable_amount == Decimal("6.00")
    assert payment.processed_at is not None


def test_facts_reads_what_the_fold_needs(payment):
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        ledger.append(
            locked,
            kind=LedgerKind.CAPTURE,
            key="capture:pi_1",
            amount=Decimal("10.00"),
            ref="pi_1",
            attempt=2,
        )
    facts = payment.ledger.order_by("id").facts()
    assert facts == [
        LedgerFact(kind=LedgerKind.PAYMENT_CREATED, key="created", attempt=1, amount=Decimal("10")),
        LedgerFact(
            kind=LedgerKind.CAPTURE, key="capture:pi_1", attempt=2, amount=Decimal("10"), ref="pi_1"
        ),
    ]
    assert all(isinstance(f.kind, LedgerKind) for f in facts)


def test_locked_payment_of_an_unknown_id_is_a_validation_error():
    from paydesk.exceptions import PaymentValidationError

    with pytest.raises(PaymentValidationError) as info, transaction.atomic():
        ledger.locked_payment("pay_missing")
    assert info.value.code == "not_found"
    assert info.value.field == "payment"
    assert "pay_missing" in info.value.message
