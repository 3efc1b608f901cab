"""Reconciliation: stuck payments and refunds settled from the provider's truth, drift reported,
payments given up on after the final timeout, nothing written in a dry run."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from paydesk import services
from paydesk.conf import paydesk_settings
from paydesk.exceptions import ConfigurationError, InvalidTransition, ProviderUnavailable
from paydesk.models import Payment, Refund, TransactionLog
from paydesk.money import Money
from paydesk.providers.registry import get_payment_provider
from paydesk.services.reconcile import (
    ProviderRefund,
    RefundLister,
    RefundStatusReader,
    expire_payment,
    reconcile,
)
from paydesk.testing import MockPaymentProvider
from paydesk.types import Capability, PaymentResult, ProviderStatus, RefundRequest, RefundResult
from paydesk.types import StatusRequest as StatusRequestType

pytestmark = pytest.mark.django_db
HERE = "tests.test_reconcile"
LATER = dt.timedelta(hours=1)  # past the 30-minute threshold
MUCH_LATER = dt.timedelta(days=4)  # past the 72-hour final timeout


class ReadingMock(MockPaymentProvider):
    """A mock provider that can also report a refund's status and list a payment's refunds."""

    refund_answer = RefundResult(status="completed", provider_refund_id="re_provider_1")
    listed: list[ProviderRefund] = []

    def get_refund_status(self, request: RefundRequest) -> RefundResult:
        self._enter("get_refund_status", request)
        return self.refund_answer

    def list_payment_refunds(self, request: StatusRequestType) -> Sequence[ProviderRefund]:
        self._enter("list_payment_refunds", request)
        return list(self.listed)


class NoSyncMock(MockPaymentProvider):
    capabilities = MockPaymentProvider.capabilities - {Capability.SYNC}


@contextmanager
def provider(backend: str = "paydesk.testing.MockPaymentProvider", **extra: Any) -> Iterator[Any]:
    """Configure ``backend`` as alias "mock" (besides the sandbox) and yield its instance."""
    config = dict(paydesk_settings.user_settings)
    config["PROVIDERS"] = {
        **paydesk_settings.PROVIDERS,
        "mock": {"BACKEND": backend, "OPTIONS": {}},
    }
    config.update(extra)
    with override_settings(PAYDESK=config):
        yield get_payment_provider("mock")


@pytest.fixture
def mock() -> Iterator[MockPaymentProvider]:
    with provider() as instance:
        yield instance


def stuck(mock: MockPaymentProvider, status: str = "processing", amount: str = "100.00") -> Payment:
    """A payment the provider answered ``status`` for, and nothing more since."""
    payment = services.create_payment(amount=amount, currency="USD", provider="mock")
    mock.set_next_result(ProviderStatus(status))
    payment = services.process_payment(payment=payment)
    assert payment.status == status
    return payment


def captured(payment: Payment, amount: str | None = None) -> PaymentResult:
    money = Money(amount or payment.amount, payment.currency)
    return PaymentResult(
        status=ProviderStatus.CAPTURED,
        provider_payment_id=payment.provider_payment_id,
        amount_authorized=money,
        amount_captured=money,
        raw={"status": "succeeded"},
    )


def ledger_rows() -> int:
    return TransactionLog.objects.count()


def kinds(payment: Payment) -> list[str]:
    return list(payment.ledger.order_by("id").values_list("kind", flat=True))


# -- payments -------------------------------------------------------------------------------


def test_a_missed_capture_is_recorded_through_sync(
    mock, recorder, django_capture_on_commit_callbacks
):
    payment = stuck(mock)
    mock.set_next_result(captured(payment))

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    payment.refresh_from_db()
    assert payment.status == "completed"
    assert kinds(payment).count("capture") == 1
    assert report.payments_checked == 1
    (drift,) = report.drift
    assert (drift.kind, drift.ours, drift.theirs, drift.fixed) == (
        "status",
        "processing",
        "captured",
        True,
    )
    assert "payment_confirmed" in recorder.names
    assert report.to_dict()["drift"][0]["payment_id"] == payment.pk
    json.dumps(report.to_dict())  # a task can return it


def test_a_dry_run_asks_but_writes_nothing(mock):
    payment = stuck(mock)
    mock.set_next_result(captured(payment))
    before = ledger_rows()

    report = reconcile(now=timezone.now() + MUCH_LATER, dry_run=True)

    assert ledger_rows() == before
    payment.refresh_from_db()
    assert payment.status == "processing"
    (drift,) = report.drift
    assert (drift.kind, drift.fixed) == ("status", False)
    assert report.lines()[0].startswith("DRY RUN: nothing was changed.")


def test_recent_payments_are_left_alone(mock):
    payment = stuck(mock)
    mock.set_next_result(captured(payment))
    report = reconcile()  # created just now: younger than the threshold
    assert report.payments_checked == 0
    assert mock.get_call_count("get_payment_status") == 0


def test_a_payment_in_agreement_reports_nothing(mock):
    stuck(mock, "requires_action")
    report = reconcile(now=timezone.now() + LATER)
    assert report.payments_checked == 1
    assert report.clean
    assert report.lines() == [
        "Checked 1 payments and 0 refunds unsettled for more than 0:30:00; 0 findings."
    ]


def test_an_amount_difference_is_reported(mock, django_capture_on_commit_callbacks):
    payment = stuck(mock)
    mock.set_next_result(captured(payment, "80.00"))
    dry = reconcile(now=timezone.now() + LATER, dry_run=True)
    assert [(d.kind, d.ours, d.theirs) for d in dry.drift] == [
        ("status", "processing", "captured"),
        ("amount", "asked 100.00 USD", "captured 80.00 USD"),
        ("amount", "asked 100.00 USD", "authorized 80.00 USD"),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    payment.refresh_from_db()
    assert (payment.status, payment.captured_amount) == ("completed", Money("80.00", "USD").amount)
    amount = [d for d in report.drift if d.kind == "amount"]
    assert [(d.ours, d.theirs) for d in amount] == [
        ("asked 100.00 USD", "captured 80.00 USD"),
        ("asked 100.00 USD", "authorized 80.00 USD"),
    ]


def test_a_submission_the_provider_never_received_fails(mock, django_capture_on_commit_callbacks):
    payment = services.create_payment(amount="5.00", currency="USD", provider="mock")
    mock.set_exception("provider_unavailable")
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment)
    payment.refresh_from_db()
    assert payment.status == "processing"  # outcome unknown

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + LATER)

    payment.refresh_from_db()
    assert payment.status == "failed"
    (drift,) = report.drift
    assert (drift.kind, drift.theirs, drift.fixed) == ("status", "not_found", True)


def test_a_provider_error_is_reported_and_never_expires_the_payment(mock):
    payment = stuck(mock)
    mock.set_exception("provider_unavailable", "Mock API is down")
    before = ledger_rows()

    report = reconcile(now=timezone.now() + MUCH_LATER)

    payment.refresh_from_db()
    assert payment.status == "processing"
    assert ledger_rows() == before
    (drift,) = report.drift
    assert (drift.kind, drift.detail) == ("error", "Mock API is down")
    assert report.errors == [drift]


# -- the final timeout ------------------------------------------------------------------------


def test_a_payment_stuck_past_the_final_timeout_is_marked_failed(
    mock, recorder, django_capture_on_commit_callbacks
):
    payment = stuck(mock, "requires_action")

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(now=timezone.now() + MUCH_LATER)

    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "payment_expired"
    assert report.expired == [payment.pk]
    (drift,) = report.drift
    assert (drift.kind, drift.ours, drift.theirs, drift.fixed) == (
        "expired",
        "requires_action",
        "failed",
        True,
    )
    entry = payment.ledger.get(kind="payment_failed")
    assert "marked failed by reconciliation" in entry.message
    assert entry.provider_data["reconcile"] is True
    assert recorder.names[-1] == "payment_failed"
    # The customer may try again: a failed payment can be retried.
    assert services.retry_payment(payment=payment).status == "completed"


def test_a_late_capture_still_wins_over_an_expiry(mock, django_capture_on_commit_callbacks):
    payment = stuck(mock, "requires_action")
    with django_capture_on_commit_callbacks(execute=True):
        reconcile(now=timezone.now() + MUCH_LATER)
    mock.set_next_result(captured(payment))

    services.sync_payment(payment=payment)

    payment.refresh_from_db()
    assert payment.status == "completed"


def test_a_dry_run_past_the_final_timeout_expires_nothing(mock):
    payment = stuck(mock, "requires_action")
    before = ledger_rows()
    report = reconcile(now=timezone.now() + MUCH_LATER, dry_run=True)
    assert ledger_rows() == before
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert [(d.kind, d.fixed) for d in report.drift] == [("expired", False)]


def test_a_payment_never_submitted_expires_without_asking(mock):
    payment = services.create_payment(amount="5.00", currency="USD", provider="mock")
    report = reconcile(now=timezone.now() + MUCH_LATER)
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert report.expired == [payment.pk]
    assert mock.get_call_count() == 0


def test_the_final_status_is_configurable_per_alias():
    config = {"RECONCILE": {"FINAL_STATUS": {"mock": "cancelled"}}}
    with provider(**config) as mock:
        payment = stuck(mock, "requires_action")
        reconcile(now=timezone.now() + MUCH_LATER)
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    note = payment.ledger.get(kind="note")
    assert "marked cancelled by reconciliation" in note.message
    assert kinds(payment)[-2:] == ["note", "cancellation"]


def test_a_provider_can_be_exempt_from_the_final_timeout():
    with provider(RECONCILE={"FINAL_STATUS": {"mock": None}}) as mock:
        payment = stuck(mock, "requires_action")
        report = reconcile(now=timezone.now() + MUCH_LATER)
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert report.clean


def test_an_invalid_final_status_is_a_configuration_error():
    with provider(RECONCILE={"FINAL_STATUS": {"mock": "expired"}}) as mock:
        stuck(mock, "requires_action")
        with pytest.raises(ConfigurationError, match="FINAL_STATUS"):
            reconcile(now=timezone.now() + MUCH_LATER)


def test_bank_transfers_are_left_to_their_own_expiry(tmp_path):
    config = dict(paydesk_settings.user_settings)
    config["PROVIDERS"] = {
        **paydesk_settings.PROVIDERS,
        "eft": {
            "BACKEND": "paydesk.providers.bank_transfer.BankTransferProvider",
            "OPTIONS": {"IBAN": "TR330006100519786457841326", "ACCOUNT_HOLDER": "Shop Ltd"},
        },
    }
    with override_settings(PAYDESK=config):
        from paydesk.services.reconcile import final_status_for

        assert final_status_for(get_payment_provider("eft"), "eft") is None
        assert final_status_for(get_payment_provider("sandbox"), "sandbox") == "failed"


def test_the_final_timeout_counts_from_the_current_attempt(mock):
    payment = stuck(mock, "requires_action")
    # The attempt started "now"; four days later it is past the timeout, but not one hour later.
    assert reconcile(now=timezone.now() + LATER).clean
    payment.refresh_from_db()
    assert payment.status == "requires_action"


def test_a_provider_that_cannot_sync_is_reported_then_expired():
    with provider(f"{HERE}.NoSyncMock") as mock:
        payment = stuck(mock)
        checked = reconcile(now=timezone.now() + LATER)
        expired = reconcile(now=timezone.now() + MUCH_LATER)
    assert [d.kind for d in checked.drift] == ["not_checked"]
    assert [d.kind for d in expired.drift] == ["not_checked", "expired"]
    payment.refresh_from_db()
    assert payment.status == "failed"


def test_only_one_provider_can_be_reconciled(mock):
    stuck(mock)
    assert reconcile(now=timezone.now() + LATER, provider="sandbox").payments_checked == 0
    assert reconcile(now=timezone.now() + LATER, provider="mock").payments_checked == 1


def test_a_final_timeout_shorter_than_the_threshold_is_refused():
    with pytest.raises(ConfigurationError, match="shorter than the threshold"):
        reconcile(older_than=dt.timedelta(hours=2), final_timeout=dt.timedelta(hours=1))


def test_expire_payment_leaves_a_settled_payment_alone(mock):
    payment = services.process_payment(
        payment=services.create_payment(amount="5.00", currency="USD", provider="mock")
    )
    before = ledger_rows()
    assert expire_payment(payment=payment, reason="late").status == "completed"
    assert ledger_rows() == before
    with pytest.raises(InvalidTransition):
        expire_payment(payment=payment, reason="late", status="refunded")


# -- refunds --------------------------------------------------------------------------------


def refund_in_flight(mock: MockPaymentProvider) -> tuple[Payment, Refund]:
    payment = services.process_payment(
        payment=services.create_payment(amount="50.00", currency="USD", provider="mock")
    )
    mock.set_exception("provider_unavailable")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="20.00")
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "pending"
    return payment, refund


def test_a_refund_in_flight_is_reported_when_the_provider_cannot_tell(mock):
    _payment, refund = refund_in_flight(mock)

    report = reconcile(now=timezone.now() + LATER)

    assert report.refunds_checked == 1
    (drift,) = report.drift
    assert (drift.kind, drift.refund_id, drift.fixed) == ("not_checked", refund.pk, False)
    assert drift.detail.startswith("last attempt: provider_unavailable;")
    assert report.notes == [
        "mock: refund lists not checked (the provider cannot list a payment's refunds)"
    ]


def test_a_refund_in_flight_is_settled_from_the_provider(django_capture_on_commit_callbacks):
    with provider(f"{HERE}.ReadingMock") as mock:
        payment, refund = refund_in_flight(mock)
        ReadingMock.listed = [
            ProviderRefund("re_provider_1", Money("20.00", "USD"), "completed", refund.pk)
        ]
        assert isinstance(mock, RefundStatusReader)
        assert isinstance(mock, RefundLister)
        dry = reconcile(now=timezone.now() + LATER, dry_run=True)
        with django_capture_on_commit_callbacks(execute=True):
            report = reconcile(now=timezone.now() + LATER)

    assert [(d.kind, d.fixed) for d in dry.drift] == [("refund_status", False)]
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert (refund.status, refund.provider_refund_id) == ("completed", "re_provider_1")
    assert payment.status == "partially_refunded"
    assert [(d.kind, d.ours, d.theirs, d.fixed) for d in report.drift] == [
        ("refund_status", "pending", "completed", True)
    ]
    request = mock.calls[-2][1]  # get_refund_status sent process_refund's key
    assert request.idempotency_key == f"paydesk:{refund.pk}:refund"


def test_refund_lists_show_what_one_side_lacks(django_capture_on_commit_callbacks):
    with provider(f"{HERE}.ReadingMock"):
        payment = services.process_payment(
            payment=services.create_payment(amount="50.00", currency="USD", provider="mock")
        )
        with django_capture_on_commit_callbacks(execute=True):
            ours = services.create_refund(payment=payment, amount="10.00")
        ReadingMock.listed = [
            ProviderRefund("re_dashboard", Money("15.00", "USD"), "completed"),
        ]
        report = reconcile(now=timezone.now() + LATER)
        ReadingMock.listed = [
            ProviderRefund(ours.provider_refund_id, Money("12.00", "USD"), "completed"),
        ]
        amounts = reconcile(now=timezone.now() + LATER)
    ReadingMock.listed = []

    assert [(d.kind, d.theirs or d.ours) for d in report.drift] == [
        ("refund_missing_here", "re_dashboard 15.00 USD"),
        ("refund_missing_at_provider", "completed 10.00 USD"),
    ]
    assert [(d.kind, d.ours, d.theirs) for d in amounts.drift] == [
        ("refund_amount", "10.00 USD", "12.00 USD")
    ]
    assert report.notes == []


# -- the command ------------------------------------------------------------------------------


def test_the_command_prints_the_drift_report(mock):
    payment = stuck(mock, "requires_action")
    out = StringIO()
    call_command("reconcile_payments", "--older-than", "0", "--dry-run", stdout=out)
    text = out.getvalue()
    assert text.startswith("DRY RUN: nothing was changed. Checked 1 payments")
    payment.refresh_from_db()
    assert payment.status == "requires_action"

    out = StringIO()
    call_command(
        "reconcile_payments", "--older-than", "0", "--final-timeout", "0", "--json", stdout=out
    )
    data = json.loads(out.getvalue())
    assert [d["kind"] for d in data["drift"]] == ["expired"]
    payment.refresh_from_db()
    assert payment.status == "failed"


def test_the_command_can_fail_on_drift_for_monitoring(mock):
    payment = stuck(mock)
    mock.set_next_result(captured(payment))
    with pytest.raises(CommandError, match="1 finding") as excinfo:
        call_command(
            "reconcile_payments", "--older-than", "0", "--fail-on-drift", stdout=StringIO()
        )
    assert excinfo.value.returncode == 1
    call_command("reconcile_payments", "--older-than", "0", "--fail-on-drift", stdout=StringIO())


def test_the_command_reports_a_bad_configuration():
    with pytest.raises(CommandError, match="shorter than the threshold"):
        call_command(
            "reconcile_payments", "--older-than", "120", "--final-timeout", "1", stdout=StringIO()
        )
