"""Raw webhook deliveries, stored before they are trusted with anything.

Every delivery that passes the signature check is written here first (as dj-stripe does),
deduplicated on ``(provider, event_id)``, and only then processed. The row is the durable
record and the audit trail of the delivery: headers, raw body, client IP, signature, the
outcome of each processing attempt with its error and traceback, and when to try again.
Processing marks it ``processed``; a failure keeps it with ``next_retry_at`` until it
succeeds or ``dead_lettered`` says paydesk gave up (still visible, still replayable).

Projects that want their own table subclass ``AbstractWebhookEvent`` and name the model in
``PAYDESK["WEBHOOK_MODEL"]`` (``"app_label.ModelName"``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.utils import timezone


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "pending"
    PROCESSING = "processing", "processing"
    PROCESSED = "processed", "processed"
    IGNORED = "ignored", "ignored"  # verified and stored, but no handler for its type
    FAILED = "failed", "failed"  # will be retried at next_retry_at
    DEAD = "dead", "dead"  # gave up after the maximum attempts; replay by hand


class AbstractWebhookEvent(models.Model):
    provider = models.CharField(max_length=50)
    event_type = models.CharField(max_length=120, blank=True)
    event_id = models.CharField(max_length=255)
    payload = models.JSONField(null=True, blank=True)
    body = models.TextField(blank=True, help_text="The raw body, exactly as received")
    headers = models.JSONField(default=dict, blank=True)
    signature = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=WebhookStatus.choices, default=WebhookStatus.PENDING
    )
    processed = models.BooleanField(default=False)
    success = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=1, help_text="Times the provider sent it")
    next_retry_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    payment_id = models.CharField(max_length=40, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="%(app_label)s_%(class)s_unique_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id} ({self.status})"

    # The seed guide's API. Services use these; they save only the fields they touch.

    def mark_success(self, *, ignored: bool = False, payment_id: str | None = None) -> None:
        """Record a successful attempt (``payment_id``: the payment it was about, if any)."""
        now = timezone.now()
        fields = ["payment_id"] if payment_id is not None else []
        if payment_id is not None:
            self.payment_id = payment_id
        self.status = WebhookStatus.IGNORED if ignored else WebhookStatus.PROCESSED
        self.processed = True
        self.success = True
        self.error_message = ""
        self.traceback = ""
        self.next_retry_at = None
        self.lease_until = None
        self.processed_at = now
        self.save(
            update_fields=[
                *fields,
                "status",
                "processed",
                "success",
                "error_message",
                "traceback",
                "next_retry_at",
                "lease_until",
                "processed_at",
            ]
        )
        _count(self)

    def mark_failed(self, message: str, *, traceback: str = "", dead: bool = False) -> None:
        self.status = WebhookStatus.DEAD if dead else WebhookStatus.FAILED
        self.processed = dead
        self.success = False
        self.error_message = message[:10000]
        self.traceback = traceback[:50000]
        self.lease_until = None
        if dead:
            self.next_retry_at = None
        self.save(
            update_fields=[
                "status",
                "processed",
                "success",
                "error_message",
                "traceback",
                "lease_until",
                "next_retry_at",
            ]
        )
        _count(self)

    def schedule_retry(self, delay_seconds: float = 60) -> None:
        self.next_retry_at = timezone.now() + dt.timedelta(seconds=delay_seconds)
        self.save(update_fields=["next_retry_at"])

    @property
    def is_retryable(self) -> bool:
        return self.status in (WebhookStatus.PENDING, WebhookStatus.FAILED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "provider": self.provider,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "status": self.status,
            "attempts": self.attempts,
            "error_message": self.error_message,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "processed_at": self.processed_at.isoformat() if self.processed_at else None,
        }


class WebhookEvent(AbstractWebhookEvent):
    # Indexed in Meta.indexes, not with db_index: on PostgreSQL db_index=True on a CharField
    # also builds a second, varchar_pattern_ops index for LIKE / startswith, which no query
    # runs on payment_id; each accepted delivery paid for writing it (migration 0006).
    payment_id = models.CharField(max_length=40, blank=True)

    class Meta(AbstractWebhookEvent.Meta):
        app_label = "paydesk"
        ordering = ["-created_at"]
        # Every index a query needs, and nothing else: each one is written by every
        # accepted delivery. Besides these, the primary key (replay by id, the dashboard's
        # detail page) and the unique (provider, event_id) constraint (deduplication on
        # receipt, the dashboard's test delivery look-up).
        indexes = [
            # The drain and the retries: due_webhooks() (status = pending/failed/processing
            # with lease_until / next_retry_at), replay_failed/_pending (status IN ...).
            models.Index(fields=["status", "next_retry_at"], name="paydesk_wh_retry"),
            # The dashboard's delivery list filtered by provider, newest first.
            models.Index(fields=["provider", "-created_at"], name="paydesk_wh_provider"),
            # The dashboard's delivery list (newest first, paginated), the stats endpoint's
            # window (created_at >= since) and cleanup_webhooks (created_at < cutoff).
            models.Index(fields=["-created_at"], name="paydesk_wh_created"),
            # A payment's deliveries on its dashboard page (payment_id = ...).
            models.Index(fields=["payment_id"], name="paydesk_wh_payment"),
        ]


def _count(delivery: AbstractWebhookEvent) -> None:
    """Count an outcome in the webhook metrics (``paydesk.metrics``; a no-op without them)."""
    from .. import metrics  # imported on use: metrics is optional and imports django.http

    metrics.count_webhook(delivery.provider, delivery.status)
