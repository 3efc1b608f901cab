"""Rates that staff enter in the Django admin (``ExchangeRate``, source ``manual``)."""

from __future__ import annotations

from typing import ClassVar

from .base import RateQuote, RatesSource

__all__ = ["ManualRatesSource"]


class ManualRatesSource(RatesSource):
    """The admin is the source: ``fetch()`` returns nothing and the stored rates stay as typed.

    Rates entered in the admin are stored with ``source="manual"``; on the same date they win
    over fetched ones whichever source is configured, so staff can correct a feed.
    """

    name: ClassVar[str] = "manual"
    base_currency: ClassVar[str | None] = None

    def fetch(self) -> list[RateQuote]:
        return []
