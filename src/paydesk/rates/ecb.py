"""The European Central Bank's euro foreign exchange reference rates.

The ECB publishes, on each TARGET working day at about 16:00 CET, how many units of some 30
currencies one euro buys, as XML (``eurofxref-daily.xml``; ``eurofxref-hist-90d.xml`` and
``eurofxref-hist.xml`` hold past days in the same shape)::

    <gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
                     xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
      <Cube>
        <Cube time="2025-06-13">
          <Cube currency="USD" rate="1.1512"/>
          ...

Every ``Cube`` with a ``time`` becomes one day; each child ``Cube`` with ``currency`` and
``rate`` one :class:`~paydesk.rates.RateQuote` ``EUR -> currency``. Rates are read as
``Decimal`` from their text, never through float. The ECB's rates are for information only
(the ECB says so); a project that settles at its provider's rate should use another source.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from xml.etree import ElementTree

import httpx

from ..conf import paydesk_settings
from ..money import is_supported_currency
from .base import RateQuote, RatesSource, RatesSourceError

__all__ = ["ECB_DAILY_URL", "ECBRatesSource", "parse_ecb_xml"]

logger = logging.getLogger("paydesk.rates")

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
#: The daily file is about 1.5 kB and the full history about 6 MB; anything beyond this is
#: not the ECB's feed.
MAX_BYTES = 16 * 1024 * 1024


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_ecb_xml(content: bytes | str) -> list[RateQuote]:
    """Every rate in an ECB ``eurofxref`` document, oldest day first.

    Currencies paydesk does not know (none today) are skipped with a warning; anything else
    that is not a well-formed rate raises :class:`RatesSourceError`.
    """
    raw = content.encode() if isinstance(content, str) else content
    if len(raw) > MAX_BYTES:
        raise RatesSourceError(f"The ECB document is larger than {MAX_BYTES} bytes; refused.")
    # The feed never has a DTD; refusing one rules out entity-expansion tricks before parsing.
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise RatesSourceError("The ECB document declares a DTD or entities; refused.")
    try:
        root = ElementTree.fromstring(raw)  # noqa: S314 - no DTD (checked above), bounded size
    except ElementTree.ParseError as exc:
        raise RatesSourceError(f"The ECB document is not well-formed XML: {exc}.") from exc
    quotes: list[RateQuote] = []
    days = [el for el in root.iter() if _local(el.tag) == "Cube" and "time" in el.attrib]
    if not days:
        raise RatesSourceError(
            "The ECB document has no <Cube time=...> element; is this the eurofxref feed?"
        )
    for day in days:
        try:
            date = dt.date.fromisoformat(day.attrib["time"].strip())
        except ValueError:
            raise RatesSourceError(
                f"The ECB document has a day with an invalid date {day.attrib['time']!r}."
            ) from None
        for cube in day:
            if _local(cube.tag) != "Cube" or "currency" not in cube.attrib:
                continue
            code = cube.attrib["currency"].strip().upper()
            text = cube.attrib.get("rate", "").strip()
            if not is_supported_currency(code):
                logger.warning("ECB rates: skipping unknown currency %r on %s", code, date)
                continue
            try:
                rate = Decimal(text)
            except InvalidOperation:
                raise RatesSourceError(
                    f"The ECB rate for {code} on {date} is not a number: {text!r}."
                ) from None
            quotes.append(RateQuote(base="EUR", quote=code, rate=rate, date=date))
    quotes.sort(key=lambda q: (q.date, q.quote))
    return quotes


class ECBRatesSource(RatesSource):
    """Rates from the ECB's daily XML feed, EUR-based.

    ``client`` is an ``httpx.Client`` (tests pass one over ``httpx.MockTransport``); without
    one, each ``fetch()`` opens and closes its own. ``url`` and ``timeout`` default to
    ``PAYDESK["RATES"]["ECB_URL"]`` and ``["TIMEOUT"]``.
    """

    name: ClassVar[str] = "ecb"
    base_currency: ClassVar[str | None] = "EUR"

    def __init__(
        self,
        *,
        client: httpx.Client | None = None,
        url: str | None = None,
        timeout: float | None = None,
    ) -> None:
        settings: dict[str, Any] = paydesk_settings.RATES
        self.client = client
        self.url = url or settings.get("ECB_URL") or ECB_DAILY_URL
        self.timeout = float(timeout if timeout is not None else settings.get("TIMEOUT") or 10)

    def fetch(self) -> list[RateQuote]:
        try:
            if self.client is not None:
                response = self.client.get(self.url, timeout=self.timeout)
            else:
                with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
                    response = client.get(self.url)
        except httpx.HTTPError as exc:
            raise RatesSourceError(
                f"Could not reach the ECB at {self.url}: {exc!r}. Try again later."
            ) from exc
        if response.status_code != 200:
            raise RatesSourceError(
                f"The ECB answered {response.status_code} for {self.url}; try again later."
            )
        return parse_ecb_xml(response.content)
