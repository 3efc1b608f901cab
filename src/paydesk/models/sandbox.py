"""State of the sandbox provider's simulated remote side.

The sandbox stands in for a real provider, which keeps its own records of charges and
refunds. This table is that remote record, not paydesk's: paydesk's services never read it,
only ``paydesk.providers.sandbox`` does, so ``sync_payment`` behaves as it would against a
real provider (and survives a restart of the demo server).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from .fields import AmountField, CurrencyField


class SandboxCharge(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    idempotency_key = models.CharField(max_length=255, unique=True)
    payment_ref = models.CharField(max_length=40, db_index=True)
    amount = AmountField()
    currency = CurrencyField()
    status = models.CharField(max_length=20)
    scenario = models.CharField(max_length=40, blank=True)
    capture = models.BooleanField(default=True)
    captured_amount = AmountField(default=Decimal(0))
    refunded_amount = AmountField(default=Decimal(0))
    failure_code = models.CharField(max_length=50, blank=True)
    refunds = models.JSONField(default=dict, blank=True)
    return_url = models.CharField(max_length=2048, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "paydesk"
        verbose_name = "sandbox charge (simulated provider side)"

    def __str__(self) -> str:
        return f"{self.id} {self.status}"
