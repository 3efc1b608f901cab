"""The pipeline through a real task worker: ``django_tasks_db`` and ``manage.py db_worker``.

With ``WEBHOOKS["PROCESS"] = "task"`` and the database backend, the endpoint answers 202 as
soon as the delivery is stored; the stored ``pending`` row is the queue, and a coalesced
``drain_webhooks_task`` (at most one per ``DRAIN_INTERVAL`` per process) runs it. Nothing is
applied until a worker runs the task. The same test runs on Django 6 (``django.tasks``) and
5.2 (the ``django-tasks`` backport): ``db_worker`` comes from ``django_tasks_db`` on both.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from paydesk.models import WebhookEvent
from paydesk.providers.sandbox import SandboxProvider
from paydesk.providers.sandbox.webhooks import signed_delivery

from .test_webhooks_pipeline import (
    awaiting_payment,
    fresh_cache,  # noqa: F401  (a fixture, used through usefixtures)
    ledger_kinds,
    paydesk_config,
    post,
    sandbox,
    succeeded_event,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_cache")]

# DRAIN_INTERVAL 0: a drain per delivery, due at once, so `db_worker --batch` runs each.
WORKER = paydesk_config(webhooks={"PROCESS": "task", "DRAIN_INTERVAL": 0}, TASK_BACKEND="db")
COALESCING = paydesk_config(webhooks={"PROCESS": "task", "DRAIN_INTERVAL": 60}, TASK_BACKEND="db")


def run_worker() -> str:
    """Run every queued task of the "db" backend, then return (as ``db_worker --batch``)."""
    out = StringIO()
    call_command(
        "db_worker", "--batch", "--backend", "db", "--no-startup-delay", stdout=out, stderr=out
    )
    return out.getvalue()


def queued_tasks() -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status="READY").count()


def deferred_tasks() -> int:
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()  # (a task without run_after is stored with the largest date)
    return DBTaskResult.objects.filter(
        status="READY", run_after__gt=now, run_after__lt=now + dt.timedelta(days=1)
    ).count()


@override_settings(PAYDESK=WORKER)
def test_a_delivery_waits_for_the_worker_then_is_processed_once(client, recorder):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))

    response = post(client, body, headers)

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    delivery = WebhookEvent.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert queued_tasks() == 1

    run_worker()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.success, delivery.attempts) == ("processed", True, 1)
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1  # on commit, in the worker
    assert queued_tasks() == 0

    # The provider's redelivery is a duplicate, answered at once and not enqueued again.
    again = post(client, body, headers)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert queued_tasks() == 0


@override_settings(PAYDESK=WORKER)
def test_repeats_before_the_worker_runs_are_applied_once(client, recorder):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    answers = [post(client, body, headers).status_code for _ in range(3)]
    assert answers == [202, 202, 202]
    assert queued_tasks() == 3  # a drain per delivery (DRAIN_INTERVAL 0); processing decides

    run_worker()

    delivery = WebhookEvent.objects.get()
    assert (delivery.status, delivery.attempts, delivery.deliveries) == ("processed", 1, 3)
    assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1


@override_settings(PAYDESK=WORKER)
def test_a_task_that_fails_leaves_the_delivery_failed_and_scheduled(client, monkeypatch):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    assert post(client, body, headers).status_code == 202

    def broken(self, event):
        raise RuntimeError("handler bug")

    monkeypatch.setattr(SandboxProvider, "parse_webhook", broken)
    run_worker()

    delivery = WebhookEvent.objects.get()
    assert delivery.status == "failed"
    assert delivery.error_message == "RuntimeError: handler bug"
    assert delivery.next_retry_at is not None
    assert ledger_kinds(payment).count("capture") == 0

    # The provider redelivers after the fix: enqueued again, processed by the worker.
    monkeypatch.undo()
    post(client, body, headers)  # the answer: see the next test
    assert queued_tasks() == 1
    run_worker()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)
    assert ledger_kinds(payment).count("capture") == 1


@override_settings(PAYDESK=WORKER)
def test_a_queued_redelivery_of_a_failed_delivery_is_answered_202(client, monkeypatch):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    assert post(client, body, headers).status_code == 202
    with monkeypatch.context() as patch:
        patch.setattr(SandboxProvider, "parse_webhook", lambda self, event: 1 / 0)
        run_worker()
    assert WebhookEvent.objects.get().status == "failed"

    response = post(client, body, headers)

    assert queued_tasks() == 1
    assert response.status_code == 202  # accepted and queued, like the first delivery


@override_settings(PAYDESK=COALESCING)
def test_deliveries_share_a_drain_and_no_task_row_is_written_per_delivery(client, recorder):
    stored = [awaiting_payment() for _ in range(4)]
    for _, charge in stored:
        body, headers = signed_delivery(sandbox(), succeeded_event(charge))
        assert post(client, body, headers).status_code == 202

    # The first delivery after a quiet spell enqueues a drain due at once; the second one a
    # drain due DRAIN_INTERVAL later (the first may already be running); the rest are
    # covered by that one, which cannot start before they were stored.
    assert (queued_tasks(), deferred_tasks()) == (2, 1)
    assert WebhookEvent.objects.filter(status="pending").count() == 4

    run_worker()  # runs the drain that is due: it takes every pending delivery

    assert WebhookEvent.objects.filter(status="processed", attempts=1).count() == 4
    for payment, _ in stored:
        payment.refresh_from_db()
        assert payment.status == "completed"
        assert ledger_kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 4
    assert recorder.names.count("webhook_received") == 4
    assert (queued_tasks(), deferred_tasks()) == (1, 1)  # the later drain will find nothing


@override_settings(PAYDESK=COALESCING)
def test_a_redelivered_failure_is_due_again_for_the_next_drain(client, monkeypatch):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    assert post(client, body, headers).status_code == 202
    with monkeypatch.context() as patch:
        patch.setattr(SandboxProvider, "parse_webhook", lambda self, event: 1 / 0)
        run_worker()
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "failed"
    assert delivery.next_retry_at > timezone.now()  # the backoff's time

    assert post(client, body, headers).status_code == 202

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.next_retry_at <= timezone.now()  # due now: the redelivery is a new chance
    from paydesk.tasks import drain_webhooks_task

    drain_webhooks_task.call()  # what the drain queued for DRAIN_INTERVAL later will do
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)
    assert ledger_kinds(payment).count("capture") == 1


@override_settings(PAYDESK=COALESCING)
def test_concurrent_drains_take_different_deliveries(client):
    from paydesk.services.webhooks import drain_webhooks

    stored = [awaiting_payment() for _ in range(3)]
    for _, charge in stored:
        post(client, *signed_delivery(sandbox(), succeeded_event(charge)))
    assert drain_webhooks(limit=2) == {"total": 2, "success": 2, "failed": 0}
    assert drain_webhooks(limit=2) == {"total": 1, "success": 1, "failed": 0}
    assert drain_webhooks() == {"total": 0, "success": 0, "failed": 0}
    assert WebhookEvent.objects.filter(status="processed", attempts=1).count() == 3
