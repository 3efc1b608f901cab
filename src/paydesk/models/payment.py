"""The payment summary row: what the ledger fold says, cached for queries."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..money import Money
from ..states import PaymentStatus
from .fields import AmountField, CurrencyField, payment_id


class Payment(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=payment_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="paydesk_payments",
    )
    # What the payment is for: a free reference, plus an optional link to the host object.
    reference = models.CharField(max_length=255, blank=True, db_index=True)
    content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    object_id = models.CharField(max_length=64, blank=True)
    content_object = GenericForeignKey("content_type", "object_id")

    provider = models.CharField(max_length=50, help_text=_("Provider alias"))
    payment_method = models.ForeignKey(
        "paydesk.PaymentMethod",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="payments",
    )
    amount = AmountField()
    currency = CurrencyField()
    description = models.CharField(max_length=255, blank=True)
    capture_method = models.CharField(
        max_length=10,
        choices=[("automatic", _("Automatic")), ("manual", _("Manual"))],
        default="automatic",
    )

    # Cached fold of the ledger; only services write these.
    status = models.CharField(
        max_length=20, choices=[(s.value, s.value) for s in PaymentStatus], default="pending"
    )
    attempt = models.PositiveIntegerField(default=1)
    authorized_amount = AmountField(default=Decimal(0))
    captured_amount = AmountField(default=Decimal(0))
    refunded_amount = AmountField(default=Decimal(0))
    refund_reserved_amount = AmountField(default=Decimal(0))
    processing_fee = AmountField(default=Decimal(0))

    provider_payment_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_method_token = models.CharField(
        max_length=255, blank=True, help_text=_("Provider token used for the current attempt")
    )
    next_action = models.JSONField(null=True, blank=True)
    failure_code = models.CharField(max_length=50, blank=True)
    failure_message = models.TextField(blank=True)
    return_url = models.CharField(max_length=2048, blank=True)
    customer_email = models.EmailField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # NULL, not "": the unique constraint must ignore payments created without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # A short lease taken while a provider call is under way, so two requests never send the
    # same operation at once; it expires by itself if the process dies mid-call.
    lease_operation = models.CharField(max_length=20, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="paydesk_payment_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="paydesk_pay_user_created"),
            models.Index(fields=["status", "-created_at"], name="paydesk_pay_status_created"),
            models.Index(fields=["provider", "-created_at"], name="paydesk_pay_prov_created"),
            models.Index(fields=["-created_at"], name="paydesk_pay_created"),
            models.Index(fields=["content_type", "object_id"], name="paydesk_pay_object"),
            # paydesk.services.analytics: everything a report over a date range reads, so
            # that on PostgreSQL it is an index-only scan (key columns, not INCLUDE, which
            # SQLite would warn about).
            models.Index(
                fields=[
                    "created_at",
                    "currency",
                    "status",
                    "captured_amount",
                    "refunded_amount",
                    "processing_fee",
                ],
                name="paydesk_pay_analytics",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} ({self.status})"

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def refundable_amount(self) -> Decimal:
        return self.captured_amount - self.refunded_amount - self.refund_reserved_amount
