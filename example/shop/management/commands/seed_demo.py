"""Fill the demo with products, events, two logins and 90 days of payments. Safe to run again.

Every run resets the ``staff`` and ``customer`` passwords to new random ones and prints them,
so the printed logins always work. Event dates are moved relative to now, so one event is
always in the future (bookable, refundable) and one has always just started (its paid
booking shows the refund policy refusing).

The payment history (``shop/history.py``, skipped with ``--no-history``) is written once: a
run that finds it leaves it alone. Two items for staff to act on are made through paydesk's
services, like a customer's checkout: a payment held for a fraud review and a bank transfer
with an uploaded receipt waiting for approval. A run that finds one of them still waiting
leaves it; once staff have decided it, the next run makes a new one, so the queues are never
empty after ``make demo``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, Event
from paydesk import services
from paydesk.fraud.pipeline import load_rules
from paydesk.models import BankTransfer, FraudAssessment, Payment, ReviewStatus
from paydesk.models.eft import OPEN_STATUSES
from paydesk.services import eft
from paydesk.states import PaymentStatus
from shop.checkout import PROVIDER
from shop.history import DEFAULT_DAYS, receipt_file, seed_history
from shop.models import Product

PRODUCTS = [
    ("Paydesk T-shirt", "Soft cotton, printed with the ledger's fold.", "24.99", "USD"),
    ("Espresso beans, 1 kg", "Roasted in Lisbon.", "18.50", "EUR"),
    ("Matcha tin", "Ceremonial grade, 40 g.", "3200", "JPY"),
    ("Sticker pack", "Five stickers. Zero-decimal friendly.", "3.00", "USD"),
]

FUTURE_EVENT = "Django payments workshop"
STARTED_EVENT = "Ledger design meetup"
SEED_TOKEN = "seed-demo-started-event-booking"  # idempotency key of the seeded booking
#: References of the payments seed_demo makes for staff to decide (a number is appended).
REVIEW_REFERENCE = "demo-fraud-review"
TRANSFER_REFERENCE = "demo-bank-transfer"


class Command(BaseCommand):
    help = (
        "Create the demo's products, events, a staff superuser and a customer (idempotent); "
        "prints fresh passwords for both logins."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the demo runs, for the printed links (default: %(default)s).",
        )
        parser.add_argument(
            "--no-history",
            dest="history",
            action="store_false",
            help="Do not write the 90 days of seeded payment history (shop/history.py).",
        )
        parser.add_argument(
            "--history-days",
            type=int,
            default=DEFAULT_DAYS,
            help="How many days of history to write the first time (default: %(default)s).",
        )

    def handle(
        self,
        *args: Any,
        base_url: str,
        history: bool = True,
        history_days: int = DEFAULT_DAYS,
        **options: Any,
    ) -> None:
        base_url = base_url.rstrip("/")
        now = timezone.now().replace(second=0, microsecond=0)
        with transaction.atomic():
            for name, description, price, currency in PRODUCTS:
                Product.objects.update_or_create(
                    name=name,
                    defaults={
                        "description": description,
                        "price": Decimal(price),
                        "currency": currency,
                    },
                )
            Event.objects.update_or_create(
                title=FUTURE_EVENT,
                defaults={
                    "starts_at": now + dt.timedelta(days=14),
                    "price": Decimal("120.00"),
                    "currency": "USD",
                },
            )
            started, _ = Event.objects.update_or_create(
                title=STARTED_EVENT,
                defaults={
                    "starts_at": now - dt.timedelta(hours=1),
                    "price": Decimal("45.00"),
                    "currency": "EUR",
                },
            )
            staff_password = self._user("staff", "staff@example.com", staff=True)
            customer_password = self._user("customer", "customer@example.com", staff=False)
        staff = get_user_model()._default_manager.get(**{get_user_model().USERNAME_FIELD: "staff"})
        report = seed_history(staff=staff, days=history_days) if history else None
        booking = self._started_event_booking(started)
        held = self._fraud_review()
        transfer = self._pending_transfer()

        login = base_url + reverse("shop:login")
        self.stdout.write(self.style.SUCCESS("paydesk demo data is ready."))
        self.stdout.write(
            f"  {Product.objects.count()} products, {Event.objects.count()} events "
            f"(one upcoming, one already started)."
        )
        self.stdout.write("")
        self.stdout.write(
            self.style.WARNING(
                f"Staff login: {base_url}{reverse('admin:index')} user=staff "
                f"password={staff_password}"
            )
        )
        self.stdout.write(
            self.style.WARNING(
                f"Customer login: {login} user=customer password={customer_password}"
            )
        )
        self.stdout.write("")
        self.stdout.write(f"Home:      {base_url}{reverse('home')}")
        self.stdout.write(f"Dashboard: {base_url}/dashboard/ (as staff)")
        self.stdout.write(f"Shop:      {base_url}{reverse('shop:product-list')}")
        self.stdout.write(f"Bookings:  {base_url}{reverse('bookings:event-list')}")
        self.stdout.write(
            "Started-event booking (sign in as customer or staff; its refund is refused): "
            f"{base_url}{reverse('bookings:booking-detail', args=[booking.public_id])}"
        )
        self.stdout.write(
            "Test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, "
            "4000 0025 0000 3155 asks for 3-D Secure."
        )
        self.stdout.write("")
        for line in report.lines() if report else ["Payment history: skipped (--no-history)."]:
            self.stdout.write(line)
        if held is not None:
            self.stdout.write(
                f"Held for a fraud review (approve or reject as staff): payment {held.pk}, "
                f"{held.amount:.2f} {held.currency}, "
                f"{base_url}{reverse('paydesk_dashboard:approvals')}"
            )
        if transfer is not None:
            self.stdout.write(
                f"Bank transfer awaiting approval, receipt uploaded: {transfer.reference} "
                f"(payment {transfer.payment_id}), "
                f"{base_url}{reverse('paydesk_dashboard:approvals')} (or the admin: "
                f"{base_url}{reverse('admin:paydesk_banktransfer_change', args=[transfer.pk])})"
            )

    def _user(self, username: str, email: str, *, staff: bool) -> str:
        user_model = get_user_model()
        user, _ = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: username}, defaults={"email": email}
        )
        password = secrets.token_urlsafe(12)
        user.email = email
        user.is_staff = staff
        user.is_superuser = staff
        user.is_active = True
        user.set_password(password)
        user.save()
        return password

    def _started_event_booking(self, event: Event) -> Booking:
        """A customer's booking for the started event, paid with the sandbox's test Visa.

        It goes through paydesk's services like any checkout; the idempotency key makes a
        second run find the same payment instead of charging again.
        """
        customer = get_user_model()._default_manager.get(
            **{get_user_model().USERNAME_FIELD: "customer"}
        )
        booking, _ = Booking.objects.get_or_create(
            checkout_token=SEED_TOKEN,
            defaults={"event": event, "user": customer, "email": customer.email},
        )
        payment = booking.payment
        if payment is None:
            payment = services.create_payment(
                amount=event.price,
                currency=event.currency,
                provider=PROVIDER,
                user=customer,
                content_object=booking,
                reference=f"booking-{booking.pk}",
                description=f"Ticket: {event.title}",
                customer_email=booking.email,
                payment_method_token="pm_sandbox_visa",
                return_url=reverse("bookings:booking-detail", args=[booking.public_id]),
                idempotency_key=SEED_TOKEN,
            )
            booking.payment = payment
            booking.save(update_fields=["payment"])
        if payment.status == PaymentStatus.PENDING:
            services.process_payment(payment=payment)
        booking.refresh_from_db()
        return booking

    def _fraud_review(self) -> Payment | None:
        """A large order held by the fraud rules, waiting for a staff decision.

        Made like a checkout: ``create_payment`` then ``process_payment``, where the demo's
        ``amount_limit`` rule holds it (nothing is sent to the sandbox until staff approve).
        """
        pending = (
            FraudAssessment.objects.filter(
                review_status=ReviewStatus.PENDING,
                payment__status=PaymentStatus.PENDING,
                payment__reference__startswith=REVIEW_REFERENCE,
            )
            .select_related("payment")
            .first()
        )
        if pending is not None:
            return pending.payment
        if not load_rules():
            self.stderr.write(
                'No fraud review made: PAYDESK["FRAUD"]["RULES"] is empty (see demo/settings.py).'
            )
            return None
        customer = get_user_model()._default_manager.get(
            **{get_user_model().USERNAME_FIELD: "customer"}
        )
        number = Payment.objects.filter(reference__startswith=REVIEW_REFERENCE).count() + 1
        payment = services.create_payment(
            amount=Decimal("1850.00"),
            currency="USD",
            provider=PROVIDER,
            user=customer,
            reference=f"{REVIEW_REFERENCE}-{number}",
            description="Order: 60 Paydesk T-shirts for a conference",
            customer_email=customer.email,
            payment_method_token="pm_sandbox_visa",
            idempotency_key=f"{REVIEW_REFERENCE}-{number}",
        )
        payment = services.process_payment(
            payment=payment,
            fraud_context={"ip_address": "203.0.113.50", "card_country": "US", "ip_country": "US"},
        )
        assessment = FraudAssessment.objects.filter(payment=payment).first()
        if assessment is None or assessment.review_status != ReviewStatus.PENDING:
            self.stderr.write(
                f"Payment {payment.pk} was not held for review ({payment.status}); check the "
                'amount_limit rule in PAYDESK["FRAUD"].'
            )
            return None
        return payment

    def _pending_transfer(self) -> BankTransfer | None:
        """A bank transfer whose customer uploaded a receipt, for staff to approve or reject.

        Made like a checkout: ``create_payment``/``process_payment`` with the
        ``bank_transfer`` provider, then ``eft.record_receipt`` with a small PDF.
        """
        waiting = BankTransfer.objects.filter(
            payment__reference__startswith=TRANSFER_REFERENCE, status__in=OPEN_STATUSES
        ).first()
        if waiting is not None:
            return waiting
        customer = get_user_model()._default_manager.get(
            **{get_user_model().USERNAME_FIELD: "customer"}
        )
        number = Payment.objects.filter(reference__startswith=TRANSFER_REFERENCE).count() + 1
        payment = services.create_payment(
            amount=Decimal("180.00"),
            currency="EUR",
            provider="bank_transfer",
            user=customer,
            reference=f"{TRANSFER_REFERENCE}-{number}",
            description="Order: annual membership, paid by bank transfer",
            customer_email=customer.email,
            idempotency_key=f"{TRANSFER_REFERENCE}-{number}",
        )
        payment = services.process_payment(payment=payment)
        transfer = eft.get_transfer(payment=payment)
        return eft.record_receipt(
            transfer=transfer,
            file=receipt_file(transfer.reference, "180.00", "EUR"),
            user=customer,
            ip_address="203.0.113.51",
        )
