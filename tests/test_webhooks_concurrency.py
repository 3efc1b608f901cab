"""Exactly once under concurrency and crashes.

* PostgreSQL, real threads: 50 simultaneous deliveries of one event apply it once.
* A worker that dies mid-processing leaves its lease to expire; replay (or the periodic
  retry) then completes the delivery, once. A live lease keeps everyone else away.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from paydesk import signals
from paydesk.models import Payment, WebhookEvent
from paydesk.providers.sandbox import SandboxProvider
from paydesk.providers.sandbox.webhooks import signed_delivery
from paydesk.services.webhooks import due_webhooks, process_webhook, receive_webhook
from paydesk.testing import SignalRecorder
from paydesk.webhooks.pipeline import WebhookRequest, handle
from paydesk.webhooks.replay import WebhookReplayer, process_due

from .test_webhooks_pipeline import (
    URL,
    awaiting_payment,
    fresh_cache,  # noqa: F401  (a fixture, used through usefixtures)
    ledger_kinds,
    paydesk_config,
    post,
    sandbox,
    succeeded_event,
)

pytestmark = pytest.mark.usefixtures("fresh_cache")

THREADS = 50
CONFIG = paydesk_config(security={"RATE_LIMIT_REQUESTS": 10_000})


# -- 50 deliveries at once (PostgreSQL) -------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(PAYDESK=CONFIG)
def test_fifty_simultaneous_deliveries_of_one_event_apply_it_once():
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    answers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    received: list[dict[str, Any]] = []

    def on_received(sender: Any, **kwargs: Any) -> None:
        with lock:
            received.append(kwargs)

    def send() -> None:
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = post(client, body, headers)
            with lock:
                statuses.append(response.status_code)
                answers.append(response.json()["status"])
        except BaseException as exc:  # reported below, never swallowed
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    signals.webhook_received.connect(on_received, weak=False, dispatch_uid="test-50")
    try:
        with SignalRecorder() as recorder:
            threads = [threading.Thread(target=send) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
    finally:
        signals.webhook_received.disconnect(dispatch_uid="test-50")

    assert not errors, errors
    assert len(statuses) == THREADS
    assert not [s for s in statuses if s >= 500], Counter(statuses)
    # One thread processed it; the others saw it done ("duplicate"), or still being
    # processed by that thread (202), which is a 2xx the provider does not retry.
    assert set(statuses) <= {200, 202}, Counter(statuses)
    assert Counter(answers)["processed"] >= 1
    assert set(answers) <= {"processed", "duplicate", "processing"}, Counter(answers)

    delivery = WebhookEvent.objects.get()
    assert delivery.status == "processed"
    assert delivery.attempts == 1
    # Every delivery is counted (an F() increment per repeat, after the unique index
    # refused its insert).
    assert delivery.deliveries == THREADS
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.status == "completed"
    kinds = ledger_kinds(payment)
    assert kinds.count("capture") == 1
    assert kinds.count("authorization") == 1
    assert kinds.count("webhook_received") == 1
    assert recorder.names.count("payment_confirmed") == 1
    assert len(received) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(PAYDESK=CONFIG)
def test_concurrent_replays_of_one_failed_delivery_apply_it_once(monkeypatch):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    with monkeypatch.context() as patch:
        patch.setattr(SandboxProvider, "parse_webhook", _killed_parse_as_error)
        handle(WebhookRequest(alias="sandbox", body=body, headers=headers, remote_addr=None))
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "failed"
    barrier = threading.Barrier(8)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def replay() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(WebhookReplayer().replay_ids([delivery.pk]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    with SignalRecorder() as recorder:
        threads = [threading.Thread(target=replay) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert not errors, errors
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    assert delivery.attempts == 2  # one failure, then exactly one successful claim
    assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1


def _killed_parse_as_error(self: Any, event: Any) -> Any:
    raise RuntimeError("handler bug")


# -- a worker killed mid-processing -----------------------------------------------------------


class WorkerKilled(BaseException):
    """What the process sees of SIGKILL: nothing after this point runs."""


def _killed(self: Any, event: Any) -> Any:
    raise WorkerKilled


def stored_pending(payment_charge: tuple[Any, Any] | None = None) -> tuple[Any, WebhookEvent]:
    payment, charge = payment_charge or awaiting_payment()
    provider = sandbox()
    body, headers = signed_delivery(provider, succeeded_event(charge))
    delivery, _ = receive_webhook(
        provider="sandbox",
        inbound=provider.verify_webhook(body, headers),
        body=body,
        headers=headers,
        ip_address="127.0.0.1",
    )
    return payment, delivery


def claimed_by_a_dead_worker(delivery: WebhookEvent) -> None:
    """What a worker's claim leaves behind when the worker dies and its lease runs out."""
    WebhookEvent.objects.filter(pk=delivery.pk).update(
        status="processing",
        attempts=1,
        lease_until=timezone.now() - dt.timedelta(seconds=1),
    )


@pytest.mark.django_db
@override_settings(PAYDESK=CONFIG)
def test_a_delivery_abandoned_by_a_dead_worker_is_completed_by_replay_pending_once(capsys):
    payment, delivery = stored_pending()
    claimed_by_a_dead_worker(delivery)

    call_command("replay_webhooks", "--pending")
    assert capsys.readouterr().out == "pending: 1 replayed, 1 succeeded, 0 failed\n"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.lease_until) == ("processed", 2, None)
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert ledger_kinds(payment).count("capture") == 1
    call_command("replay_webhooks", "--pending")
    assert capsys.readouterr().out.startswith("pending: 0 replayed")


@pytest.mark.django_db
@override_settings(PAYDESK=CONFIG)
def test_a_delivery_abandoned_by_a_dead_worker_is_completed_by_the_retry_schedule():
    payment, delivery = stored_pending()
    claimed_by_a_dead_worker(delivery)
    assert list(due_webhooks()) == [delivery]

    assert process_due() == {"total": 1, "success": 1, "failed": 0}
    assert process_due() == {"total": 0, "success": 0, "failed": 0}
    assert ledger_kinds(payment).count("capture") == 1


@pytest.mark.django_db
@override_settings(PAYDESK=CONFIG)
def test_a_worker_killed_before_the_effects_leaves_a_lease_that_expires(
    django_capture_on_commit_callbacks,
):
    payment, delivery = stored_pending()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SandboxProvider, "parse_webhook", _killed)
        with pytest.raises(WorkerKilled):
            process_webhook(delivery=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "processing"
    assert delivery.attempts == 1
    assert delivery.lease_until > timezone.now()  # the lease outlives the worker ...
    assert WebhookReplayer().replay_pending() == {"total": 0, "success": 0, "failed": 0}

    # ... until it expires.
    WebhookEvent.objects.filter(pk=delivery.pk).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    with SignalRecorder() as recorder, django_capture_on_commit_callbacks(execute=True):
        assert WebhookReplayer().replay_pending() == {"total": 1, "success": 1, "failed": 0}
    assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1


@pytest.mark.django_db
@override_settings(PAYDESK=CONFIG)
def test_a_worker_killed_after_the_effects_but_before_marking_done_applies_nothing_twice(
    django_capture_on_commit_callbacks,
):
    payment, delivery = stored_pending()
    model = type(delivery)

    def die(self: Any, **kwargs: Any) -> None:
        raise WorkerKilled

    with SignalRecorder() as recorder:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(model, "mark_success", die)
            with django_capture_on_commit_callbacks(execute=True), pytest.raises(WorkerKilled):
                process_webhook(delivery=delivery.pk)
        assert ledger_kinds(payment).count("capture") == 1  # the effect was committed
        delivery.refresh_from_db()
        assert delivery.status == "processing"
        WebhookEvent.objects.filter(pk=delivery.pk).update(
            lease_until=timezone.now() - dt.timedelta(seconds=1)
        )

        with django_capture_on_commit_callbacks(execute=True):
            assert process_due() == {"total": 1, "success": 1, "failed": 0}

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)
    kinds = ledger_kinds(payment)
    assert kinds.count("capture") == 1
    assert kinds.count("webhook_received") == 1
    assert recorder.names.count("payment_confirmed") == 1


@pytest.mark.django_db
@override_settings(PAYDESK=CONFIG)
def test_a_delivery_leased_by_a_live_worker_is_left_alone(client, capsys):
    payment, delivery = stored_pending()
    WebhookEvent.objects.filter(pk=delivery.pk).update(
        status="processing",
        attempts=1,
        lease_until=timezone.now() + dt.timedelta(minutes=4),
    )
    before = WebhookEvent.objects.values("status", "attempts", "lease_until").get()

    call_command("replay_webhooks", "--pending")
    assert capsys.readouterr().out.startswith("pending: 0 replayed")
    assert process_due() == {"total": 0, "success": 0, "failed": 0}
    WebhookReplayer().replay_ids([delivery.pk])  # asked for by id: still not taken over
    for force in (False, True):
        assert process_webhook(delivery=delivery.pk, force=force).status == "processing"
    # The provider's redelivery meanwhile is answered 202: accepted, in progress.
    body = delivery.body.encode()
    response = post(client, body, {"Paydesk-Sandbox-Signature": delivery.signature}, url=URL)
    assert response.status_code == 202
    assert response.json()["status"] == "processing"

    assert WebhookEvent.objects.values("status", "attempts", "lease_until").get() == before
    assert ledger_kinds(payment).count("capture") == 0
    payment.refresh_from_db()
    assert payment.status == "requires_action"


@pytest.mark.django_db
@pytest.mark.parametrize("upsert", [True, False], ids=["one-statement", "insert-then-read"])
@override_settings(PAYDESK=CONFIG)
def test_receive_stores_once_and_counts_resends_either_way(monkeypatch, upsert):
    from paydesk.services import webhooks as service

    if not upsert:  # what databases without INSERT ... ON CONFLICT ... RETURNING get
        monkeypatch.setattr(service, "_upsert_supported", lambda using: False)
    _, delivery = stored_pending()
    assert delivery.pk is not None
    assert delivery.deliveries == 1
    provider = sandbox()
    body, headers = signed_delivery(provider, delivery.payload)
    again, created = receive_webhook(
        provider="sandbox",
        inbound=provider.verify_webhook(body, headers),
        body=body,
        headers=headers,
        ip_address="127.0.0.1",
    )
    assert not created
    assert (again.pk, again.deliveries, again.status) == (delivery.pk, 2, "pending")
    assert again.payload == delivery.payload  # the stored row's, loaded when read
    assert WebhookEvent.objects.get().deliveries == 2
