"""Exchange-rate sources: where ``ExchangeRate`` rows come from.

``PAYDESK["RATES"]["SOURCE"]`` names a :class:`RatesSource`; ``manage.py
update_exchange_rates`` calls its ``fetch()`` and stores the result
(:func:`paydesk.services.rates.update_rates`). Built in:

* :class:`ECBRatesSource`: the European Central Bank's daily reference rates (EUR base);
* :class:`ManualRatesSource`: staff enter rates in the admin; fetching does nothing.

Reading and converting with the stored rates is :mod:`paydesk.services.rates`.
"""

from .base import (
    RATE_DIGITS,
    RATE_PLACES,
    RATE_SIGNIFICANT_DIGITS,
    RateQuote,
    RatesSource,
    RatesSourceError,
    get_rates_source,
)
from .ecb import ECB_DAILY_URL, ECBRatesSource, parse_ecb_xml
from .manual import ManualRatesSource

__all__ = [
    "ECB_DAILY_URL",
    "RATE_DIGITS",
    "RATE_PLACES",
    "RATE_SIGNIFICANT_DIGITS",
    "ECBRatesSource",
    "ManualRatesSource",
    "RateQuote",
    "RatesSource",
    "RatesSourceError",
    "get_rates_source",
    "parse_ecb_xml",
]
