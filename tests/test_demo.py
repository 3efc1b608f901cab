"""The demo project (example/), end to end through Django's test client.

The shop and bookings apps are installed by tests/settings.py and mounted under /demo/ by
tests/urls.py. paydesk sends its signals on commit and these tests run inside a transaction,
so every step that changes a payment runs under ``django_capture_on_commit_callbacks
(execute=True)``: the demo's receivers (order/booking paid, refunded) then run as they would
after a real commit.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter, defaultdict
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.urls import include, path, resolve, reverse
from django.utils import timezone

from bookings.models import Booking, Event
from demo import views as demo_views
from paydesk import services
from paydesk.models import (
    AuditLog,
    BankTransfer,
    FraudAssessment,
    FraudCheck,
    Payment,
    Refund,
    SandboxCharge,
    TransactionLog,
    WebhookEvent,
)
from paydesk.services import analytics, eft, fraud, webhooks
from paydesk.states import LedgerFact, LedgerKind, fold, fold_refund
from shop import history as history_module
from shop.history import HISTORY_PREFIX
from shop.models import Order, Product

pytestmark = pytest.mark.django_db

# The demo's pages without paydesk's dashboard (test_landing_page_does_without_a_dashboard).
urlpatterns = [
    path("", demo_views.home, name="home"),
    path("admin/", admin.site.urls),
    path("paydesk/", include("paydesk.urls")),
    path("shop/", include("shop.urls")),
    path("bookings/", include("bookings.urls")),
]

VISA = "4242 4242 4242 4242"
DECLINED = "4000000000000002"
THREE_DS = "4000002500003155"


@pytest.fixture(autouse=True)
def demo_paydesk(settings):
    # What demo.settings configures on top of the test suite's sandbox.
    settings.PAYDESK = {
        **settings.PAYDESK,
        "PROCESSING_FEE_RATE": "3",
        "REFUND_POLICY": "bookings.policy.BookingRefundPolicy",
    }


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``committed(fn, ...)`` calls ``fn`` and runs the on-commit callbacks it queued."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


@pytest.fixture
def product():
    return Product.objects.create(name="T-shirt", price=Decimal("24.99"), currency="USD")


@pytest.fixture
def event():
    return Event.objects.create(
        title="Workshop",
        starts_at=timezone.now() + dt.timedelta(days=7),
        price=Decimal("100.00"),
        currency="USD",
    )


@pytest.fixture
def customer(django_user_model):
    return django_user_model.objects.create_user(
        username="cust", email="cust@example.com", password="pw"
    )


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        username="boss", email="boss@example.com", password="pw", is_staff=True
    )


def _token(client, url):
    page = client.get(url)
    assert page.status_code == 200
    return page.context["form"]["checkout_token"].value()


def buy(client, committed, product, *, quantity=1, token=None):
    """Submit the product's buy form; returns the response (a redirect to the checkout)."""
    url = reverse("shop:product-detail", args=[product.pk])
    token = token or _token(client, url)
    return committed(client.post, url, {"quantity": quantity, "checkout_token": token})


def book(client, committed, event, *, email="guest@example.com"):
    url = reverse("bookings:event-detail", args=[event.pk])
    token = _token(client, url)
    return committed(client.post, url, {"email": email, "checkout_token": token})


def pay(client, committed, checkout_url, card):
    """Type ``card`` on the sandbox's hosted checkout page and follow every redirect."""
    return committed(client.post, checkout_url, {"card_number": card}, follow=True)


def checkout_url_of(response):
    assert response.status_code == 302, response
    url = response["Location"]
    assert url.startswith("/paydesk/sandbox/checkout/"), url
    return url


# -- shop --------------------------------------------------------------------------------------


def test_product_list_links_products_and_home(client, product):
    page = client.get(reverse("shop:product-list"))
    assert page.status_code == 200
    html = page.content.decode()
    for url in (
        reverse("shop:product-detail", args=[product.pk]),
        reverse("bookings:event-list"),
        reverse("admin:index"),
        reverse("home"),
    ):
        assert f'href="{url}"' in html
    assert "make demo" in html
    assert "$24.99" in html


def test_buy_with_visa_pays_the_order(client, committed, product):
    response = buy(client, committed, product, quantity=2)
    checkout = checkout_url_of(response)
    page = client.get(checkout)
    assert page.status_code == 200
    assert "$49.98" in page.content.decode()

    final = pay(client, committed, checkout, VISA)
    order = Order.objects.get()
    assert final.redirect_chain[-1][0] == reverse("shop:order-detail", args=[order.public_id])
    assert order.status == Order.Status.PAID
    assert order.total == Decimal("49.98")
    payment = order.payment
    assert payment.status == "completed"
    assert payment.reference == f"order-{order.pk}"
    assert payment.content_object == order
    assert payment.captured_amount == Decimal("49.98")
    assert payment.processing_fee == Decimal("1.50")  # 3 % of 49.98, rounded once
    capture = payment.ledger.get(kind="capture")
    assert capture.amount == Decimal("49.98")

    page = client.get(reverse("shop:order-detail", args=[order.public_id]))
    assert "Paid" in page.content.decode()
    assert "your payment went through" in page.content.decode()


def test_declined_card_leaves_the_order_pending(client, committed, product):
    checkout = checkout_url_of(buy(client, committed, product))
    final = pay(client, committed, checkout, DECLINED)
    order = Order.objects.get()
    assert order.status == Order.Status.PENDING
    assert order.payment.status == "failed"
    assert order.payment.failure_code == "card_declined"
    assert not order.payment.ledger.filter(kind="capture").exists()
    html = final.content.decode()
    assert "Your card was declined." in html
    assert "Try another card" in html

    # The customer tries again with a good card: a new attempt on the same payment.
    retry = committed(client.post, reverse("shop:order-retry", args=[order.public_id]))
    pay(client, committed, checkout_url_of(retry), VISA)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.payment.status == "completed"
    assert order.payment.attempt == 2
    assert Payment.objects.count() == 1


def test_3ds_card_shows_the_challenge_and_passing_completes(client, committed, product):
    checkout = checkout_url_of(buy(client, committed, product))
    response = committed(client.post, checkout, {"card_number": THREE_DS})
    assert response.status_code == 302
    challenge_url = response["Location"]
    assert challenge_url.startswith("/paydesk/sandbox/3ds/")
    challenge = client.get(challenge_url)
    assert challenge.status_code == 200
    assert "Complete authentication" in challenge.content.decode()

    committed(client.post, challenge_url, {"outcome": "pass"}, follow=True)
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
    assert order.payment.status == "completed"
    assert order.payment.ledger.filter(kind="capture").exists()


def test_3ds_failure_leaves_the_payment_failed(client, committed, product):
    checkout = checkout_url_of(buy(client, committed, product))
    challenge_url = committed(client.post, checkout, {"card_number": THREE_DS})["Location"]
    final = committed(client.post, challenge_url, {"outcome": "fail"}, follow=True)
    order = Order.objects.get()
    assert order.status == Order.Status.PENDING
    assert order.payment.status == "failed"
    assert order.payment.failure_code == "authentication_required"
    assert "3-D Secure" in final.content.decode()


def test_double_submitted_buy_form_makes_one_payment(client, committed, product):
    url = reverse("shop:product-detail", args=[product.pk])
    token = _token(client, url)
    first = buy(client, committed, product, token=token)
    second = buy(client, committed, product, token=token)
    assert checkout_url_of(first) == checkout_url_of(second)
    assert Order.objects.count() == 1
    assert Payment.objects.count() == 1
    assert SandboxCharge.objects.count() == 1

    # After paying, the same form again just shows the paid order.
    pay(client, committed, checkout_url_of(first), VISA)
    third = buy(client, committed, product, token=token)
    order = Order.objects.get()
    assert third["Location"] == reverse("shop:order-detail", args=[order.public_id])
    assert Payment.objects.count() == 1
    assert order.status == Order.Status.PAID


def test_buy_form_without_a_valid_token_is_refused(client, product):
    url = reverse("shop:product-detail", args=[product.pk])
    response = client.post(url, {"quantity": 1, "checkout_token": "x"})
    assert response.status_code == 400
    assert "reload the page" in response.content.decode()
    assert not Order.objects.exists()


def test_a_users_order_is_hidden_from_others(client, committed, product, customer, staff):
    client.force_login(customer)
    buy(client, committed, product)
    order = Order.objects.get()
    assert order.user == customer
    url = reverse("shop:order-detail", args=[order.public_id])
    assert client.get(url).status_code == 200
    client.logout()
    assert client.get(url).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 200


# -- bookings ----------------------------------------------------------------------------------


def _paid_booking(client, committed, event, user):
    client.force_login(user)
    pay(client, committed, checkout_url_of(book(client, committed, event, email=user.email)), VISA)
    booking = Booking.objects.get()
    assert booking.status == Booking.Status.PAID
    assert booking.payment.status == "completed"
    return booking


def refund(client, committed, booking, amount, reason="changed plans"):
    url = reverse("bookings:booking-refund", args=[booking.public_id])
    return committed(client.post, url, {"amount": amount, "reason": reason}, follow=True)


def test_partial_refunds_then_the_booking_is_refunded(client, committed, event, customer):
    booking = _paid_booking(client, committed, event, customer)
    page = client.get(reverse("bookings:booking-detail", args=[booking.public_id]))
    assert "Refund part of this booking" in page.content.decode()

    response = refund(client, committed, booking, "30.00")
    assert "Refunded $30.00." in response.content.decode()
    booking.refresh_from_db()
    payment = booking.payment
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Decimal("30.00")
    assert booking.status == Booking.Status.PAID  # not yet: 70.00 is still paid

    too_much = refund(client, committed, booking, "80.00")
    # (The core prints the stored 4-place decimals today: "at most 70.0000".)
    assert re.search(
        r"Refund not made: Cannot refund 80\.00 USD.*at most 70\.00", too_much.content.decode()
    )
    assert Refund.objects.count() == 1

    refund(client, committed, booking, "70.00")
    booking.refresh_from_db()
    assert booking.payment.status == "refunded"
    assert booking.status == Booking.Status.REFUNDED
    assert list(
        booking.payment.ledger.filter(kind="refund_completed").values_list("amount", flat=True)
    ) == [Decimal("30.00"), Decimal("70.00")]


def test_staff_can_refund_but_other_customers_cannot(
    client, committed, event, customer, staff, django_user_model
):
    booking = _paid_booking(client, committed, event, customer)
    stranger = django_user_model.objects.create_user(username="eve", password="pw")
    client.force_login(stranger)
    # Another customer does not even see the booking.
    assert refund(client, committed, booking, "10.00").status_code == 404
    assert not Refund.objects.exists()

    client.force_login(staff)
    response = refund(client, committed, booking, "10.00")
    assert "Refunded $10.00." in response.content.decode()
    assert Refund.objects.get().processed_by == staff


def test_refund_amount_errors_are_shown(client, committed, event, customer):
    booking = _paid_booking(client, committed, event, customer)
    response = refund(client, committed, booking, "10.005")
    html = response.content.decode()
    assert "Refund not made:" in html
    assert "more decimal places than USD allows" in html
    assert not Refund.objects.exists()


def test_refund_policy_refuses_once_the_event_started(client, committed, event, customer):
    booking = _paid_booking(client, committed, event, customer)
    Event.objects.filter(pk=event.pk).update(starts_at=timezone.now() - dt.timedelta(minutes=5))

    response = refund(client, committed, booking, "10.00")
    html = response.content.decode()
    assert "Refund not made: Refunds for &#x27;Workshop&#x27; closed when the event started" in html
    assert not Refund.objects.exists()
    booking.refresh_from_db()
    assert booking.payment.status == "completed"
    assert booking.status == Booking.Status.PAID


def test_booking_is_closed_once_the_event_started(client, committed, event):
    url = reverse("bookings:event-detail", args=[event.pk])
    token = _token(client, url)
    Event.objects.filter(pk=event.pk).update(starts_at=timezone.now() - dt.timedelta(minutes=1))
    response = committed(client.post, url, {"email": "a@example.com", "checkout_token": token})
    assert response.status_code == 400
    assert "booking is closed" in response.content.decode()
    assert not Booking.objects.exists()
    assert not Payment.objects.exists()


def test_guest_booking_pays_and_has_no_refund_form(client, committed, event):
    pay(client, committed, checkout_url_of(book(client, committed, event)), VISA)
    booking = Booking.objects.get()
    assert booking.user is None
    assert booking.status == Booking.Status.PAID
    page = client.get(reverse("bookings:booking-detail", args=[booking.public_id]))
    assert "Refund part of this booking" not in page.content.decode()
    assert refund(client, committed, booking, "10.00").status_code == 403


# -- seed_demo ---------------------------------------------------------------------------------


@pytest.fixture
def seed_settings(settings, tmp_path):
    """What seed_demo needs of demo.settings: its providers, its fraud rules, a media root."""
    from demo.settings import DEMO_FRAUD
    from demo.settings import PAYDESK as DEMO

    sandbox = settings.PAYDESK["PROVIDERS"]["sandbox"]
    settings.PAYDESK = {
        **settings.PAYDESK,
        "PROVIDERS": {
            **settings.PAYDESK["PROVIDERS"],
            "sandbox_eu": {**sandbox, "OPTIONS": dict(sandbox["OPTIONS"])},
            "bank_transfer": DEMO["PROVIDERS"]["bank_transfer"],
        },
        "FRAUD": DEMO_FRAUD,
    }
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


def _seed(committed, *args):
    out = StringIO()
    committed(call_command, "seed_demo", *args, stdout=out)
    return out.getvalue()


def _assert_folds(payments):
    """Every payment's cached status and amounts are the fold of its stored ledger."""
    facts = defaultdict(list)
    rows = TransactionLog.objects.filter(payment__in=payments).values_list(
        "payment_id", "kind", "idempotency_key", "attempt", "amount", "ref"
    )
    for payment_id, kind, key, attempt, amount, ref in rows:
        facts[payment_id].append(LedgerFact(LedgerKind(kind), key, attempt, amount, ref))
    for payment in payments:
        state = fold(facts[payment.pk])
        assert (
            state.status,
            state.attempt,
            state.authorized,
            state.captured,
            state.refunded,
            state.refund_reserved,
        ) == (
            payment.status,
            payment.attempt,
            payment.authorized_amount,
            payment.captured_amount,
            payment.refunded_amount,
            payment.refund_reserved_amount,
        ), payment.pk
    for refund_row in Refund.objects.filter(payment__in=payments):
        assert fold_refund(facts[refund_row.payment_id], refund_row.pk) == refund_row.status
    return len(payments)


def test_seed_demo_is_idempotent_and_prints_working_logins(client, committed, seed_settings):
    first = _seed(committed)
    tables = (Payment, TransactionLog, Refund, WebhookEvent, AuditLog, FraudCheck, BankTransfer)
    counts = {model: model.objects.count() for model in tables}
    second = _seed(committed)
    assert {model: model.objects.count() for model in tables} == counts
    assert "Payment history: already seeded" in second

    assert Product.objects.count() == 4
    assert set(Product.objects.values_list("currency", flat=True)) == {"USD", "EUR", "JPY"}
    assert Event.objects.count() == 2
    assert sum(e.has_started for e in Event.objects.all()) == 1
    assert get_user_model().objects.filter(username__in=["staff", "customer"]).count() == 2
    # The started event's booking is paid once, however often the seed runs; with the fraud
    # review and the bank transfer, three payments are made through the services.
    booking = Booking.objects.get()
    assert booking.event.has_started
    assert booking.status == Booking.Status.PAID
    assert Payment.objects.exclude(reference__startswith=HISTORY_PREFIX).count() == 3

    pattern = r"Staff login: http://127\.0\.0\.1:8000/admin/ user=staff password=(\S+)"
    passwords = [re.search(pattern, text).group(1) for text in (first, second)]
    assert passwords[0] != passwords[1]  # reset on every run ...
    assert client.login(username="staff", password=passwords[1])  # ... and the last one works
    assert not client.login(username="staff", password=passwords[0])
    staff = get_user_model().objects.get(username="staff")
    assert staff.is_staff
    assert staff.is_superuser
    customer_password = re.search(r"user=customer password=(\S+)", second).group(1)
    assert client.login(username="customer", password=customer_password)

    # Its refund is refused by the demo's policy, with the reason shown.
    client.force_login(staff)
    response = refund(client, committed, booking, "5.00")
    assert "closed when the event started" in response.content.decode()


def test_seeded_history_is_big_varied_and_folds_to_its_ledger(
    committed, seed_settings, django_assert_max_num_queries
):
    started = time.monotonic()
    # The history is a few dozen bulk inserts; the rest (the booking, the fraud review and the
    # bank transfer, through the services) about a hundred queries: 150 in all. Where a
    # statement may bind only 999 values (SQLite before Django 6), the inserts come in smaller
    # batches: about 900. One query per payment would be over 3,000.
    params = connection.features.max_query_params
    with django_assert_max_num_queries(400 if params is None or params > 10_000 else 1500):
        output = _seed(committed)
    elapsed = time.monotonic() - started
    assert elapsed < 60, elapsed  # about 6 s on SQLite on a laptop; generous for CI
    history = Payment.objects.filter(reference__startswith=HISTORY_PREFIX)
    assert 3000 <= history.count() <= 5000
    assert f"Payment history: {history.count()} payments" in output

    # Every payment, seeded in bulk or made by the services, is the fold of its ledger.
    assert _assert_folds(list(Payment.objects.all())) == Payment.objects.count()

    # Spread over 90 days, busier on weekdays than at weekends, growing.
    now = timezone.now()
    oldest = history.order_by("created_at").first().created_at
    assert dt.timedelta(days=88) < now - oldest <= dt.timedelta(days=90)
    per_day = Counter(timezone.localdate(c) for c in history.values_list("created_at", flat=True))
    assert len(per_day) >= 89
    today = timezone.localdate(now)
    weekdays = [n for day, n in per_day.items() if day.weekday() < 5 and day != today]
    weekends = [n for day, n in per_day.items() if day.weekday() >= 5 and day != today]
    assert sum(weekdays) / len(weekdays) > 1.15 * sum(weekends) / len(weekends)
    recent = history.filter(created_at__gte=now - dt.timedelta(days=30)).count()
    early = history.filter(created_at__lt=oldest + dt.timedelta(days=30)).count()
    assert recent > 1.3 * early

    # Only providers the demo configures, many currencies, every outcome.
    providers = set(history.values_list("provider", flat=True))
    assert providers == {"sandbox", "sandbox_eu", "bank_transfer"}
    currencies = set(history.values_list("currency", flat=True))
    assert currencies == {"USD", "EUR", "JPY", "TRY", "KRW", "GBP"}
    statuses = Counter(history.values_list("status", flat=True))
    assert statuses["completed"] > 0.6 * history.count()
    for status in ("failed", "partially_refunded", "refunded", "cancelled", "requires_action"):
        assert statuses[status] > 0, status
    failures = set(history.values_list("failure_code", flat=True))
    assert {"card_declined", "fraud_blocked", "transfer_rejected"} <= failures
    assert Refund.objects.filter(payment__in=history).count() > 200
    assert TransactionLog.objects.filter(kind=LedgerKind.DISPUTE_OPENED).exists()
    decisions = set(FraudCheck.objects.values_list("decision", flat=True))
    assert decisions == {"allow", "review", "block"}
    assert FraudAssessment.objects.filter(review_status="approved").exists()
    assert FraudAssessment.objects.filter(review_status="rejected").exists()
    transfers = set(BankTransfer.objects.values_list("status", flat=True))
    assert {"approved", "rejected", "expired", "awaiting_transfer"} <= transfers
    deliveries = Counter(WebhookEvent.objects.values_list("status", flat=True))
    assert deliveries["processed"] > 2500
    assert deliveries["failed"] + deliveries["dead"] > 0
    assert deliveries["pending"] > 0
    assert WebhookEvent.objects.exclude(error_message="").filter(success=False).exists()
    assert AuditLog.objects.count() > 300

    # The dashboard's numbers: the analytics services see the history.
    summary = analytics.summary(start=now - dt.timedelta(days=30), end=now)
    usd = next(c for c in summary.currencies if c.currency == "USD")
    assert usd.successful > 200
    assert usd.refunded.amount > 0
    assert Decimal("0.8") < usd.success_rate < Decimal("0.99")


def test_seed_demo_makes_a_fraud_review_and_a_bank_transfer_through_the_services(
    committed, seed_settings
):
    output = _seed(committed, "--history-days", "3")
    held = Payment.objects.get(reference="demo-fraud-review-1")
    assert held.status == "pending"
    assert held.fraud_assessment.review_status == "pending"
    assert held.fraud_assessment.reasons[0]["rule"] == "amount_limit"
    assert held in [assessment.payment for assessment in fraud.review_queue()]
    assert held.pk in output

    transfer = BankTransfer.objects.get(payment__reference="demo-bank-transfer-1")
    assert transfer.status == "receipt_uploaded"
    assert transfer.receipt.read().startswith(b"%PDF-")
    assert transfer.payment.status == "requires_action"
    assert transfer.reference in output
    assert AuditLog.objects.filter(action="eft_receipt_uploaded", object_id=transfer.payment_id)

    # Staff decide both, through the services; the next seed makes new ones to decide.
    staff = get_user_model().objects.get(username="staff")
    committed(fraud.approve_review, payment=held, user=staff)
    committed(eft.approve_transfer, transfer=transfer, user=staff)
    held.refresh_from_db()
    assert held.status == "completed"
    assert Payment.objects.get(pk=transfer.payment_id).status == "completed"
    _seed(committed, "--history-days", "3")
    assert Payment.objects.get(reference="demo-fraud-review-2").status == "pending"
    assert BankTransfer.objects.get(payment__reference="demo-bank-transfer-2").is_open


def test_staff_can_act_on_seeded_history(committed, seed_settings):
    """The simulated provider side is seeded too: refunds, syncs and replays work."""
    _seed(committed, "--history-days", "20")
    staff = get_user_model().objects.get(username="staff")
    history = Payment.objects.filter(reference__startswith=HISTORY_PREFIX)
    for alias in ("sandbox", "sandbox_eu", "bank_transfer"):
        payment = history.filter(provider=alias, status="completed").first()
        made = committed(services.create_refund, payment=payment, reason="test", user=staff)
        assert made.status == "completed", alias
        payment.refresh_from_db()
        assert payment.status == "refunded"
        assert committed(services.sync_payment, payment=payment).status == "refunded"
    for delivery in WebhookEvent.objects.filter(status__in=["failed", "dead"]):
        replayed = committed(webhooks.process_webhook, delivery=delivery, force=True)
        assert replayed.status == "processed", replayed.error_message
    _assert_folds(list(history))


def test_history_is_deterministic(seed_settings):
    now = timezone.now()

    def rows():
        builder = history_module._Builder(now=now, seed=7, days=5, staff=None)
        builder.build()
        return [
            (s.payment.pk, s.payment.amount, s.payment.currency, s.payment.status)
            for s in builder.stories
        ]

    first = rows()
    assert first == rows()
    assert len(first) > 50


# -- landing page ------------------------------------------------------------------------------


def test_landing_page_links_everything(client):
    page = client.get(reverse("home"))
    assert page.status_code == 200
    html = page.content.decode()
    links = set(re.findall(r'href="([^"]+)"', html))
    expected = {
        reverse("shop:product-list"),
        reverse("bookings:event-list"),
        reverse("admin:index"),
        reverse("paydesk:api:docs"),
        reverse("paydesk:api:redoc"),
        reverse("paydesk:api:schema"),
        "/dashboard/",
    }
    assert expected <= links
    for url in links:  # every link on the page goes somewhere that exists; none off-site
        resolve(url)
    assert "make demo" in html
    assert "new random passwords on every run" in html
    assert 'name="viewport"' in html
    assert "prefers-color-scheme: dark" in html


def test_landing_page_does_without_a_dashboard(client, settings):
    settings.ROOT_URLCONF = "tests.test_demo"  # this module's urlpatterns: no dashboard
    html = client.get("/").content.decode()
    assert 'href="/dashboard/"' not in html
    assert "not mounted in this project yet" in html


def test_demo_urls_put_the_shop_under_shop(settings):
    settings.ROOT_URLCONF = "demo.urls"
    assert reverse("home") == "/"
    assert reverse("shop:product-list") == "/shop/"
    assert reverse("bookings:event-list") == "/bookings/"
    assert resolve("/dashboard/")


# -- demo.settings -----------------------------------------------------------------------------


def test_provider_helper_reads_options_from_the_environment(monkeypatch):
    from demo.settings import provider
    from paydesk.conf import resolve

    entry = provider(
        "my-stripe",
        "paydesk.providers.stripe.StripeProvider",
        "SECRET_KEY",
        "WEBHOOK_SECRET",
        defaults={"WEBHOOK_SECRET": "whsec_default"},
    )
    assert entry["BACKEND"] == "paydesk.providers.stripe.StripeProvider"
    assert repr(entry["OPTIONS"]["SECRET_KEY"]) == "env('PAYDESK_MY_STRIPE_SECRET_KEY')"
    monkeypatch.setenv("PAYDESK_MY_STRIPE_SECRET_KEY", "sk_test_123")
    assert resolve(entry["OPTIONS"]) == {
        "SECRET_KEY": "sk_test_123",
        "WEBHOOK_SECRET": "whsec_default",
    }


def test_demo_database_defaults_to_immediate_sqlite_and_follows_database_url(monkeypatch):
    from demo.settings import _database

    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = _database()
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert str(config["NAME"]).endswith("db.sqlite3")
    assert config["OPTIONS"] == {"transaction_mode": "IMMEDIATE", "timeout": 20}

    monkeypatch.setenv("DATABASE_URL", "postgres://demo:pw@localhost:5432/paydesk_demo")
    config = _database()
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "paydesk_demo"
