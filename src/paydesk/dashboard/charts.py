"""The overview's daily chart, drawn on the server as SVG.

This module owns one decision: charts are server-rendered SVG, not a JavaScript chart
library. The dashboard must work offline with every asset shipped in the package; an SVG of
bars and one line is a few dozen lines of Python, needs no script to render (so it appears
at once and prints), is themed by the same CSS custom properties as the page, and carries its
own text alternative (``<title>``/``<desc>``) next to a data table for screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

__all__ = ["ChartPoint", "daily_chart"]

WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 44, 12, 28


@dataclass(frozen=True, slots=True)
class ChartPoint:
    day: dt.date
    bar: Decimal  # e.g. the day's gross volume in one currency
    line: int  # e.g. the day's number of payments


def _scale(value: Decimal | int, top: Decimal | int, span: float) -> float:
    return 0.0 if not top else float(value) / float(top) * span


def _nice_top(value: Decimal | int) -> Decimal:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    value = Decimal(value)
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def daily_chart(
    points: Sequence[ChartPoint], *, title: str, bar_label: str, line_label: str
) -> SafeString:
    """Bars for ``bar`` (left axis) and a line for ``line`` (right axis), one slot per day."""
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    bar_top = _nice_top(max((p.bar for p in points), default=Decimal(0)))
    line_top = _nice_top(max((p.line for p in points), default=0))
    slot = plot_w / max(len(points), 1)
    bars, line = [], []
    for index, point in enumerate(points):
        height = _scale(point.bar, bar_top, plot_h)
        x = PAD_LEFT + index * slot
        bars.append(
            (
                f"{x + slot * 0.15:.1f}",
                f"{PAD_TOP + plot_h - height:.1f}",
                f"{slot * 0.7:.1f}",
                f"{height:.1f}",
                f"{date_format(point.day, 'SHORT_DATE_FORMAT')}: {point.bar} / {point.line}",
            )
        )
        line.append(
            f"{x + slot / 2:.1f},{PAD_TOP + plot_h - _scale(point.line, line_top, plot_h):.1f}"
        )
    # Label about six days along the axis, whatever the range.
    every = max(len(points) // 6, 1)
    ticks = [
        (f"{PAD_LEFT + i * slot + slot / 2:.1f}", date_format(p.day, "M j"))
        for i, p in enumerate(points)
        if i % every == 0
    ]
    base = PAD_TOP + plot_h
    return format_html(
        '<svg viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title chart-desc">'
        '<title id="chart-title">{title}</title>'
        '<desc id="chart-desc">{desc}</desc>'
        '<line class="axis" x1="{l}" y1="{base}" x2="{r}" y2="{base}"/>'
        '<text x="{lx}" y="{ty}" text-anchor="end">{bar_top}</text>'
        '<text x="{lx}" y="{base}" text-anchor="end">0</text>'
        '<text x="{rx}" y="{ty}">{line_top}</text>'
        "{bars}"
        '<polyline class="line" points="{line}"/>'
        "{ticks}"
        "</svg>",
        w=WIDTH,
        h=HEIGHT,
        title=title,
        desc=f"{bar_label} (bars, left axis) and {line_label} (line, right axis), per day.",
        l=PAD_LEFT,
        r=WIDTH - PAD_RIGHT,
        base=base,
        lx=PAD_LEFT - 6,
        rx=WIDTH - PAD_RIGHT + 6,
        ty=PAD_TOP + 10,
        bar_top=bar_top,
        line_top=line_top,
        bars=format_html_join(
            "",
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
            bars,
        ),
        line=" ".join(line),
        ticks=format_html_join(
            "", '<text x="{}" y="' + str(base + 18) + '" text-anchor="middle">{}</text>', ticks
        ),
    )
