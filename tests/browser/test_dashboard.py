"""The staff dashboard in a real browser: what staff do with it, through its real pages.

A staff member logs in through the admin's login page, reads the overview (its numbers are
checked against the database), filters payments, refunds part of one (confirming the dialog),
copies a webhook URL, sends a test webhook, approves a bank transfer and decides fraud reviews;
the overview refreshes itself, and pauses while the tab is hidden. Non-staff are refused.
Every page in light/dark, desktop/phone, with the phone-width and accessibility checks, is in
test_dashboard_pages.py. Data comes from ``paydesk.services`` (``dashboard.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.urls import reverse
from playwright.sync_api import Dialog, Locator, Page, expect

from paydesk.dashboard.views.overview import period_range
from paydesk.models import BankTransfer, FraudAssessment, Payment, Refund
from paydesk.services.webhooks import webhook_model
from paydesk.states import PaymentStatus

from . import dashboard
from .dashboard import PASSWORD, Seeded, log_in, paid
from .helpers import screenshot_all

# The dashboard's fixtures (dashboard.py), bound here for pytest to find; demo_paydesk
# replaces conftest's.
customer = dashboard.customer
demo_paydesk = dashboard.demo_paydesk
seeded = dashboard.seeded
staff = dashboard.staff
staff_page = dashboard.staff_page

OVERVIEW = reverse("paydesk_dashboard:overview")
PAYMENTS = reverse("paydesk_dashboard:payments")
WEBHOOKS = reverse("paydesk_dashboard:webhooks")
APPROVALS = reverse("paydesk_dashboard:approvals")
LIVE = reverse("paydesk_dashboard:overview-live")
LOGIN = re.compile(r"/admin/login/\?next=")


def stat(page: Page, name: str) -> str:
    return page.locator(f'[data-stat="{name}"] .value').inner_text().strip()


def value(locator: Locator) -> Decimal:
    """The exact amount an element carries in ``data-value`` (as the database stores it)."""
    return Decimal(locator.get_attribute("data-value") or "NaN")


def currency_cell(page: Page, currency: str, field: str) -> Decimal:
    return value(page.locator(f'tr[data-currency="{currency}"] [data-field="{field}"]'))


def row_ids(page: Page) -> set[str]:
    return set(
        page.locator("table[data-table=payments] tr[data-payment]").evaluate_all(
            "rows => rows.map(row => row.dataset.payment)"
        )
    )


# -- signing in ---------------------------------------------------------------------------------


def test_staff_log_in_and_the_overview_numbers_are_the_databases(
    page: Page, staff: Any, seeded: Seeded
) -> None:
    page.goto(OVERVIEW)
    expect(page).to_have_url(LOGIN)  # the admin's login, coming back to the dashboard
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(OVERVIEW) + "$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")

    week = Payment.objects.filter(created_at__gte=period_range("7d")[0])
    expect(page.locator('[data-stat="payments"] .value')).to_have_attribute(
        "data-value", str(week.count())
    )
    assert stat(page, "payments") == str(week.count()) == "9"
    assert stat(page, "refunds") == "1"
    # Held for review (pending) is not an attempt; the declined one and the bank transfer
    # waiting for the customer's money are.
    attempted = week.exclude(status=PaymentStatus.PENDING).count()
    successful = week.filter(
        status__in=(PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED)
    ).count()
    assert (successful, attempted) == (6, 8)
    expect(page.locator('[data-stat="success-rate"] .sub')).to_contain_text(
        f"{successful} / {attempted}"
    )
    assert stat(page, "approvals") == "2"  # the bank transfer and the fraud review

    for currency in ("USD", "EUR", "JPY"):
        rows = week.filter(currency=currency)
        gross = rows.aggregate(total=Sum("captured_amount"))["total"]
        refunded = rows.aggregate(total=Sum("refunded_amount"))["total"]
        assert currency_cell(page, currency, "gross") == gross, currency
        assert currency_cell(page, currency, "refunded") == refunded, currency
        assert currency_cell(page, currency, "net") == gross - refunded, currency
    assert currency_cell(page, "USD", "gross") == Decimal("69.49")
    assert currency_cell(page, "EUR", "net") == Decimal("75.00")  # 35 + 60 - 20 refunded


def test_non_staff_are_refused_and_anonymous_visitors_sent_to_log_in(
    page: Page, customer: Any, seeded: Seeded, live_server: Any
) -> None:
    log_in(page.context, customer, live_server.url)
    for url in (OVERVIEW, PAYMENTS, WEBHOOKS, APPROVALS, LIVE):
        response = page.goto(url)
        assert response is not None, url
        assert response.status == 403, url
        expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
        expect(page.get_by_role("alert")).to_contain_text("staff only")
        expect(page.locator("[data-stat], [data-payment], [data-currency]")).to_have_count(0)
    screenshot_all(page, "dashboard-forbidden")

    page.context.clear_cookies()
    page.goto(PAYMENTS + "?status=failed")
    expect(page).to_have_url(LOGIN)
    assert "next=/dashboard/payments/%3Fstatus%3Dfailed" in page.url
    expect(page.get_by_label("Password")).to_be_visible()


# -- payments -----------------------------------------------------------------------------------


def test_filters_show_only_the_matching_payments(staff_page: Page, seeded: Seeded) -> None:
    page = staff_page
    page.goto(PAYMENTS)
    form = page.locator('form[data-filter-form="payments"]')
    assert row_ids(page) == {p.pk for p in Payment.objects.all()}

    form.get_by_label("Status").select_option("failed")
    form.locator("[data-filter-submit]").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("tr[data-payment]")).to_have_count(1)
    assert row_ids(page) == {seeded.declined.pk}
    expect(page.locator("tr[data-payment]")).to_have_attribute("data-status", "failed")

    form.get_by_label("Status").select_option("")
    form.get_by_label("Currency").select_option("EUR")
    form.locator("[data-filter-submit]").click()
    expect(page).to_have_url(re.compile(r"currency=EUR"))
    eur = {p.pk for p in Payment.objects.filter(currency="EUR")}
    assert len(eur) == 3  # completed, partially refunded, the bank transfer
    expect(page.locator("tr[data-payment]")).to_have_count(len(eur))
    assert row_ids(page) == eur

    form.get_by_label("Currency").select_option("")
    form.get_by_label("Search").fill("bob@example")
    form.locator("[data-filter-submit]").click()
    expect(page.locator("tr[data-payment]")).to_have_count(1)
    assert row_ids(page) == {seeded.usd[1].pk}

    # Several filters at once, and one that matches nothing.
    form.get_by_label("Search").fill("order-100")
    form.get_by_label("Currency").select_option("USD")
    form.get_by_label("Status").select_option("pending")
    form.locator("[data-filter-submit]").click()
    expect(page.locator("tr[data-payment]")).to_have_count(1)
    assert row_ids(page) == {seeded.held.pk}
    form.get_by_label("Status").select_option("refunded")
    form.locator("[data-filter-submit]").click()
    expect(page.locator("[data-empty]")).to_be_visible()
    expect(page.locator("[data-result-count]")).to_have_attribute("data-result-count", "0")


def test_a_partial_refund_updates_the_ledger_and_the_refunded_amount(
    staff_page: Page, staff: Any
) -> None:
    page = staff_page
    payment = paid("40.00", "USD", customer_email="ivy@example.com")
    page.goto(reverse("paydesk_dashboard:payment-detail", args=[payment.pk]))
    expect(page.locator("[data-payment-status]")).to_have_attribute(
        "data-payment-status", "completed"
    )
    assert value(page.locator('[data-field="refunded"]')) == 0
    entries = page.locator("ol[data-ledger] li[data-ledger-entry]")
    before = entries.count()
    assert before == payment.ledger.count()
    expect(page.locator('li[data-ledger-entry][data-kind="refund_completed"]')).to_have_count(0)

    form = page.locator('form[data-action="refund"]')
    form.get_by_label("Amount (USD)").fill("15.00")
    form.get_by_label("Reason").fill("Customer kept one item")

    # Dismissing the confirmation sends nothing.
    questions: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    form.locator('[data-submit="refund"]').click()
    expect(page.locator("[data-payment-status]")).to_have_attribute(
        "data-payment-status", "completed"
    )
    assert questions == ["Refund this amount in USD? Money goes back to the customer."]
    assert not Refund.objects.filter(payment=payment).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    form.locator('[data-submit="refund"]').click()
    expect(page.locator("[data-payment-status]")).to_have_attribute(
        "data-payment-status", "partially_refunded"
    )
    expect(page.locator('[data-field="refunded"]')).to_have_text("$15.00")
    assert value(page.locator('[data-field="refunded"]')) == Decimal("15.00")
    assert value(page.locator('[data-field="refundable"]')) == Decimal("25.00")
    refund_entry = page.locator('li[data-ledger-entry][data-kind="refund_completed"]')
    expect(refund_entry).to_have_count(1)
    assert value(refund_entry.locator('[data-field="amount"]')) == Decimal("15.00")
    assert entries.count() > before
    expect(page.locator(".message.success")).to_be_visible()
    row = page.locator("table[data-table=refunds] tr[data-refund]")
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.locator('[data-field="reason"]')).to_have_text("Customer kept one item")

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert payment.refunded_amount == Decimal("15.00")
    refund = Refund.objects.get(payment=payment)
    assert (refund.amount, refund.status, refund.reason) == (
        Decimal("15.00"),
        "completed",
        "Customer kept one item",
    )
    assert refund.processed_by == staff
    kinds = list(payment.ledger.order_by("created_at", "id").values_list("kind", flat=True))
    assert "refund_completed" in kinds
    assert entries.count() == len(kinds)


# -- webhooks -----------------------------------------------------------------------------------


def test_copy_a_webhook_url_to_the_clipboard(
    staff_page: Page, seeded: Seeded, live_server: Any
) -> None:
    page = staff_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto(WEBHOOKS)
    expected = live_server.url + reverse("paydesk:webhook", args=["sandbox"])
    card = page.locator('[data-webhook-provider="sandbox"]')
    expect(card.locator("[data-webhook-url]")).to_have_text(expected)
    page.evaluate("navigator.clipboard.writeText('nothing yet')")

    card.get_by_role("button", name="Copy the webhook URL of").click()
    expect(card.locator("[data-copy-status]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == expected


def test_send_a_test_webhook_and_see_it_in_the_deliveries(staff_page: Page, seeded: Seeded) -> None:
    page = staff_page
    page.goto(WEBHOOKS)
    stored_before = set(webhook_model().objects.values_list("pk", flat=True))
    page.locator('[data-test-webhook="sandbox"]').click()

    result = page.locator('#test-result[data-test-result="sandbox"]')
    expect(result).to_be_visible()
    expect(result).to_have_attribute("data-http-status", "200")
    delivery = webhook_model().objects.exclude(pk__in=stored_before).get()
    assert delivery.provider == "sandbox"
    assert delivery.event_id.startswith("paydesk_test_")
    # paydesk's test event type: verified and stored, acted on by no provider.
    assert delivery.status == "ignored"
    expect(result.locator('[data-field="outcome"]')).to_have_text(
        result.get_attribute("data-outcome") or ""
    )
    expect(result).to_contain_text(delivery.event_id)

    row = page.locator(f'table[data-table=deliveries] tr[data-delivery="{delivery.pk}"]')
    expect(row).to_have_attribute("data-event-id", delivery.event_id)
    expect(row).to_have_attribute("data-status", "ignored")
    expect(row).to_contain_text("sandbox")
    # The newest delivery heads the list.
    expect(page.locator("table[data-table=deliveries] tr[data-delivery]").first).to_have_attribute(
        "data-delivery", str(delivery.pk)
    )

    result.locator("[data-test-delivery-link]").click()
    expect(page).to_have_url(
        re.compile(re.escape(reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk])))
    )
    expect(page.locator('[data-field="event-id"]')).to_have_text(delivery.event_id)
    expect(page.locator('[data-field="status"]')).to_have_text(delivery.get_status_display())


# -- approvals ----------------------------------------------------------------------------------


def test_approve_a_bank_transfer(staff_page: Page, staff: Any, seeded: Seeded) -> None:
    page = staff_page
    payment = seeded.transfer
    transfer = BankTransfer.objects.get(payment=payment)
    page.goto(APPROVALS)
    card = page.locator(f'article[data-transfer="{payment.pk}"]')
    expect(card).to_have_attribute("data-reference", transfer.reference)
    expect(card.locator("[data-receipt-link]")).to_be_visible()
    expect(card.locator('[data-field="amount"]')).to_have_text("€150.00")

    card.get_by_label("Note (staff only, optional)").fill("Seen on the statement of 12 May")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Approve").click()

    expect(page.locator(".message.success")).to_contain_text(
        f"Bank transfer {transfer.reference} approved"
    )
    expect(page.locator(f'article[data-transfer="{payment.pk}"]')).to_have_count(0)
    expect(page.locator('[data-queue="transfers"] [data-count]')).to_have_attribute(
        "data-count", "0"
    )
    payment.refresh_from_db()
    transfer.refresh_from_db()
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.captured_amount == Decimal("150.00")
    assert transfer.status == "approved"
    assert transfer.decided_by == staff


def test_approve_one_fraud_review_and_reject_another(staff_page: Page, seeded: Seeded) -> None:
    page = staff_page
    approved = seeded.held
    rejected = paid("900.00", "USD", customer_email="trudy@example.com")
    assert rejected.status == "pending"
    page.goto(APPROVALS)
    expect(page.locator("article[data-review]")).to_have_count(2)

    card = page.locator(f'article[data-review="{approved.pk}"]')
    expect(card.locator('[data-field="rules"]')).to_contain_text("amount_limit")
    card.get_by_label("Note (staff only, optional)").fill("Regular customer")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Approve and send").click()
    expect(page.locator(".message.success")).to_contain_text("it is now completed")
    expect(page.locator(f'article[data-review="{approved.pk}"]')).to_have_count(0)

    card = page.locator(f'article[data-review="{rejected.pk}"]')
    card.get_by_label("Reason (staff only)").fill("Card reported stolen")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Reject").click()
    expect(page.locator(".message.success")).to_contain_text(f"Payment {rejected.pk} rejected")
    expect(page.locator("article[data-review]")).to_have_count(0)

    assert Payment.objects.get(pk=approved.pk).status == PaymentStatus.COMPLETED
    assert Payment.objects.get(pk=rejected.pk).status == PaymentStatus.FAILED
    decisions = dict(
        FraudAssessment.objects.filter(payment_id__in=[approved.pk, rejected.pk]).values_list(
            "payment_id", "review_status"
        )
    )
    assert decisions == {approved.pk: "approved", rejected.pk: "rejected"}


# -- live updates -------------------------------------------------------------------------------


def _poll_seconds(settings: Any, seconds: int) -> None:
    settings.PAYDESK = {**settings.PAYDESK, "DASHBOARD": {"POLL_SECONDS": seconds}}


def _stop_the_clock(page: Page) -> None:
    """Stop the page's fake clock (``page.clock.install()`` before loading) where it is now:
    from here on a timer fires only when the test advances the clock, however slow the
    machine, so the number of polls is exact."""
    now_ms = page.evaluate("Date.now()")
    page.clock.pause_at(dt.datetime.fromtimestamp((now_ms + 1) / 1000, tz=dt.UTC))


def test_the_overview_refreshes_its_numbers_without_reloading(
    staff_page: Page, seeded: Seeded, settings: Any
) -> None:
    _poll_seconds(settings, 5)
    page = staff_page
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if LIVE in request.url else None)
    # A fake clock: the 5-second poll comes when the test says, not after a real wait.
    page.clock.install()
    page.goto(OVERVIEW)
    live = page.locator("#overview-live")
    expect(live).to_have_attribute("hx-trigger", re.compile(r"^every 5s "))
    before = Payment.objects.count()
    expect(page.locator('[data-stat="payments"] .value')).to_have_attribute(
        "data-value", str(before)
    )
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    _stop_the_clock(page)

    paid("5.00", "USD")
    page.clock.run_for(5_500)
    expect(page.locator('[data-stat="payments"] .value')).to_have_attribute(
        "data-value", str(before + 1)
    )
    assert page.evaluate("window.loadedOnce") is True
    assert len(polls) == 1
    assert "period=7d" in polls[0]
    assert currency_cell(page, "USD", "gross") == Decimal("74.49")


def test_a_hidden_tab_does_not_poll_and_refreshes_when_shown_again(
    staff_page: Page, seeded: Seeded, settings: Any
) -> None:
    _poll_seconds(settings, 5)
    page = staff_page
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if LIVE in request.url else None)
    # The tab is hidden from the start (a background tab): document.hidden is true.
    page.add_init_script(
        """
        window.__hidden = true;
        Object.defineProperty(Document.prototype, "hidden", {
          configurable: true, get() { return window.__hidden; } });
        Object.defineProperty(Document.prototype, "visibilityState", {
          configurable: true, get() { return window.__hidden ? "hidden" : "visible"; } });
        """
    )
    page.clock.install()
    page.goto(OVERVIEW)
    expect(page.locator("#overview-live")).to_be_attached()
    _stop_the_clock(page)
    before = Payment.objects.count()
    paid("5.00", "USD")
    page.clock.run_for(16_000)  # three poll intervals
    page.wait_for_timeout(300)  # a request, had one been sent, would be seen by now
    assert polls == []
    expect(page.locator('[data-stat="payments"] .value')).to_have_attribute(
        "data-value", str(before)
    )

    # Shown again: the numbers refresh at once, without waiting for the next interval.
    page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator('[data-stat="payments"] .value')).to_have_attribute(
        "data-value", str(before + 1)
    )
    assert len(polls) == 1
