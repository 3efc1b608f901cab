"""Demo event bookings, paid through paydesk and refundable (in part) until the event starts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from paydesk.money import Money
from shop.models import new_public_id, validate_money


class Event(models.Model):
    title = models.CharField(max_length=200, unique=True)
    starts_at = models.DateTimeField()
    price = models.DecimalField(max_digits=19, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["starts_at"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        self.currency = self.currency.upper()
        validate_money(self.price, self.currency)

    @property
    def money(self) -> Money:
        return Money(self.price, self.currency)

    @property
    def has_started(self) -> bool:
        return self.starts_at <= timezone.now()


class Booking(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    checkout_token = models.CharField(
        max_length=64, unique=True, null=True, blank=True, editable=False
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="bookings")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    email = models.EmailField()
    payment = models.ForeignKey(
        "paydesk.Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Booking {self.pk}: {self.event} for {self.email} ({self.status})"

    def visible_to(self, user: object) -> bool:
        if self.user_id is None:
            return True
        return bool(getattr(user, "is_staff", False) or getattr(user, "pk", None) == self.user_id)

    def can_refund(self, user: object) -> bool:
        """Staff, or the signed-in customer who made the booking."""
        if not getattr(user, "is_authenticated", False):
            return False
        return bool(getattr(user, "is_staff", False) or getattr(user, "pk", None) == self.user_id)
