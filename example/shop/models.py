"""The demo shop: products and the orders that pay for them through paydesk."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from paydesk.exceptions import MoneyError
from paydesk.money import Money


def new_public_id() -> str:
    """A non-guessable id for URLs, so one customer cannot page through others' orders."""
    return secrets.token_urlsafe(12)


def validate_money(amount: Decimal | None, currency: str, field: str = "price") -> None:
    """Refuse amounts paydesk would refuse (unknown currency, too many decimals) at entry."""
    if amount is None or not currency:
        return
    try:
        Money(amount, currency)
    except MoneyError as exc:
        raise ValidationError({field: exc.message}) from exc
    if amount <= 0:
        raise ValidationError({field: "Must be greater than zero."})


class Product(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=19, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.currency = self.currency.upper()
        validate_money(self.price, self.currency)

    @property
    def money(self) -> Money:
        return Money(self.price, self.currency)


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    # The buy form's one-time token: a double-submitted form finds this order again.
    checkout_token = models.CharField(
        max_length=64, unique=True, null=True, blank=True, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField(default=1)
    total = models.DecimalField(max_digits=19, decimal_places=4)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    payment = models.ForeignKey(
        "paydesk.Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Order {self.pk}: {self.quantity} x {self.product} ({self.status})"

    @property
    def money(self) -> Money:
        return Money(self.total, self.currency)

    def visible_to(self, user: object) -> bool:
        """Anyone holding the link may see a guest order; a user's order only that user/staff."""
        if self.user_id is None:
            return True
        return bool(getattr(user, "is_staff", False) or getattr(user, "pk", None) == self.user_id)
