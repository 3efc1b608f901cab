"""The append-only ledger: every money movement and provider interaction of a payment.

Rows are only ever inserted. ``save()`` on an existing row, ``delete()``, and queryset
``update()``/``delete()`` raise, so no code path (admin, shell, a careless migration) can
rewrite history. ``(payment, idempotency_key)`` is unique: recording the same fact twice is
a no-op, which is what makes duplicate webhooks and retried calls harmless.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models

from ..exceptions import PaydeskError
from ..states import LedgerFact, LedgerKind
from .fields import AmountField, CurrencyField


class AppendOnlyError(PaydeskError):
    default_code = "ledger_append_only"


class LedgerQuerySet(models.QuerySet["TransactionLog"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("The payment ledger is append-only; append a new entry instead.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("The payment ledger is append-only; entries cannot be deleted.")

    def facts(self) -> list[LedgerFact]:
        return [
            LedgerFact(kind=LedgerKind(kind), key=key, attempt=attempt, amount=amount, ref=ref)
            for kind, key, attempt, amount, ref in self.values_list(
                "kind", "idempotency_key", "attempt", "amount", "ref"
            )
        ]


class TransactionLog(models.Model):
    payment = models.ForeignKey("paydesk.Payment", on_delete=models.PROTECT, related_name="ledger")
    refund = models.ForeignKey(
        "paydesk.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger"
    )
    kind = models.CharField(max_length=30, choices=[(k.value, k.value) for k in LedgerKind])
    amount = AmountField(null=True, blank=True)
    currency = CurrencyField()
    attempt = models.PositiveIntegerField(default=1)
    ref = models.CharField(
        max_length=255, blank=True, help_text="What a money fact is about (refund id, capture id)"
    )
    idempotency_key = models.CharField(max_length=255)
    provider_data = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        app_label = "paydesk"
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["payment", "idempotency_key"], name="paydesk_ledger_idempotency"
            ),
        ]
        indexes = [models.Index(fields=["kind", "created_at"], name="paydesk_ledger_kind")]

    def __str__(self) -> str:
        amount = f" {self.amount} {self.currency}" if self.amount is not None else ""
        return f"{self.kind}{amount} ({self.idempotency_key})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("The payment ledger is append-only; existing entries are final.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("The payment ledger is append-only; entries cannot be deleted.")
