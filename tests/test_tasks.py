"""paydesk.tasks: queues and priorities, enqueue on commit, the reconcile task end to end.

Routing is decided at enqueue time against ``PAYDESK["TASK_BACKEND"]``: the ``paydesk`` queue
when the backend lists it, else ``default``; the priority where the backend supports one.
The database-backed worker (``django_tasks_db``'s ``db_worker``) runs the reconcile task as a
production worker would, on Django 6 (``django.tasks``) and 5.2 (the backport).
"""

from __future__ import annotations

import datetime as dt
from io import StringIO

import django
import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from paydesk import services, tasks
from paydesk.conf import paydesk_settings
from paydesk.models import Payment
from paydesk.testing import MockPaymentProvider
from paydesk.types import ProviderStatus

if django.VERSION >= (6, 0):
    IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
    DUMMY = "django_tasks.backends.dummy.DummyBackend"
DB = "django_tasks_db.DatabaseBackend"


def tasks_setting(**backends: dict) -> dict:
    return {"default": {"BACKEND": IMMEDIATE}, **backends}


def on_backend(alias: str) -> dict:
    return {**paydesk_settings.user_settings, "TASK_BACKEND": alias}


def test_every_task_has_a_priority():
    defined = {
        name
        for name, value in vars(tasks).items()
        if type(value).__name__ == "Task" and value.func.__module__ == "paydesk.tasks"
    }
    assert {"process_webhook_task", "retry_due_webhooks_task", "reconcile_payments_task"} <= (
        defined
    )
    assert defined <= set(tasks.ROUTES)
    assert tasks.ROUTES["process_webhook_task"] > tasks.ROUTES["reconcile_payments_task"]


def test_tasks_go_to_the_default_queue_unless_the_backend_lists_paydesk():
    # tests.settings' immediate backend lists no queues beyond "default".
    routed = tasks.routed(tasks.process_webhook_task)
    assert (routed.queue_name, routed.priority, routed.backend) == ("default", 20, "default")

    with (
        override_settings(TASKS=tasks_setting(ops={"BACKEND": IMMEDIATE, "QUEUES": []})),
        override_settings(PAYDESK=on_backend("ops")),
    ):
        any_queue = tasks.routed(tasks.reconcile_payments_task)
    with (
        override_settings(
            TASKS=tasks_setting(ops={"BACKEND": IMMEDIATE, "QUEUES": ["default", "paydesk"]})
        ),
        override_settings(PAYDESK=on_backend("ops")),
    ):
        listed = tasks.routed(tasks.retry_due_webhooks_task)
    assert (any_queue.queue_name, any_queue.priority, any_queue.backend) == ("paydesk", -20, "ops")
    assert (listed.queue_name, listed.priority) == ("paydesk", 0)


def test_a_backend_without_priorities_gets_the_default_priority(monkeypatch):
    from paydesk.tasks import task_backends

    backend = task_backends["default"]
    monkeypatch.setattr(type(backend), "supports_priority", False)
    assert tasks.routed(tasks.process_webhook_task).priority == 0


def test_deferred_tasks_carry_run_after():
    later = timezone.now() + dt.timedelta(minutes=5)
    with (
        override_settings(TASKS=tasks_setting(dummy={"BACKEND": DUMMY})),
        override_settings(PAYDESK=on_backend("dummy")),
    ):
        result = tasks.enqueue(tasks.reconcile_payments_task, dry_run=True, run_after=later)
    assert result.task.run_after == later
    assert result.task.queue_name == "default"  # the dummy backend lists only "default"
    assert result.status == "READY"


@pytest.fixture
def mock():
    from paydesk.testing import mock_provider

    with mock_provider("mock") as instance:
        yield instance


def stuck_payment(mock: MockPaymentProvider) -> Payment:
    payment = services.create_payment(amount="9.00", currency="USD", provider="mock")
    mock.set_next_result(ProviderStatus.REQUIRES_ACTION)
    return services.process_payment(payment=payment)


@pytest.mark.django_db
def test_the_reconcile_task_runs_on_the_immediate_backend(mock):
    payment = stuck_payment(mock)

    result = tasks.enqueue(
        tasks.reconcile_payments_task, older_than_minutes=0, final_timeout_hours=0
    )

    assert result.status == "SUCCESSFUL"
    report = result.return_value
    assert [d["kind"] for d in report["drift"]] == ["expired"]
    payment.refresh_from_db()
    assert payment.status == "failed"


@pytest.mark.django_db
def test_enqueue_on_commit_waits_for_the_commit(mock, django_capture_on_commit_callbacks):
    payment = stuck_payment(mock)
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        tasks.enqueue_reconcile(older_than_minutes=0, final_timeout_hours=0)
        payment.refresh_from_db()
        assert payment.status == "requires_action"  # not run inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    payment.refresh_from_db()
    assert payment.status == "failed"


@pytest.mark.django_db
def test_a_rolled_back_transaction_enqueues_nothing(mock, django_capture_on_commit_callbacks):
    def rolled_back() -> None:
        with transaction.atomic():
            tasks.enqueue_reconcile()
            raise RuntimeError("rolled back")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        rolled_back()
    assert callbacks == []


@pytest.mark.django_db
def test_the_command_can_enqueue_instead_of_running(mock, django_capture_on_commit_callbacks):
    payment = stuck_payment(mock)
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):  # enqueued on commit
        call_command(
            "reconcile_payments",
            "--enqueue",
            "--older-than",
            "0",
            "--final-timeout",
            "0",
            stdout=out,
        )
    assert "enqueued paydesk.tasks.reconcile_payments_task" in out.getvalue()
    payment.refresh_from_db()
    assert payment.status == "failed"  # the immediate backend ran it


# -- the database-backed worker ---------------------------------------------------------------

WORKER_TASKS = tasks_setting(ops_db={"BACKEND": DB, "QUEUES": ["default", "paydesk"]})


def run_worker(queue: str) -> str:
    out = StringIO()
    call_command(
        "db_worker",
        "--batch",
        "--backend",
        "ops_db",
        "--queue-name",
        queue,
        "--no-startup-delay",
        stdout=out,
        stderr=out,
    )
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_reconcile_task_runs_through_the_database_worker():
    from django_tasks_db.models import DBTaskResult

    from paydesk.testing import mock_provider

    with (
        override_settings(TASKS=WORKER_TASKS),
        override_settings(PAYDESK=on_backend("ops_db")),
        mock_provider("mock") as mock,
    ):
        payment = stuck_payment(mock)
        with transaction.atomic():
            tasks.enqueue_reconcile(older_than_minutes=0, final_timeout_hours=0)
            assert DBTaskResult.objects.count() == 0  # enqueued on commit, not before
        queued = DBTaskResult.objects.get()
        assert (queued.queue_name, queued.priority, queued.status) == ("paydesk", -20, "READY")
        payment.refresh_from_db()
        assert payment.status == "requires_action"  # nothing runs without a worker

        run_worker("default")  # a worker on another queue leaves it alone
        queued.refresh_from_db()
        assert queued.status == "READY"

        run_worker("paydesk")

        queued.refresh_from_db()
        assert queued.status == "SUCCESSFUL", queued.traceback
        assert [d["kind"] for d in queued.return_value["drift"]] == ["expired"]
        payment.refresh_from_db()
        assert payment.status == "failed"
        assert payment.failure_code == "payment_expired"


@pytest.mark.django_db(transaction=True)
def test_webhook_tasks_use_the_paydesk_queue_on_the_worker():
    from django_tasks_db.models import DBTaskResult

    with override_settings(TASKS=WORKER_TASKS), override_settings(PAYDESK=on_backend("ops_db")):
        tasks.enqueue_webhook(123456)
        queued = DBTaskResult.objects.get()
        assert (queued.queue_name, queued.priority) == ("paydesk", 20)
        # The database backend can defer tasks: deliveries are drained from their own table.
        assert queued.task_path == "paydesk.tasks.drain_webhooks_task"
