"""Fill the demo with products, events and two logins. Safe to run again.

Every run resets the ``staff`` and ``customer`` passwords to new random ones and prints them,
so the printed logins always work. Event dates are moved relative to now, so one event is
always in the future (bookable, refundable) and one has always just started (its paid
booking shows the refund policy refusing).
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
from paydesk.states import PaymentStatus
from shop.checkout import PROVIDER
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

    def handle(self, *args: Any, base_url: str, **options: Any) -> None:
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
        booking = self._started_event_booking(started)

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
        self.stdout.write(f"Shop:     {base_url}{reverse('shop:product-list')}")
        self.stdout.write(f"Bookings: {base_url}{reverse('bookings:event-list')}")
        self.stdout.write(
            "Started-event booking (sign in as customer or staff; its refund is refused): "
            f"{base_url}{reverse('bookings:booking-detail', args=[booking.public_id])}"
        )
        self.stdout.write(
            "Test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, "
            "4000 0025 0000 3155 asks for 3-D Secure."
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
