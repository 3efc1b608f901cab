"""Saved, tokenized payment methods (never a card number or CVC)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .fields import method_id


class PaymentMethodType(models.TextChoices):
    CREDIT_CARD = "credit_card", _("Credit card")
    DEBIT_CARD = "debit_card", _("Debit card")
    PAYPAL = "paypal", _("PayPal")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")
    DIGITAL_WALLET = "digital_wallet", _("Digital wallet")
    CRYPTO = "crypto", _("Crypto")


class PaymentMethod(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=method_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="paydesk_payment_methods"
    )
    type = models.CharField(max_length=20, choices=PaymentMethodType.choices)
    provider = models.CharField(max_length=50, help_text=_("Provider alias"))
    provider_token = models.CharField(
        max_length=255, help_text=_("The provider's token or id; never card data")
    )
    brand = models.CharField(max_length=30, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    fingerprint = models.CharField(max_length=128, blank=True, db_index=True)
    is_default = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(is_default=True),
                name="paydesk_one_default_method_per_user",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_token"], name="paydesk_method_token_unique"
            ),
        ]
        indexes = [models.Index(fields=["user", "is_active"], name="paydesk_pm_user_active")]

    def __str__(self) -> str:
        label = self.brand or self.get_type_display()
        return f"{label} •••• {self.last4}" if self.last4 else str(label)
