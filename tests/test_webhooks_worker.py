"""The pipeline through a real task worker: ``django_tasks_db`` and ``manage.py db_worker``.

With ``WEBHOOKS["PROCESS"] = "task"`` and the database backend, the endpoint answers 202 as
soon as the delivery is stored and enqueued; nothing is applied until a worker runs the
task. The same test runs on Django 6 (``django.tasks``) and 5.2 (the ``django-tasks``
backport): ``db_worker`` comes from ``django_tasks_db`` on both.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

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

WORKER = paydesk_config(webhooks={"PROCESS": "task"}, TASK_BACKEND="db")


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
    assert queued_tasks() == 3  # each delivery is enqueued; processing decides

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
