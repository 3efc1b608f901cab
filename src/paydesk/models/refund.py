"""Refund summary rows; many partial refunds per payment."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..states import RefundStatus
from .fields import AmountField, CurrencyField, refund_id


class Refund(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=refund_id, editable=False)
    payment = models.ForeignKey("paydesk.Payment", on_delete=models.PROTECT, related_name="refunds")
    amount = AmountField()
    currency = CurrencyField()
    reason = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=20, choices=[(s.value, s.value) for s in RefundStatus], default="pending"
    )
    provider_refund_id = models.CharField(max_length=255, blank=True, db_index=True)
    provider_response = models.JSONField(default=dict, blank=True)
    failure_code = models.CharField(max_length=50, blank=True)
    failure_message = models.TextField(blank=True)
    processed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Staff member or user who asked for the refund"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="paydesk_refund_status"),
            # Refund analytics select by request date (paydesk.services.analytics).
            models.Index(fields=["created_at"], name="paydesk_refund_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} ({self.status})"
