"""Fixtures and helpers for the staff dashboard's browser tests (test_dashboard*.py).

The test modules import the fixtures they use from here (``demo_paydesk`` among them, which
replaces conftest's: the demo's paydesk plus the bank-transfer provider and a fraud rule, so
the approval queues have something to hold). Data is made the way a shop makes it, through
``paydesk.services`` with the sandbox (its webhooks delivered through the pipeline
in-process) and the bank-transfer provider; the expected figures come from the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page

from paydesk import services
from paydesk.api.keys import create_api_key
from paydesk.models import BankTransfer, Payment
from paydesk.security.audit import AuditLogger
from paydesk.services.eft import record_receipt
from paydesk.services.webhooks import webhook_model
from tests.test_provider_bank_transfer import BANK_OPTIONS, IN_MEMORY_STORAGES, PDF

PASSWORD = "correct horse battery staple"
#: Held for review above this many US dollars (amount_limit's score 60 is a "review").
REVIEW_LIMIT_USD = "500.00"
VISA = "pm_sandbox_visa"
DECLINED = "pm_sandbox_declined"


@pytest.fixture
def demo_paydesk(settings: Any) -> None:
    """The demo's paydesk, plus the bank-transfer provider and a fraud rule that holds
    large USD payments for review; receipts are kept in memory."""
    settings.PAYDESK = {
        **settings.PAYDESK,
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "inprocess"},
            },
            "bank_transfer": {"BACKEND": "bank_transfer", "OPTIONS": dict(BANK_OPTIONS)},
        },
        "PROCESSING_FEE_RATE": "3",
        "REFUND_POLICY": "bookings.policy.BookingRefundPolicy",
        "FRAUD": {
            "RULES": [
                {
                    "RULE": "amount_limit",
                    "OPTIONS": {"limits": {"USD": REVIEW_LIMIT_USD}, "score": 60},
                }
            ]
        },
    }
    settings.STORAGES = IN_MEMORY_STORAGES


@pytest.fixture
def staff(db: None) -> Any:
    """An active staff superuser: every dashboard action is allowed."""
    return get_user_model().objects.create_superuser(
        "ops", email="ops@example.com", password=PASSWORD
    )


@pytest.fixture
def customer(db: None) -> Any:
    """A signed-up customer: active, not staff."""
    return get_user_model().objects.create_user(
        "dana", email="dana@example.com", password=PASSWORD, first_name="Dana"
    )


def log_in(context: BrowserContext, user: Any, base_url: str) -> None:
    """Sign ``user`` in for ``context`` without the login form: Django's test client makes
    the session, and its cookie is copied into the browser."""
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base_url}])


@pytest.fixture
def staff_page(page: Page, staff: Any, live_server: Any) -> Page:
    """``page``, signed in as ``staff``."""
    log_in(page.context, staff, live_server.url)
    return page


# -- data ---------------------------------------------------------------------------------------


def paid(amount: str, currency: str, *, token: str = VISA, **kwargs: Any) -> Payment:
    """A sandbox payment as a checkout makes it: completed with ``VISA``, failed when declined,
    held for review above ``REVIEW_LIMIT_USD``."""
    payment = services.create_payment(
        amount=amount, currency=currency, provider="sandbox", **kwargs
    )
    return services.process_payment(payment=payment, payment_method_token=token)


def awaiting_transfer(amount: str = "150.00", currency: str = "EUR", **kwargs: Any) -> Payment:
    """A bank-transfer payment waiting for the customer's money (as tests/test_eft.py)."""
    payment = services.create_payment(
        amount=amount, currency=currency, provider="bank_transfer", **kwargs
    )
    payment = services.process_payment(payment=payment)
    assert payment.status == "requires_action", (payment.failure_code, payment.failure_message)
    return payment


def with_receipt(payment: Payment) -> BankTransfer:
    """The customer uploads a receipt (a tiny PDF) for ``payment``'s transfer."""
    transfer = BankTransfer.objects.get(payment=payment)
    receipt = SimpleUploadedFile("receipt.pdf", PDF, content_type="application/pdf")
    record_receipt(transfer=transfer, file=receipt, user=None)
    return BankTransfer.objects.get(pk=transfer.pk)


@dataclass
class Seeded:
    """What ``seeded`` made, for the tests to find their way to."""

    usd: list[Payment]
    eur: Payment
    declined: Payment
    jpy: Payment
    refunded: Payment
    transfer: Payment
    held: Payment
    delivery_pk: int


@pytest.fixture
def seeded(staff: Any, customer: Any) -> Seeded:
    """A small shop's week: completed USD/EUR/JPY payments, a decline, a partial refund, a
    bank transfer with its receipt awaiting approval, a payment held for fraud review, the
    sandbox's webhook deliveries, an audit entry and an API key."""
    usd = [
        paid("19.99", "USD", customer_email="alice@example.com", reference="order-1001"),
        paid("42.00", "USD", customer_email="bob@example.com", reference="order-1002"),
        paid("7.50", "USD", user=customer, customer_email="dana@example.com"),
    ]
    eur = paid("35.00", "EUR", customer_email="chloe@example.com", reference="order-1003")
    declined = paid("12.00", "USD", token=DECLINED, customer_email="eve@example.com")
    jpy = paid("1500", "JPY", customer_email="kenji@example.com")
    refunded = paid("60.00", "EUR", customer_email="frank@example.com", reference="order-1004")
    services.create_refund(payment=refunded, amount="20.00", reason="one item returned")
    transfer = awaiting_transfer("150.00", "EUR", customer_email="grace@example.com")
    with_receipt(transfer)
    held = paid("750.00", "USD", customer_email="mallory@example.com", reference="order-1005")
    assert held.status == "pending", held.status
    AuditLogger().log_payment(
        payment=usd[0], action="payment_note", actor=staff, success=True, source="dashboard"
    )
    create_api_key(owner=staff, name="Warehouse sync", scopes=["read"])
    delivery = webhook_model().objects.filter(provider="sandbox").order_by("-pk").first()
    assert delivery is not None, "the sandbox delivered no webhook through the pipeline"
    return Seeded(
        usd=usd,
        eur=eur,
        declined=declined,
        jpy=jpy,
        refunded=Payment.objects.get(pk=refunded.pk),
        transfer=transfer,
        held=held,
        delivery_pk=delivery.pk,
    )


def money(value: str | Decimal) -> Decimal:
    return Decimal(str(value))


#: Every dashboard page, by the name its screenshots get: (URL name, args from ``Seeded``).
def page_urls(data: Seeded) -> dict[str, str]:
    return {
        "overview": reverse("paydesk_dashboard:overview"),
        "payments": reverse("paydesk_dashboard:payments"),
        "payment": reverse("paydesk_dashboard:payment-detail", args=[data.refunded.pk]),
        "webhooks": reverse("paydesk_dashboard:webhooks"),
        "delivery": reverse("paydesk_dashboard:webhook-delivery", args=[data.delivery_pk]),
        "approvals": reverse("paydesk_dashboard:approvals"),
        "audit": reverse("paydesk_dashboard:audit"),
        "api-keys": reverse("paydesk_dashboard:api-keys"),
    }


PAGES = (
    "overview",
    "payments",
    "payment",
    "webhooks",
    "delivery",
    "approvals",
    "audit",
    "api-keys",
)
