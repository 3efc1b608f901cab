"""The demo shop's checkout in a real browser, through the sandbox's hosted pages.

A customer browses the shop, buys, types a test card on the sandbox's hosted checkout page
(and answers its 3-D Secure challenge), comes back through paydesk's return view to the
order page. The sandbox delivers its webhooks through paydesk's pipeline meanwhile
(``demo_paydesk`` in conftest.py). Every page is screenshotted light and dark, on desktop and
phone, and must not scroll sideways on a phone.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from paydesk.models import Payment, SandboxCharge, WebhookEvent
from shop.models import Order, Product

from .helpers import screenshot_all

VISA = "4242 4242 4242 4242"
THREE_DS = "4000 0025 0000 3155"
CHECKOUT_URL = re.compile(r"/paydesk/sandbox/checkout/pi_sb_[^/]+/$")
CHALLENGE_URL = re.compile(r"/paydesk/sandbox/3ds/pi_sb_[^/]+/$")


@pytest.fixture
def product() -> Product:
    return Product.objects.create(
        name="Paydesk T-shirt",
        description="Soft, organic, and paid for in the sandbox.",
        price=Decimal("24.99"),
        currency="USD",
    )


def buy(page: Page, product: Product, *, quantity: int = 1) -> None:
    """From the product page, buy ``quantity``; ends on the sandbox's hosted checkout."""
    expect(page.get_by_role("heading", name=product.name)).to_be_visible()
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Buy").click()
    expect(page).to_have_url(CHECKOUT_URL)


def type_card(page: Page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry").fill("12/34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay", exact=True).click()


def order_page(page: Page, order: Order) -> None:
    """Wait until the browser is on ``order``'s page (back from the provider)."""
    path = reverse("shop:order-detail", args=[order.public_id])
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def webhook_types(payment: Payment) -> list[str]:
    """The sandbox's webhooks for ``payment``, all of which the pipeline must have processed."""
    events = WebhookEvent.objects.filter(provider="sandbox", payment_id=payment.pk)
    unprocessed = [
        (e.event_type, e.status, e.error_message) for e in events if e.status != "processed"
    ]
    assert not unprocessed
    return sorted(e.event_type for e in events)


def test_visa_checkout_pays_the_order(page: Page, product: Product) -> None:
    page.goto(reverse("shop:product-list"))
    expect(page.get_by_role("heading", name="Products")).to_be_visible()
    screenshot_all(page, "shop-list")

    page.get_by_role("link", name=product.name).click()
    screenshot_all(page, "product")
    buy(page, product, quantity=2)

    expect(page.get_by_role("heading", level=1)).to_have_text("Pay $49.98")
    screenshot_all(page, "checkout")
    type_card(page, VISA)

    order = Order.objects.get()
    order_page(page, order)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Paid")
    expect(page.get_by_text("Thank you: your payment went through.")).to_be_visible()
    screenshot_all(page, "order-paid")

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.total == Decimal("49.98")
    payment = order.payment
    assert payment is not None
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("49.98")
    # The sandbox told paydesk by webhook too, and the pipeline processed it.
    assert "payment.succeeded" in webhook_types(payment)

    # The demo's async status page asks the provider again and shows the same.
    page.goto(reverse("shop:order-status", args=[order.public_id]))
    expect(page.locator("#payment-status")).to_have_text("completed")
    screenshot_all(page, "order-status")


def test_failed_3ds_challenge_leaves_the_payment_failed(page: Page, product: Product) -> None:
    page.goto(reverse("shop:product-detail", args=[product.pk]))
    buy(page, product)
    type_card(page, THREE_DS)

    expect(page).to_have_url(CHALLENGE_URL)
    expect(page.get_by_role("heading", name="Confirm this payment")).to_be_visible()
    expect(page.get_by_text("confirm a payment of $24.99")).to_be_visible()
    screenshot_all(page, "3ds-challenge")
    page.get_by_role("button", name="Fail authentication").click()

    order = Order.objects.get()
    order_page(page, order)
    expect(page.locator(".status-failed")).to_have_text("failed")
    expect(page.get_by_role("button", name="Try another card")).to_be_visible()
    screenshot_all(page, "order-failed")

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    payment = Payment.objects.get(pk=order.payment_id)
    assert payment.status == "failed"
    assert payment.failure_code == "authentication_required"
    assert payment.captured_amount == 0
    charge = SandboxCharge.objects.get(pk=payment.provider_payment_id)
    assert (charge.status, charge.scenario) == ("failed", "3ds")
    assert "payment.failed" in webhook_types(payment)


def test_after_a_failed_challenge_another_card_pays(page: Page, product: Product) -> None:
    page.goto(reverse("shop:product-detail", args=[product.pk]))
    buy(page, product)
    type_card(page, THREE_DS)
    page.get_by_role("button", name="Fail authentication").click()
    page.get_by_role("button", name="Try another card").click()

    expect(page).to_have_url(CHECKOUT_URL)
    type_card(page, THREE_DS)
    expect(page).to_have_url(CHALLENGE_URL)
    page.get_by_role("button", name="Complete authentication").click()

    order = Order.objects.get()
    order_page(page, order)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Paid")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    payment = Payment.objects.get(pk=order.payment_id)
    assert (payment.status, payment.attempt) == ("completed", 2)
