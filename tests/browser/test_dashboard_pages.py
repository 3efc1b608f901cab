"""Every staff dashboard page in a real browser: how it looks and who can use it.

For each page (overview, payments, a payment, webhooks, a delivery, approvals, audit log, API
keys): screenshots in light and dark on desktop and phone (``dashboard-<page>-...png``), no
horizontal scrolling on a 390x844 phone, and no serious or critical axe-core violation
(colour contrast included) in either colour scheme. Then the dark-mode toggle (remembered
across reloads and pages, the system setting followed until a choice is made) and the
keyboard (the skip link first, then the navigation; every refund field labelled).
"""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from playwright.sync_api import Page, expect

from . import dashboard
from .dashboard import PAGES, Seeded, log_in, page_urls
from .helpers import PHONE, assert_no_horizontal_scroll, screenshot_all

# The dashboard's fixtures (dashboard.py), bound here for pytest to find; demo_paydesk
# replaces conftest's.
customer = dashboard.customer
demo_paydesk = dashboard.demo_paydesk
seeded = dashboard.seeded
staff = dashboard.staff
staff_page = dashboard.staff_page

#: Impacts that fail the scan; "minor" and "moderate" findings are left to judgement.
BLOCKING = ("serious", "critical")
LIGHT_BG = "rgb(246, 247, 249)"  # --bg, light
DARK_BG = "rgb(15, 19, 24)"  # --bg, dark

_axe = Axe()


def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now, one line each."""
    results = _axe.run(page)
    checked = {
        rule["id"]
        for kind in ("violations", "passes", "incomplete")
        for rule in results.response[kind]
    }
    assert "color-contrast" in checked, "axe did not check the colour contrast"
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        for node in violation["nodes"][:5]:
            found.append(
                f"{violation['id']} ({violation['impact']}): {node['target']} "
                f"{node.get('failureSummary', '').splitlines()[-1:]}"
            )
    return found


def body_background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_a_phone_passes_axe_and_is_screenshotted(
    staff_page: Page, seeded: Seeded, name: str
) -> None:
    page = staff_page
    response = page.goto(page_urls(seeded)[name])
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        problems = axe_violations(page)
        assert not problems, f"{name} ({scheme}):\n" + "\n".join(problems)

    # Light and dark, desktop and phone; the phone-sized page must not scroll sideways.
    screenshot_all(page, f"dashboard-{name}")

    # And loaded afresh on a phone, not only resized to one.
    page.set_viewport_size(PHONE)
    page.reload()
    assert_no_horizontal_scroll(page)
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_the_login_and_forbidden_pages_pass_axe(
    page: Page, customer: Any, live_server: Any
) -> None:
    page.goto(reverse("paydesk_dashboard:overview"))
    expect(page.get_by_label("Password")).to_be_visible()
    screenshot_all(page, "dashboard-login")
    log_in(page.context, customer, live_server.url)
    page.goto(reverse("paydesk_dashboard:overview"))
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        problems = axe_violations(page)
        assert not problems, f"forbidden ({scheme}):\n" + "\n".join(problems)


# -- dark mode ----------------------------------------------------------------------------------


def test_the_dark_mode_toggle_is_remembered_across_reloads_and_pages(
    staff_page: Page, seeded: Seeded
) -> None:
    page = staff_page
    page.goto(reverse("paydesk_dashboard:overview"))
    toggle = page.get_by_role("button", name="Toggle dark mode")
    html = page.locator("html")
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is False
    expect(html).not_to_have_attribute("data-theme", "dark")
    assert body_background(page) == LIGHT_BG
    expect(toggle).to_have_attribute("aria-pressed", "false")

    toggle.click()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert body_background(page) == DARK_BG
    assert page.evaluate("localStorage.getItem('paydesk-theme')") == "dark"

    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    assert body_background(page) == DARK_BG
    expect(toggle).to_have_attribute("aria-pressed", "true")

    page.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name="Payments"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Payments")
    expect(html).to_have_attribute("data-theme", "dark")
    assert body_background(page) == DARK_BG
    card = page.locator('form[data-filter-form="payments"]')
    assert card.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(23, 28, 35)"

    # Back to light: remembered as a choice too, over a dark system setting.
    page.get_by_role("button", name="Toggle dark mode").click()
    expect(html).to_have_attribute("data-theme", "light")
    page.emulate_media(color_scheme="dark")
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")
    assert body_background(page) == LIGHT_BG


def test_without_a_choice_the_page_follows_the_system_setting(
    staff_page: Page, seeded: Seeded
) -> None:
    page = staff_page
    page.emulate_media(color_scheme="dark")
    page.goto(reverse("paydesk_dashboard:approvals"))
    assert page.evaluate("localStorage.getItem('paydesk-theme')") is None
    assert page.locator("html").get_attribute("data-theme") is None
    assert body_background(page) == DARK_BG
    expect(page.get_by_role("button", name="Toggle dark mode")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.emulate_media(color_scheme="light")
    assert body_background(page) == LIGHT_BG
    # The first click flips what is shown (light now) and remembers it.
    page.get_by_role("button", name="Toggle dark mode").click()
    assert body_background(page) == DARK_BG
    assert page.evaluate("localStorage.getItem('paydesk-theme')") == "dark"


# -- keyboard -----------------------------------------------------------------------------------


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const el = document.activeElement;
          return {tag: el.tagName.toLowerCase(), text: el.textContent.trim(),
                  cls: el.className, href: el.getAttribute("href"),
                  inNav: !!el.closest("nav.nav"),
                  visible: el.getBoundingClientRect().left >= 0};
        }"""
    )


def test_keyboard_reaches_the_skip_link_first_then_the_navigation(
    staff_page: Page, seeded: Seeded
) -> None:
    page = staff_page
    page.goto(reverse("paydesk_dashboard:overview"))
    page.keyboard.press("Tab")
    first = focused(page)
    assert (first["cls"], first["href"], first["text"]) == ("skip-link", "#main", "Skip to content")
    assert first["visible"], "the skip link is shown when it has the focus"

    labels = []
    for _ in range(8):
        page.keyboard.press("Tab")
        now = focused(page)
        if now["inNav"]:
            labels.append(now["text"])
    assert labels == ["Overview", "Payments", "Webhooks", "Approvals", "Audit log", "API keys"]

    # The skip link moves the focus to the content, past the navigation.
    page.goto(reverse("paydesk_dashboard:payments"))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert not focused(page)["inNav"]
    assert page.evaluate("document.activeElement.closest('main') !== null")


def test_every_refund_and_filter_field_has_a_label(staff_page: Page, seeded: Seeded) -> None:
    page = staff_page
    page.goto(reverse("paydesk_dashboard:payment-detail", args=[seeded.usd[0].pk]))
    form = page.locator('form[data-action="refund"]')
    expect(form.get_by_label("Amount (USD)")).to_have_value("19.99")
    expect(form.get_by_label("Reason")).to_be_editable()
    unlabelled = form.locator("input:not([type=hidden]), select, textarea").evaluate_all(
        "fields => fields.filter(f => f.labels.length === 0).map(f => f.outerHTML)"
    )
    assert unlabelled == []
    form.get_by_label("Amount (USD)").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "refund-reason"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.submit") == "refund"

    page.goto(reverse("paydesk_dashboard:payments"))
    filters = page.locator('form[data-filter-form="payments"]')
    for label in ("Search", "Status", "Provider", "Currency", "Created from", "Created to"):
        expect(filters.get_by_label(label, exact=True)).to_be_visible()
