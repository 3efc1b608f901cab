"""Saved payment method services: add, make default, deactivate.

This module owns one decision: at most one default method per user, always. The database
enforces it (a partial unique constraint); this service keeps it true by clearing the old
default and setting the new one in a single transaction, under a lock on the user's methods.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..exceptions import PaymentValidationError
from ..models import PaymentMethod, PaymentMethodType

__all__ = ["add_payment_method", "deactivate_payment_method", "set_default_payment_method"]

_CARD_DATA_HINT = (
    "provider_token must be the provider's token or id (e.g. pm_..., tok_...), never card data."
)


def add_payment_method(
    *,
    user: Any,
    provider: str,
    provider_token: str,
    type: str = PaymentMethodType.CREDIT_CARD,
    brand: str = "",
    last4: str = "",
    exp_month: int | None = None,
    exp_year: int | None = None,
    fingerprint: str = "",
    set_default: bool = False,
    metadata: dict[str, Any] | None = None,
) -> PaymentMethod:
    """Save a tokenized payment method for ``user``."""
    token = provider_token.replace(" ", "").replace("-", "")
    if not provider_token or (token.isdigit() and len(token) >= 12):
        # A bare run of 12+ digits is a card number, not a token: refuse to store it.
        raise PaymentValidationError(_CARD_DATA_HINT, field="provider_token")
    if last4 and (len(last4) != 4 or not last4.isdigit()):
        raise PaymentValidationError("last4 must be exactly four digits.", field="last4")
    if type not in PaymentMethodType.values:
        raise PaymentValidationError(
            f"Unknown payment method type {type!r}; "
            f"use one of {', '.join(PaymentMethodType.values)}.",
            field="type",
        )
    with transaction.atomic():
        method = PaymentMethod.objects.create(
            user=user,
            provider=provider,
            provider_token=provider_token,
            type=type,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            fingerprint=fingerprint,
            metadata=metadata or {},
        )
        has_default = PaymentMethod.objects.filter(user=user, is_default=True).exists()
        if set_default or not has_default:
            set_default_payment_method(method=method)
            method.refresh_from_db()
    return method


def set_default_payment_method(*, method: PaymentMethod) -> PaymentMethod:
    """Make ``method`` its user's only default."""
    if not method.is_active:
        raise PaymentValidationError(
            "A deactivated payment method cannot be the default.", field="payment_method"
        )
    with transaction.atomic():
        # Lock the user's methods so two concurrent set-default calls serialise.
        list(PaymentMethod.objects.select_for_update().filter(user_id=method.user_id))
        PaymentMethod.objects.filter(user_id=method.user_id, is_default=True).exclude(
            pk=method.pk
        ).update(is_default=False)
        PaymentMethod.objects.filter(pk=method.pk).update(is_default=True)
    method.is_default = True
    return method


def deactivate_payment_method(*, method: PaymentMethod) -> PaymentMethod:
    """Soft-delete: the method stays for the payments that used it but can't be used again."""
    PaymentMethod.objects.filter(pk=method.pk).update(is_active=False, is_default=False)
    method.is_active = False
    method.is_default = False
    return method
