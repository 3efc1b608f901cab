"""Exchange rates, filled by a pluggable rates source (ECB daily feed, or manual entry)."""

from __future__ import annotations

from django.db import models

from .fields import CurrencyField


class ExchangeRate(models.Model):
    """One unit of ``base`` buys ``rate`` units of ``quote`` on ``date``."""

    base = CurrencyField()
    quote = CurrencyField()
    rate = models.DecimalField(max_digits=28, decimal_places=12)
    date = models.DateField()
    source = models.CharField(max_length=30, default="manual")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-date", "base", "quote"]
        constraints = [
            models.UniqueConstraint(
                fields=["base", "quote", "date", "source"], name="paydesk_rate_unique"
            ),
        ]
        indexes = [models.Index(fields=["base", "quote", "-date"], name="paydesk_rate_latest")]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate} {self.quote} ({self.date}, {self.source})"
