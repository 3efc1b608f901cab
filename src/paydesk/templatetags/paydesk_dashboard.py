"""Template filters for the dashboard: money and ratios shown the same way on every page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel.core import UnknownLocaleError
from django import template
from django.utils.translation import get_language, to_locale

from ..money import Money

register = template.Library()


@register.filter
def money(value: Any, currency: str | None = None) -> str:
    """``Money`` (or an amount and ``currency``) formatted for the active language."""
    if value is None or value == "":
        return "—"
    if not isinstance(value, Money):
        if currency is None:
            return str(value)
        value = Money(Decimal(str(value)), currency)
    locale = to_locale(get_language() or "en-us")
    try:
        return value.format(locale)
    except (UnknownLocaleError, ValueError):  # a locale Babel does not know: use en_US
        return value.format()


@register.filter
def percent(ratio: Any, places: int = 1) -> str:
    """A ratio (0..1, as the analytics services give it) as a percentage; ``—`` for None."""
    if ratio is None or ratio == "":
        return "—"
    value = Decimal(str(ratio)) * 100
    return f"{value:.{int(places)}f} %"
