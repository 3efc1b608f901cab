"""Helpers for browser tests: screenshots as test artifacts, and the phone-width check.

Screenshots go to ``test-artifacts/screenshots/<name>-<light|dark>-<desktop|phone>.png`` in
the repository (``PAYDESK_TEST_ARTIFACTS`` moves ``test-artifacts``); the directory is
gitignored, and ``make test`` prints where it is. Each run overwrites the previous files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # tests/conftest.py imports this module, also where playwright is missing
    from playwright.sync_api import Page, ViewportSize

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
VIEWPORTS: dict[str, ViewportSize] = {"desktop": DESKTOP, "phone": PHONE}
SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")

REPO = Path(__file__).resolve().parents[2]

# The elements sticking out past the right edge, for the failure message of the width check.
_OVERFLOW_JS = """() => {
  const root = document.documentElement;
  const width = root.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 && box.width > 0) {
      const id = el.id ? "#" + el.id : "";
      const cls = el.classList.length ? "." + [...el.classList].join(".") : "";
      out.push(`${el.tagName.toLowerCase()}${id}${cls} (right edge ${Math.round(box.right)}px)`);
    }
  }
  return {scrollWidth: root.scrollWidth, clientWidth: width, offenders: out.slice(0, 10)};
}"""


def artifacts_dir() -> Path:
    return Path(os.environ.get("PAYDESK_TEST_ARTIFACTS") or REPO / "test-artifacts")


def screenshots_dir() -> Path:
    path = artifacts_dir() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def color_scheme(page: Page) -> Literal["light", "dark"]:
    """The colour scheme the page is rendered in now (``page.emulate_media`` sets it)."""
    dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    return "dark" if dark else "light"


def device(page: Page) -> Literal["desktop", "phone"]:
    """``phone`` for a viewport up to 480 px wide, else ``desktop``."""
    size = page.viewport_size or DESKTOP
    return "phone" if size["width"] <= 480 else "desktop"


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as it looks now, as ``<name>-<scheme>-<device>.png``; its path."""
    path = screenshots_dir() / f"{name}-{color_scheme(page)}-{device(page)}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def horizontal_overflow(page: Page) -> dict[str, Any]:
    """``scrollWidth``, ``clientWidth`` of the document and the elements past its right edge."""
    return page.evaluate(_OVERFLOW_JS)


def assert_no_horizontal_scroll(page: Page) -> None:
    """The page fits its viewport's width: nothing to scroll sideways."""
    found = horizontal_overflow(page)
    assert found["scrollWidth"] <= found["clientWidth"], (
        f"{page.url} scrolls sideways at {page.viewport_size}: scrollWidth "
        f"{found['scrollWidth']} > clientWidth {found['clientWidth']}; past the edge: "
        + ", ".join(found["offenders"])
    )


def screenshot_all(page: Page, name: str, *, check_phone_width: bool = True) -> list[Path]:
    """Screenshot the page in light and dark, on desktop (1280x800) and phone (390x844).

    The page is not reloaded (a page that answered a POST stays as it is): the viewport and
    the emulated colour scheme change, and the page lays itself out again. With
    ``check_phone_width`` it also asserts that the phone-sized page has no horizontal
    scrolling. The viewport and colour scheme are restored afterwards.
    """
    original_size = page.viewport_size or DESKTOP
    original_scheme = color_scheme(page)
    paths = []
    try:
        for device_name, size in VIEWPORTS.items():
            page.set_viewport_size(size)
            for scheme in SCHEMES:
                page.emulate_media(color_scheme=scheme)
                paths.append(screenshot(page, name))
            if device_name == "phone" and check_phone_width:
                assert_no_horizontal_scroll(page)
    finally:
        page.set_viewport_size(original_size)
        page.emulate_media(color_scheme=original_scheme)
    return paths
