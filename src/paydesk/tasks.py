"""Background work, as Django Tasks.

This module owns one decision: which work leaves the request and how it is enqueued.
``django.tasks`` on Django 6, the ``django-tasks`` backport on Django 5.2; the backend is
``PAYDESK["TASK_BACKEND"]`` (an alias in Django's ``TASKS`` setting). With the immediate
backend (the demo's) a task runs before ``enqueue`` returns; with a database, RQ or Celery
backend a worker runs it. Tasks take ids, never model instances, and are idempotent, so a
backend that runs one twice changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # pragma: no cover - exercised by the Django 5.2 run
    from django_tasks import task  # type: ignore[no-redef]

from .conf import paydesk_settings

__all__ = ["enqueue_webhook", "process_webhook_task", "retry_due_webhooks_task"]


@task()
def process_webhook_task(delivery_id: int, force: bool = False) -> str:
    from .services.webhooks import process_webhook

    return str(process_webhook(delivery=delivery_id, force=force).status)


@task()
def retry_due_webhooks_task(limit: int = 500) -> dict[str, int]:
    """Process every delivery that is due (failed and past its retry time, or abandoned)."""
    from .webhooks.replay import process_due

    return process_due(limit=limit)


def enqueue_webhook(delivery_id: int, *, force: bool = False) -> Any:
    backend = paydesk_settings.TASK_BACKEND
    return process_webhook_task.using(backend=backend).enqueue(delivery_id, force)
