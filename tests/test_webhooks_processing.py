"""Processing a stored delivery: exactly once, failures kept and retried, effects on the ledger.

Duplicates are answered 2xx and applied once; a failing handler answers 5xx (so the provider
redelivers), keeps the error and traceback and schedules a retry with exponential backoff,
then dead-letters; out-of-order, refund and dispute events land in the ledger once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from paydesk import services, signals
from paydesk.models import Refund, TransactionLog, WebhookEvent
from paydesk.providers.sandbox import SandboxProvider
from paydesk.providers.sandbox.webhooks import build_event, charge_snapshot, signed_delivery
from paydesk.services.webhooks import process_webhook, retry_delay
from paydesk.webhooks.pipeline import WebhookRequest, handle

from .test_webhooks_pipeline import (
    awaiting_payment,
    charge_event,
    completed_payment,
    fresh_cache,  # noqa: F401  (a fixture, used through usefixtures)
    ledger_kinds,
    paydesk_config,
    post,
    sandbox,
    succeeded_event,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

CONFIG = paydesk_config()


class Received:
    """Records ``webhook_received`` as it is sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **kwargs})


@pytest.fixture
def received() -> Iterator[Received]:
    receiver = Received()
    signals.webhook_received.connect(receiver, weak=False, dispatch_uid="test-webhook-received")
    yield receiver
    signals.webhook_received.disconnect(dispatch_uid="test-webhook-received")


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a delivery and run what its transaction queued on commit (signals), as a real
    request's commit would; the test's own transaction never commits."""

    def _deliver(body: bytes, headers: Any, **meta: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return post(client, body, headers, **meta)

    return _deliver


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run ``fn(*args, **kwargs)`` and then its on-commit callbacks."""

    def _committed(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return _committed


def missing_payment_event(event_type: str = "payment.succeeded") -> dict[str, Any]:
    """An event about a payment paydesk has never heard of: its handler raises."""
    return build_event(
        event_type,
        {
            "id": "pi_sb_doesnotexist",
            "payment_id": "pay_doesnotexist",
            "amount": "10.00",
            "captured_amount": "10.00",
            "currency": "USD",
            "status": "captured",
        },
    )


def _broken_parse(self: Any, event: Any) -> Any:
    raise RuntimeError("handler bug")


# -- duplicates -------------------------------------------------------------------------------


@override_settings(PAYDESK=CONFIG)
def test_a_duplicate_of_a_processed_delivery_is_answered_200_and_applied_once(
    client, recorder, received, django_capture_on_commit_callbacks
):
    payment, charge = awaiting_payment()
    event = succeeded_event(charge)
    body, headers = signed_delivery(sandbox(), event)

    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, body, headers)
    with django_capture_on_commit_callbacks(execute=True):
        second = post(client, body, headers)
        third = post(client, body, headers)

    assert first.json() == {"status": "processed", "id": event["id"]}
    for response in (second, third):
        assert response.status_code == 200
        assert response.json() == {"status": "duplicate", "id": event["id"]}
    delivery = WebhookEvent.objects.get()
    assert (delivery.deliveries, delivery.attempts) == (3, 1)
    kinds = ledger_kinds(payment)
    assert kinds.count("capture") == 1
    assert kinds.count("webhook_received") == 1
    assert recorder.names.count("payment_confirmed") == 1
    assert len(received.calls) == 1


@override_settings(PAYDESK=CONFIG)
def test_the_same_news_in_two_events_is_applied_once(client, recorder):
    # Providers send the same state change under different event ids (e.g. a retry of
    # their own, or two event types): the ledger keys, not the event ids, decide.
    payment, charge = awaiting_payment()
    first = succeeded_event(charge)
    second = build_event("payment.succeeded", charge_snapshot(charge))
    for event in (first, second):
        assert post(client, *signed_delivery(sandbox(), event)).status_code == 200
    kinds = ledger_kinds(payment)
    assert kinds.count("capture") == 1
    assert kinds.count("webhook_received") == 2  # each delivery is noted
    assert WebhookEvent.objects.filter(status="processed").count() == 2


@override_settings(PAYDESK=CONFIG)
def test_the_api_answer_and_the_webhook_are_one_ledger_fact(deliver, committed, recorder):
    payment, charge = committed(completed_payment)
    response = deliver(*signed_delivery(sandbox(), succeeded_event(charge)))
    assert response.json()["status"] == "processed"
    assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1  # from the API answer only


# -- failures ---------------------------------------------------------------------------------


@override_settings(PAYDESK=CONFIG)
def test_a_handler_that_raises_is_stored_failed_with_its_traceback_and_answered_500(
    client, received, django_capture_on_commit_callbacks
):
    event = missing_payment_event()
    body, headers = signed_delivery(sandbox(), event)
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, headers)

    assert response.status_code == 500
    assert response.json()["status"] == "failed"
    assert "retried" in response.json()["message"]
    delivery = WebhookEvent.objects.get()
    assert (delivery.status, delivery.processed, delivery.success) == ("failed", False, False)
    assert delivery.attempts == 1
    assert "WebhookError" in delivery.error_message
    assert "pay_doesnotexist" in delivery.error_message
    assert delivery.traceback.startswith("Traceback")
    assert "_find_payment" in delivery.traceback
    assert delivery.lease_until is None
    assert delivery.processed_at is None
    # Backoff: RETRY_BASE_DELAY (30 s) after the first failure.
    assert delivery.next_retry_at is not None
    delay = (delivery.next_retry_at - before).total_seconds()
    assert 30 <= delay <= 35
    assert received.calls == []  # a failure is not "received" news


@override_settings(PAYDESK=CONFIG)
def test_a_raising_parser_is_stored_failed_and_a_redelivery_after_the_fix_applies_once(
    client, deliver, monkeypatch, recorder
):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    monkeypatch.setattr(SandboxProvider, "parse_webhook", _broken_parse)

    failed = post(client, body, headers)
    assert failed.status_code == 500
    delivery = WebhookEvent.objects.get()
    assert delivery.error_message == "RuntimeError: handler bug"
    assert "RuntimeError: handler bug" in delivery.traceback
    assert ledger_kinds(payment).count("capture") == 0

    # Still broken: the provider's redelivery fails again, with a longer backoff.
    assert post(client, body, headers).status_code == 500
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.deliveries) == ("failed", 2, 2)
    delay = (delivery.next_retry_at - timezone.now()).total_seconds()
    assert 55 <= delay <= 60

    # Fixed: the next redelivery is NOT a duplicate; it is processed, once.
    monkeypatch.undo()
    fixed = deliver(body, headers)
    assert fixed.status_code == 200
    assert fixed.json()["status"] == "processed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.deliveries) == ("processed", 3, 3)
    assert delivery.error_message == ""
    assert delivery.traceback == ""
    assert delivery.next_retry_at is None
    assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1
    assert post(client, body, headers).json()["status"] == "duplicate"
    assert ledger_kinds(payment).count("capture") == 1


@override_settings(PAYDESK=CONFIG)
def test_an_event_that_arrives_before_its_payment_is_retried_until_it_exists(client):
    # A webhook can beat the commit of the payment it is about; it must not be lost.
    payment, charge = awaiting_payment()
    event = succeeded_event(charge)
    real_ref = event["data"]["object"]["payment_id"]
    event["data"]["object"]["payment_id"] = "pay_notyet"
    event["data"]["object"]["id"] = "pi_sb_notyet"
    body, headers = signed_delivery(sandbox(), event)
    assert post(client, body, headers).status_code == 500

    # The payment now exists under those ids.
    type(payment).objects.filter(pk=real_ref).update(provider_payment_id="pi_sb_notyet")
    result = process_webhook(delivery=WebhookEvent.objects.get().pk)
    assert result.status == "processed"
    payment.refresh_from_db()
    assert payment.status == "completed"


def test_the_retry_schedule_doubles_and_is_capped():
    with override_settings(
        PAYDESK=paydesk_config(webhooks={"RETRY_BASE_DELAY": 30, "RETRY_MAX_DELAY": 200})
    ):
        assert [retry_delay(n) for n in range(1, 7)] == [30, 60, 120, 200, 200, 200]
    with override_settings(PAYDESK=CONFIG):
        assert retry_delay(1) == 30
        assert retry_delay(9) == 30 * 2**8
        assert retry_delay(20) == 6 * 3600  # the default cap


@override_settings(PAYDESK=paydesk_config(webhooks={"MAX_ATTEMPTS": 3}))
def test_a_delivery_is_dead_lettered_after_the_maximum_attempts_and_stays_visible(
    client, monkeypatch
):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    monkeypatch.setattr(SandboxProvider, "parse_webhook", _broken_parse)

    answers = [post(client, body, headers).status_code for _ in range(3)]

    assert answers == [500, 500, 500]
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "dead"
    assert (delivery.processed, delivery.success) == (True, False)
    assert delivery.attempts == 3
    assert delivery.next_retry_at is None
    assert delivery.error_message == "RuntimeError: handler bug"
    assert delivery.traceback
    assert post(client, body, headers).json()["status"] == "dead"  # tried again, still broken

    # The retry schedule leaves it alone ...
    from paydesk.services.webhooks import due_webhooks

    assert not due_webhooks().filter(pk=delivery.pk).exists()
    # ... but a provider's redelivery after the fix is a fresh chance.
    monkeypatch.undo()
    response = post(client, body, headers)
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    assert ledger_kinds(payment).count("capture") == 1


@override_settings(PAYDESK=CONFIG)
def test_webhook_received_is_sent_once_after_commit(
    client, received, django_capture_on_commit_callbacks
):
    _payment, charge = awaiting_payment()
    event = succeeded_event(charge)
    body, headers = signed_delivery(sandbox(), event)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert post(client, body, headers).status_code == 200
        assert received.calls == []  # not before the transaction commits
    for callback in callbacks:
        callback()

    assert len(received.calls) == 1
    call = received.calls[0]
    assert call["sender"] is WebhookEvent
    assert call["provider"] == "sandbox"
    assert call["event_type"] == "payment.succeeded"
    assert call["result"] == "processed"
    assert call["payload"] == event
    assert call["delivery"].pk == WebhookEvent.objects.get().pk
    assert "payment" not in call


@override_settings(PAYDESK=CONFIG)
def test_webhook_received_says_ignored_for_an_event_paydesk_does_not_act_on(
    client, received, django_capture_on_commit_callbacks
):
    _, charge = awaiting_payment()
    event = build_event("charge.note_added", charge_snapshot(charge))
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, *signed_delivery(sandbox(), event)).status_code == 200
    assert [c["result"] for c in received.calls] == ["ignored"]


@override_settings(PAYDESK=CONFIG)
def test_an_unknown_event_of_any_shape_is_ignored_not_failed(client):
    for event in (
        build_event("customer.created", {"id": "cus_1", "email": "a@example.com"}),
        {"id": "evt_bare", "type": "account.updated"},
    ):
        response = post(client, *signed_delivery(sandbox(), event))
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "ignored"


# -- order and effects ------------------------------------------------------------------------


@override_settings(PAYDESK=CONFIG)
@pytest.mark.parametrize(
    ("late_status", "late_type"),
    [("requires_action", "payment.requires_action"), ("failed", "payment.failed")],
)
def test_an_older_event_arriving_after_success_leaves_the_payment_completed(
    deliver, recorder, late_status, late_type
):
    payment, charge = awaiting_payment()
    succeeded = succeeded_event(charge)
    older = charge_event(charge, late_status, late_type)

    for event in (succeeded, older):
        assert deliver(*signed_delivery(sandbox(), event)).status_code == 200

    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("10.00")
    assert payment.next_action is None
    assert recorder.names.count("payment_confirmed") == 1
    assert "payment_failed" not in recorder.names
    assert "payment_requires_action" not in recorder.names


@override_settings(PAYDESK=CONFIG)
def test_a_late_failure_event_leaves_no_failure_code_on_a_completed_payment(client):
    payment, charge = awaiting_payment()
    succeeded = succeeded_event(charge)
    failed = charge_event(charge, "failed", "payment.failed")
    for event in (succeeded, failed):
        assert post(client, *signed_delivery(sandbox(), event)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert (payment.failure_code, payment.failure_message) == ("", "")


@override_settings(PAYDESK=CONFIG)
def test_events_in_order_drive_the_payment_through_its_lifecycle(client, recorder):
    payment, charge = awaiting_payment()
    authorized = charge_event(charge, "authorized", "payment.authorized")
    assert post(client, *signed_delivery(sandbox(), authorized)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "authorized"
    captured = charge_event(charge, "captured", "payment.captured")
    assert post(client, *signed_delivery(sandbox(), captured)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "completed"


def _refund_event(charge: Any, *, provider_refund_id: str, amount: str, refund_id: str = "") -> Any:
    charge.refunded_amount = charge.refunded_amount + Decimal(amount)
    charge.save()
    record = {
        "id": provider_refund_id,
        "amount": amount,
        "currency": "USD",
        "reason": "requested_by_customer",
        "status": "succeeded",
    }
    return build_event(
        "refund.succeeded", charge_snapshot(charge), refund=record, refund_id=refund_id
    )


@override_settings(PAYDESK=CONFIG)
def test_refund_succeeded_completes_a_refund_paydesk_initiated_once(deliver, recorder):
    payment, charge = completed_payment()
    refund = services.create_refund(payment=payment, amount="4.00", process=False)
    assert refund.status == "pending"
    event = _refund_event(charge, provider_refund_id="re_sb_1", amount="4.00", refund_id=refund.pk)
    body, headers = signed_delivery(sandbox(), event)

    assert deliver(body, headers).json()["status"] == "processed"
    assert deliver(body, headers).json()["status"] == "duplicate"
    # The same refund reported again under a new event id.
    data = {k: v for k, v in event["data"].items() if k != "object"}
    again = build_event("refund.succeeded", event["data"]["object"], **data)
    assert deliver(*signed_delivery(sandbox(), again)).json()["status"] == "processed"

    refund.refresh_from_db()
    assert refund.status == "completed"
    assert refund.provider_refund_id == "re_sb_1"
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Decimal("4.00")
    assert payment.refund_reserved_amount == Decimal(0)
    assert ledger_kinds(payment).count("refund_completed") == 1
    assert Refund.objects.count() == 1
    assert recorder.names.count("payment_refunded") == 1


@override_settings(PAYDESK=CONFIG)
def test_a_refund_webhook_after_the_api_answer_changes_nothing(deliver, committed, recorder):
    payment, charge = completed_payment()
    refund = committed(services.create_refund, payment=payment, amount="10.00")
    assert refund.status == "completed"
    charge.refresh_from_db()
    record = next(iter(charge.refunds.values()))
    event = build_event(
        "refund.succeeded", charge_snapshot(charge), refund=record, refund_id=refund.pk
    )
    assert deliver(*signed_delivery(sandbox(), event)).json()["status"] == "processed"
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert payment.refunded_amount == Decimal("10.00")
    assert ledger_kinds(payment).count("refund_completed") == 1
    assert recorder.names.count("payment_refunded") == 1


@override_settings(PAYDESK=paydesk_config(options={"WEBHOOK_DELIVERY": "inprocess"}))
def test_the_sandbox_delivers_its_own_refund_event_through_the_pipeline(
    django_capture_on_commit_callbacks, recorder
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="10.00", currency="USD")
        payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.create_refund(payment=payment, amount="3.00")
    assert refund.status == "completed"
    types = list(WebhookEvent.objects.order_by("id").values_list("event_type", "status"))
    assert types == [("payment.succeeded", "processed"), ("refund.succeeded", "processed")]
    assert ledger_kinds(payment).count("refund_completed") == 1
    assert recorder.names.count("payment_refunded") == 1


@override_settings(PAYDESK=CONFIG)
def test_a_refund_made_at_the_provider_is_recorded_as_an_external_refund_once(deliver, recorder):
    payment, charge = completed_payment()
    event = _refund_event(charge, provider_refund_id="re_dashboard_1", amount="2.50")
    assert deliver(*signed_delivery(sandbox(), event)).json()["status"] == "processed"
    # The provider reports the same refund again under a new event id.
    again = build_event("refund.succeeded", event["data"]["object"], refund=event["data"]["refund"])
    assert deliver(*signed_delivery(sandbox(), again)).json()["status"] == "processed"

    refund = Refund.objects.get()
    assert refund.provider_refund_id == "re_dashboard_1"
    assert refund.amount == Decimal("2.50")
    assert refund.status == "completed"
    assert refund.reason == "requested_by_customer"
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Decimal("2.50")
    assert ledger_kinds(payment).count("refund_requested") == 1
    assert ledger_kinds(payment).count("refund_completed") == 1
    assert recorder.names.count("payment_refunded") == 1


@override_settings(PAYDESK=CONFIG)
def test_dispute_events_append_dispute_ledger_entries_once(client):
    payment, charge = completed_payment()
    dispute = {"id": "dp_sb_1", "amount": "10.00", "reason": "fraudulent"}
    opened = build_event("dispute.created", charge_snapshot(charge), dispute=dispute)
    opened_again = build_event("dispute.created", charge_snapshot(charge), dispute=dispute)
    closed = build_event("dispute.closed", charge_snapshot(charge), dispute=dispute)

    for event in (opened, opened_again):
        assert post(client, *signed_delivery(sandbox(), event)).json()["status"] == "processed"
    entry = TransactionLog.objects.get(payment=payment, kind="dispute_opened")
    assert (entry.amount, entry.ref, entry.message) == (Decimal("10.00"), "dp_sb_1", "fraudulent")
    assert post(client, *signed_delivery(sandbox(), closed)).json()["status"] == "processed"

    kinds = ledger_kinds(payment)
    assert kinds.count("dispute_opened") == 1
    assert kinds.count("dispute_closed") == 1
    payment.refresh_from_db()
    assert payment.status == "completed"  # a dispute is news, not a refund
    assert WebhookEvent.objects.filter(payment_id=payment.pk).count() == 3


# -- inline or as a task ----------------------------------------------------------------------


@override_settings(PAYDESK=paydesk_config(webhooks={"PROCESS": "task"}))
def test_with_the_immediate_task_backend_the_delivery_is_processed_before_the_answer(
    deliver, recorder
):
    payment, charge = awaiting_payment()
    response = deliver(*signed_delivery(sandbox(), succeeded_event(charge)))
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert recorder.names.count("payment_confirmed") == 1


@override_settings(PAYDESK=paydesk_config(webhooks={"PROCESS": "task"}))
def test_a_failing_task_is_answered_500_too(client):
    response = post(client, *signed_delivery(sandbox(), missing_payment_event()))
    assert response.status_code == 500
    assert WebhookEvent.objects.get().status == "failed"


@override_settings(PAYDESK=CONFIG)
def test_the_pipeline_can_be_driven_without_http():
    # The sandbox's in-process delivery and host projects' own views call handle() directly.
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    result = handle(WebhookRequest(alias="sandbox", body=body, headers=headers, remote_addr=None))
    assert result.status == 200
    assert WebhookEvent.objects.get().ip_address is None
    payment.refresh_from_db()
    assert payment.status == "completed"


@override_settings(PAYDESK=CONFIG)
def test_process_webhook_leaves_a_handled_delivery_alone():
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    handle(WebhookRequest(alias="sandbox", body=body, headers=headers, remote_addr=None))
    delivery = WebhookEvent.objects.get()
    for force in (False, True):
        again = process_webhook(delivery=delivery, force=force)
        assert (again.status, again.attempts) == ("processed", 1)
    assert ledger_kinds(payment).count("capture") == 1
    assert delivery.processed_at is not None
    assert timezone.now() - delivery.processed_at < dt.timedelta(minutes=1)
