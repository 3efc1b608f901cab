"""The rates-source interface: where exchange rates come from.

This module owns one decision: what a rates source hands to paydesk. A source's ``fetch()``
returns plain :class:`RateQuote` values ("one ``base`` buys ``rate`` ``quote`` on ``date``")
and never touches the database; :func:`paydesk.services.rates.update_rates` stores them.
``PAYDESK["RATES"]["SOURCE"]`` names the class, built on use by :func:`get_rates_source`.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from django.utils.module_loading import import_string

from ..conf import paydesk_settings
from ..exceptions import ConfigurationError, PaydeskError
from ..money import is_supported_currency

__all__ = [
    "RATE_DIGITS",
    "RATE_PLACES",
    "RATE_SIGNIFICANT_DIGITS",
    "RateQuote",
    "RatesSource",
    "RatesSourceError",
    "get_rates_source",
]

#: ``ExchangeRate.rate`` is ``DecimalField(max_digits=28, decimal_places=12)``: a quote that
#: does not fit is refused rather than rounded by the database.
RATE_DIGITS = 28
RATE_PLACES = 12
#: SQLite keeps a decimal column as a binary float, exact to 15 significant digits only
#: (Django reads it back with ``Context(prec=15)``). Rates are refused beyond that so they
#: are stored exactly on every database; real rates have 5 or 6 (ECB: ``1.1512``).
RATE_SIGNIFICANT_DIGITS = 15


class RatesSourceError(PaydeskError):
    """A rates source could not be read, or sent something that is not a valid rate.

    Nothing is stored when this is raised; run ``update_exchange_rates`` again later.
    """

    default_code = "rates_source_error"
    http_status = 502


@dataclass(frozen=True, slots=True)
class RateQuote:
    """One ``base`` buys ``rate`` units of ``quote`` on ``date`` (``EUR``/``USD`` 1.0866)."""

    base: str
    quote: str
    rate: Decimal
    date: dt.date

    def __post_init__(self) -> None:
        base, quote = str(self.base).strip().upper(), str(self.quote).strip().upper()
        for code in (base, quote):
            if not is_supported_currency(code):
                raise RatesSourceError(f"Rate quote has an unknown currency {code!r}.")
        if base == quote:
            raise RatesSourceError(f"A rate needs two different currencies, not {base}/{quote}.")
        if not isinstance(self.rate, Decimal) or not self.rate.is_finite() or self.rate <= 0:
            raise RatesSourceError(
                f"Rate {base}/{quote} must be a positive, finite Decimal, not {self.rate!r}."
            )
        rate = self.rate
        if rate.as_tuple().exponent < -RATE_PLACES:  # type: ignore[operator]
            rate = rate.normalize()  # "1.086600000000000" is 1.0866: only zeros go
        _, digits, exponent = rate.as_tuple()
        assert isinstance(exponent, int)  # finite, checked above
        places = max(0, -exponent)
        whole_digits = max(0, len(digits) + exponent)
        significant = len(rate.normalize().as_tuple().digits)
        if (
            places > RATE_PLACES
            or whole_digits > RATE_DIGITS - RATE_PLACES
            or significant > RATE_SIGNIFICANT_DIGITS
        ):
            raise RatesSourceError(
                f"Rate {base}/{quote} {self.rate} does not fit: rates have at most "
                f"{RATE_PLACES} decimals and {RATE_SIGNIFICANT_DIGITS} significant digits; "
                "paydesk stores rates exactly or not at all."
            )
        if not isinstance(self.date, dt.date) or isinstance(self.date, dt.datetime):
            raise RatesSourceError(f"Rate {base}/{quote} needs a date, not {self.date!r}.")
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "quote", quote)


class RatesSource(ABC):
    """Where exchange rates come from. Subclass it and name it in ``PAYDESK["RATES"]["SOURCE"]``.

    ``name`` is stored with every rate (``ExchangeRate.source``, at most 30 characters);
    ``base_currency`` is the currency the source quotes everything against (EUR for the
    ECB), which cross rates go through unless ``PAYDESK["RATES"]["CROSS_VIA"]`` says
    otherwise; ``None`` when the source has no single base.
    """

    name: ClassVar[str] = "custom"
    base_currency: ClassVar[str | None] = None

    @abstractmethod
    def fetch(self) -> list[RateQuote]:
        """The source's current rates. Raise :class:`RatesSourceError` if it cannot be read."""


def get_rates_source() -> RatesSource:
    """An instance of ``PAYDESK["RATES"]["SOURCE"]`` (built on each call: sources are cheap)."""
    path = paydesk_settings.RATES.get("SOURCE")
    if not isinstance(path, str) or not path:
        raise ConfigurationError(
            'PAYDESK["RATES"]["SOURCE"] must be a dotted path to a paydesk.rates.RatesSource '
            'subclass, such as "paydesk.rates.ECBRatesSource".'
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f'PAYDESK["RATES"]["SOURCE"] = {path!r} cannot be imported: {exc}'
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, RatesSource)):
        raise ConfigurationError(
            f'PAYDESK["RATES"]["SOURCE"] = {path!r} is not a paydesk.rates.RatesSource subclass.'
        )
    return cls()
