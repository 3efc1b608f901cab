"""API keys for server-to-server calls, stored as hashes.

Only a SHA-256 hash of the secret part is kept; the visible ``prefix`` identifies the key in
lists and logs. The full key (``pdk_<prefix>_<secret>``) is shown once, when created.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class APIKeyScope(models.TextChoices):
    READ = "read", "read"
    WRITE = "write", "write"
    REFUND = "refund", "refund"


class APIKey(models.Model):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, help_text="Any of: read, write, refund")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="paydesk_api_keys",
        help_text="The user the key acts as; it sees what this user sees",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (pdk_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class APIIdempotencyKey(models.Model):
    """A stored API response for an ``Idempotency-Key`` header (Stripe's semantics).

    Unique per principal and key, so one client's key never replays another's response.
    ``response_status`` is NULL while the first request is still running (in flight).
    """

    principal = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        app_label = "paydesk"
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="paydesk_api_idem_unique")
        ]

    def __str__(self) -> str:
        return f"{self.principal}:{self.key}"
