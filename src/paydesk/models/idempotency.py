"""Keys of operations already done, for ``paydesk.security.idempotency``.

The primary key *is* the (scoped) key, so "first one wins" is decided by the database's
unique index in one INSERT, never by a check followed by a write.
"""

from __future__ import annotations

from django.db import models


class IdempotencyRecord(models.Model):
    key = models.CharField(primary_key=True, max_length=255)
    scope = models.CharField(max_length=100, blank=True, db_index=True)
    status = models.CharField(
        max_length=12,
        choices=[("started", "started"), ("done", "done")],
        default="started",
    )
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        app_label = "paydesk"

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"
