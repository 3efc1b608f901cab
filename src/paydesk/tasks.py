"""Background work, as Django Tasks.

This module owns one decision: which work leaves the request and how it is enqueued.
``django.tasks`` on Django 6, the ``django-tasks`` backport on Django 5.2; the backend is
``PAYDESK["TASK_BACKEND"]`` (an alias in Django's ``TASKS`` setting). With the immediate
backend (the demo's) a task runs before ``enqueue`` returns; with a database, RQ or Celery
backend a worker runs it. Tasks take ids, never model instances, and are idempotent, so a
backend that runs one twice changes nothing the second time.

Every task has a queue and a priority (``ROUTES``), applied when it is enqueued through
``enqueue`` / ``enqueue_on_commit`` rather than in ``@task()``: Django validates a task's queue
and priority against a backend when the task is *defined*, and a host project whose
``TASKS`` lists no ``"paydesk"`` queue (or whose backend has no priorities) must still be
able to import this module. So a task goes to the ``"paydesk"`` queue when the backend lists
it in ``QUEUES`` (give it a worker: ``db_worker --queue-name paydesk``), else to
``"default"``; its priority is used where the backend supports priorities.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

try:  # Django >= 6.0
    from django.tasks import DEFAULT_TASK_QUEUE_NAME, task, task_backends
except ImportError:  # pragma: no cover - exercised by the Django 5.2 run
    from django_tasks import (  # type: ignore[no-redef,assignment]
        DEFAULT_TASK_QUEUE_NAME,
        task,
        task_backends,
    )

from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from .conf import paydesk_settings

__all__ = [
    "QUEUE",
    "ROUTES",
    "drain_webhooks_task",
    "enqueue",
    "enqueue_auto_refunds",
    "enqueue_on_commit",
    "enqueue_reconcile",
    "enqueue_webhook",
    "process_webhook_task",
    "reconcile_payments_task",
    "retry_due_webhooks_task",
    "run_auto_refunds_task",
]


@task()
def process_webhook_task(delivery_id: int, force: bool = False) -> str:
    from .services.webhooks import process_webhook

    return str(process_webhook(delivery=delivery_id, force=force).status)


@task()
def retry_due_webhooks_task(limit: int = 500) -> dict[str, int]:
    """Process every delivery that is due (failed and past its retry time, or abandoned)."""
    from .webhooks.replay import process_due

    return process_due(limit=limit)


@task()
def drain_webhooks_task(limit: int = 500) -> dict[str, int]:
    """Process every due delivery (the stored ``pending`` rows are the queue), oldest first.

    Enqueued by ``enqueue_webhook``, coalesced: at most one per ``DRAIN_INTERVAL`` per
    process. A drain that stops at ``limit`` enqueues another for the rest.
    """
    from .services.webhooks import drain_webhooks

    stats = drain_webhooks(limit=limit)
    if stats["total"] >= limit:
        enqueue(drain_webhooks_task, limit)
    return stats


# Per process and task backend alias: the run_after of the last drain this process enqueued.
_drains: dict[str, dt.datetime] = {}
_drains_lock = threading.Lock()


def enqueue_webhook(delivery_id: int, *, force: bool = False) -> Any:
    """Have a stored (committed) delivery processed by the task backend.

    On a backend that can defer tasks (database, RQ, Celery) the delivery's ``pending`` row
    is the queue: this makes sure a ``drain_webhooks_task`` will start after now, enqueuing
    one only when the last one this process enqueued may already have started, and then
    with ``run_after`` at least ``DRAIN_INTERVAL`` after that one's. So a busy process
    writes one task row per interval, not one per delivery, and a delivery waits at most
    about one interval longer for its worker. ``force`` is not carried: a failed or dead
    delivery that is due again says so in its row (``rearm_redelivery``).

    A backend that cannot defer (the immediate one) runs ``process_webhook_task`` for this
    delivery, as before. Returns the task result, or ``None`` when a drain already queued
    covers the delivery.
    """
    if not drains_deliveries():
        return enqueue(process_webhook_task, delivery_id, force)
    return schedule_drain()


def drains_deliveries() -> bool:
    """Whether ``enqueue_webhook`` coalesces into drains (the backend can defer tasks)."""
    return bool(getattr(task_backends[paydesk_settings.TASK_BACKEND], "supports_defer", False))


def schedule_drain() -> Any:
    """Make sure a ``drain_webhooks_task`` starts after now (see ``enqueue_webhook``)."""
    alias = paydesk_settings.TASK_BACKEND
    interval = float(paydesk_settings.WEBHOOKS.get("DRAIN_INTERVAL") or 0)
    now = timezone.now()
    with _drains_lock:
        last = _drains.get(alias)
        if interval > 0 and last is not None and last > now:
            return None  # a drain not due before `last` will find what is stored now
        due = now if last is None else max(now, last + dt.timedelta(seconds=interval))
        _drains[alias] = due
    try:
        return enqueue(drain_webhooks_task, run_after=due if due > now else None)
    except BaseException:
        with _drains_lock:  # nothing was queued: the next delivery must try again
            if _drains.get(alias) == due:
                if last is None:
                    _drains.pop(alias, None)
                else:
                    _drains[alias] = last
        raise


@receiver(setting_changed)
def _forget_drains(*, setting: str, **kwargs: Any) -> None:
    if setting in ("PAYDESK", "TASKS"):
        with _drains_lock:
            _drains.clear()


@task()
def reconcile_payments_task(
    older_than_minutes: float | None = None,
    final_timeout_hours: float | None = None,
    provider: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Run ``paydesk.services.reconcile.reconcile``; return its report as a dict.

    Enqueue it periodically (cron, a scheduler) with ``enqueue_reconcile()`` or run
    ``manage.py reconcile_payments --enqueue``; ``None`` arguments use ``PAYDESK["RECONCILE"]``.
    """
    import datetime as dt

    from .services.reconcile import reconcile

    report = reconcile(
        older_than=(
            dt.timedelta(minutes=older_than_minutes) if older_than_minutes is not None else None
        ),
        final_timeout=(
            dt.timedelta(hours=final_timeout_hours) if final_timeout_hours is not None else None
        ),
        provider=provider or None,
        dry_run=dry_run,
    )
    return report.to_dict()


#: The queue paydesk's tasks go to when the backend lists it in ``QUEUES``.
QUEUE = "paydesk"

#: Priority of each task (-100 lowest .. 100 highest): a customer is waiting on a webhook's
#: effect; retries of failed deliveries less so; reconciliation is housekeeping.
ROUTES: dict[str, int] = {
    "process_webhook_task": 20,
    "drain_webhooks_task": 20,
    "retry_due_webhooks_task": 0,
    "reconcile_payments_task": -20,
    "run_auto_refunds_task": -10,
}


def routed(task_obj: Any, *, run_after: Any = None) -> Any:
    """``task_obj`` on ``PAYDESK["TASK_BACKEND"]`` with paydesk's queue and its priority."""
    alias = paydesk_settings.TASK_BACKEND
    backend = task_backends[alias]
    queues = getattr(backend, "queues", None) or set()
    queue = QUEUE if not queues or QUEUE in queues else DEFAULT_TASK_QUEUE_NAME
    priority = ROUTES.get(task_obj.name, 0) if getattr(backend, "supports_priority", False) else 0
    return task_obj.using(backend=alias, queue_name=queue, priority=priority, run_after=run_after)


def enqueue(task_obj: Any, *args: Any, run_after: Any = None, **kwargs: Any) -> Any:
    """Enqueue ``task_obj`` now, routed (``routed``); ``run_after`` defers it (an aware
    datetime; backends that cannot defer refuse it)."""
    return routed(task_obj, run_after=run_after).enqueue(*args, **kwargs)


def enqueue_on_commit(task_obj: Any, *args: Any, run_after: Any = None, **kwargs: Any) -> None:
    """Enqueue ``task_obj`` once the current transaction commits (at once if none is open),
    so that a worker never runs it before the rows it reads exist, and a rolled-back change
    enqueues nothing."""
    transaction.on_commit(
        lambda: enqueue(task_obj, *args, run_after=run_after, **kwargs), robust=False
    )


def enqueue_reconcile(
    *,
    older_than_minutes: float | None = None,
    final_timeout_hours: float | None = None,
    provider: str | None = None,
    dry_run: bool = False,
) -> None:
    """Enqueue ``reconcile_payments_task`` on commit (what a scheduler or cron calls)."""
    enqueue_on_commit(
        reconcile_payments_task,
        older_than_minutes=older_than_minutes,
        final_timeout_hours=final_timeout_hours,
        provider=provider,
        dry_run=dry_run,
    )


@task()
def run_auto_refunds_task(rules: list[str] | None = None) -> dict[str, Any]:
    """Run the automatic refund rules (``paydesk.services.autorefunds``); idempotent, so a
    backend that runs it twice refunds nothing twice."""
    from .services.autorefunds import run_auto_refunds

    return run_auto_refunds(rules=rules).as_dict()


def enqueue_auto_refunds(*, rules: list[str] | None = None) -> None:
    """Enqueue ``run_auto_refunds_task`` on commit: from a scheduler, or right after what
    makes payments refundable (an event cancelled), for the rules named (default: all)."""
    enqueue_on_commit(run_auto_refunds_task, list(rules) if rules else None)
