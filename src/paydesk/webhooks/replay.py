"""Replaying and cleaning up stored deliveries (the seed guide's ``WebhookReplayer``).

This module owns one decision: which stored deliveries an operator's replay touches.
``replay_failed`` takes failed and dead-lettered ones (by default ignoring their backoff: a
human asked; ``respect_backoff=True`` keeps to it, which ``replay_webhooks --failed`` does
unless given ``--no-backoff``),
``replay_pending`` those still waiting (pending, or abandoned by a dead worker), and
``process_due`` only what the retry schedule says is due (what the periodic task runs).
Every replay goes through ``process_webhook``, so replaying a delivery twice, or one that a
worker is processing right now, cannot apply it twice. Each call returns
``{"total", "success", "failed"}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..conf import paydesk_settings
from ..models import AbstractWebhookEvent, WebhookStatus
from ..services.webhooks import due_webhooks, process_webhook, webhook_model

__all__ = ["WebhookReplayer", "process_due"]

Handler = Callable[[AbstractWebhookEvent], Any]

_RETRYABLE = (WebhookStatus.FAILED, WebhookStatus.DEAD)


def _default_handler(delivery: AbstractWebhookEvent) -> bool:
    return bool(process_webhook(delivery=delivery, force=True).success)


def _run(deliveries: Iterable[AbstractWebhookEvent], handler: Handler | None) -> dict[str, int]:
    stats = {"total": 0, "success": 0, "failed": 0}
    for delivery in deliveries:
        stats["total"] += 1
        try:
            if handler is None:
                ok = _default_handler(delivery)
            else:
                outcome = handler(delivery)
                ok = True if outcome is None else bool(outcome)
                if ok and not delivery.success:
                    delivery.mark_success()
        except Exception as exc:  # a custom handler's failure is recorded like ours
            delivery.mark_failed(f"{type(exc).__name__}: {exc}")
            ok = False
        stats["success" if ok else "failed"] += 1
    return stats


class WebhookReplayer:
    def __init__(self, model: type[AbstractWebhookEvent] | None = None) -> None:
        self.model = model or webhook_model()

    def _failed(self, provider: str | None) -> QuerySet[AbstractWebhookEvent]:
        qs = self.model.objects.filter(status__in=_RETRYABLE).exclude(payload__isnull=True)
        return qs.filter(provider=provider) if provider else qs

    def replay_failed(
        self,
        handler: Handler | None = None,
        *,
        provider: str | None = None,
        limit: int | None = None,
        respect_backoff: bool = False,
    ) -> dict[str, int]:
        qs = self._failed(provider)
        if respect_backoff:
            now = timezone.now()
            qs = qs.filter(Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now))
        return _run(list(qs.order_by("created_at")[:limit]), handler)

    def replay_by_provider(self, name: str, handler: Handler | None = None) -> dict[str, int]:
        return self.replay_failed(handler, provider=name)

    def replay_pending(
        self,
        handler: Handler | None = None,
        *,
        provider: str | None = None,
        limit: int | None = None,
    ) -> dict[str, int]:
        now = timezone.now()
        qs = self.model.objects.filter(
            Q(status=WebhookStatus.PENDING)
            | Q(status=WebhookStatus.PROCESSING, lease_until__lte=now)
        )
        if provider:
            qs = qs.filter(provider=provider)
        return _run(list(qs.order_by("created_at")[:limit]), handler)

    def replay_ids(self, ids: Iterable[int], handler: Handler | None = None) -> dict[str, int]:
        return _run(list(self.model.objects.filter(pk__in=list(ids))), handler)

    def cleanup_old_events(
        self, days: int | None = None, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete *successfully handled* deliveries older than ``days``; failures stay."""
        days = int(days if days is not None else paydesk_settings.WEBHOOKS["RETENTION_DAYS"])
        cutoff = timezone.now() - dt.timedelta(days=days)
        qs = self.model.objects.filter(success=True, created_at__lt=cutoff)
        total = qs.count()
        if not dry_run and total:
            qs.delete()
        return {"total": total, "success": 0 if dry_run else total, "failed": 0}


def process_due(*, limit: int = 500) -> dict[str, int]:
    """Process deliveries the retry schedule says are due (the periodic task's job)."""
    due = list(due_webhooks().order_by("created_at")[:limit])
    stats = {"total": 0, "success": 0, "failed": 0}
    for delivery in due:
        stats["total"] += 1
        result = process_webhook(delivery=delivery)
        stats["success" if result.success else "failed"] += 1
    return stats
