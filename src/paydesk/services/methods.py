"""Saved payment method services: add, make default, deactivate.

This module owns one decision: at most one default method per user, always. The database
enforces it (a partial unique constraint); this service keeps it true by clearing the old
default and setting the new one in a single transaction, under a lock on the user's methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from ..exceptions import ConfigurationError, NotSupported, PaymentValidationError
from ..models import PaymentMethod, PaymentMethodType
from ..providers.base import PaymentProvider
from ..providers.registry import get_payment_provider
from ..types import AttachMethodRequest, Capability, Customer, DetachMethodRequest

__all__ = [
    "RESERVED_METADATA_KEYS",
    "add_payment_method",
    "deactivate_payment_method",
    "set_default_payment_method",
    "update_payment_method",
]

#: Metadata keys this module keeps for itself (the provider customer id of an attached
#: method); ``update_payment_method`` never changes or removes them.
RESERVED_METADATA_KEYS = frozenset({"customer_ref"})

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
    attach: bool = False,
) -> PaymentMethod:
    """Save a tokenized payment method for ``user``.

    Saving a token the user already saved returns that method; a token saved by another
    user is refused.

    ``attach=True`` also keeps the method at the provider (``attach_payment_method``: for
    Stripe, a Customer for the user, reused for the user's later methods, with the pm_...
    attached to it). The provider's answer fills in the card details and the token (Stripe's
    test tokens such as ``pm_card_visa`` become a new pm_... id), and its customer id is
    kept in ``metadata["customer_ref"]``, which payments with this method then send along.
    """
    if not provider_token:
        raise PaymentValidationError(_CARD_DATA_HINT, field="provider_token")
    try:
        backend = get_payment_provider(provider)
    except ConfigurationError as exc:
        raise PaymentValidationError(
            exc.message, code="unknown_provider", field="provider"
        ) from exc
    if not backend.supports(Capability.SAVED_METHODS):
        raise NotSupported(f"Provider {provider!r} cannot save payment methods.")
    check_token(provider_token, field="provider_token")
    if last4 and (len(last4) != 4 or not last4.isdigit()):
        raise PaymentValidationError("last4 must be exactly four digits.", field="last4")
    if type not in PaymentMethodType.values:
        raise PaymentValidationError(
            f"Unknown payment method type {type!r}; "
            f"use one of {', '.join(PaymentMethodType.values)}.",
            field="type",
        )
    existing = PaymentMethod.objects.filter(
        provider=provider, provider_token=provider_token
    ).first()
    if existing is not None:
        return _existing(existing, user=user)
    metadata = dict(metadata or {})
    if attach:
        saved = backend.attach_payment_method(
            AttachMethodRequest(
                token=provider_token,
                user_ref=str(user.pk),
                customer=Customer(
                    email=getattr(user, "email", "") or "",
                    name=user.get_full_name() if hasattr(user, "get_full_name") else "",
                ),
                customer_ref=_customer_ref(user, provider),
                idempotency_key=f"paydesk:attach:{provider}:{user.pk}:{provider_token}"[:255],
            )
        )
        provider_token = saved.token or provider_token
        existing = PaymentMethod.objects.filter(
            provider=provider, provider_token=provider_token
        ).first()
        if existing is not None:
            return _existing(existing, user=user)
        type = saved.type or type
        brand, last4 = saved.brand or brand, saved.last4 or last4
        exp_month, exp_year = saved.exp_month or exp_month, saved.exp_year or exp_year
        fingerprint = saved.fingerprint or fingerprint
        if saved.customer_ref:
            metadata["customer_ref"] = saved.customer_ref
    try:
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
                metadata=metadata,
            )
            has_default = PaymentMethod.objects.filter(user=user, is_default=True).exists()
            if set_default or not has_default:
                set_default_payment_method(method=method)
                method.refresh_from_db()
    except IntegrityError:
        # A concurrent save of the same token won the race.
        existing = PaymentMethod.objects.filter(
            provider=provider, provider_token=provider_token
        ).first()
        if existing is None:
            raise
        return _existing(existing, user=user)
    return method


def _customer_ref(user: Any, provider: str) -> str:
    """The provider customer id an earlier attached method of ``user`` recorded, if any."""
    for metadata in PaymentMethod.objects.filter(user=user, provider=provider).values_list(
        "metadata", flat=True
    ):
        if isinstance(metadata, dict) and metadata.get("customer_ref"):
            return str(metadata["customer_ref"])
    return ""


def check_token(token: str, *, field: str) -> None:
    """Refuse card data where a provider token belongs (PCI scope stays with the provider)."""
    digits = token.replace(" ", "").replace("-", "")
    if digits.isdigit() and len(digits) >= 12:
        raise PaymentValidationError(_CARD_DATA_HINT, field=field)


def _existing(method: PaymentMethod, *, user: Any) -> PaymentMethod:
    if method.user_id != getattr(user, "pk", None):
        raise PaymentValidationError(
            "This provider token is already saved for another user; tokenize the card again "
            "for this customer.",
            code="payment_method_token_taken",
            field="provider_token",
        )
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


def update_payment_method(*, method: PaymentMethod, metadata: Mapping[str, Any]) -> PaymentMethod:
    """Replace ``method``'s metadata; the keys paydesk keeps for itself stay as they are."""
    with transaction.atomic():
        locked = PaymentMethod.objects.select_for_update().get(pk=method.pk)
        current = locked.metadata if isinstance(locked.metadata, dict) else {}
        kept = {k: v for k, v in current.items() if k in RESERVED_METADATA_KEYS}
        locked.metadata = {
            **{k: v for k, v in metadata.items() if k not in RESERVED_METADATA_KEYS},
            **kept,
        }
        locked.save(update_fields=["metadata", "updated_at"])
    method.metadata = locked.metadata
    method.updated_at = locked.updated_at
    return method


def deactivate_payment_method(*, method: PaymentMethod) -> PaymentMethod:
    """Soft-delete: the method stays for the payments that used it but can't be used again.

    A method saved with ``attach=True`` (its ``metadata["customer_ref"]`` is set) is detached
    at the provider first; if that call fails, nothing changes here and the error is raised.
    """
    customer_ref = (method.metadata or {}).get("customer_ref")
    if customer_ref and method.is_active:
        backend: PaymentProvider = get_payment_provider(method.provider)
        backend.detach_payment_method(
            DetachMethodRequest(token=method.provider_token, customer_ref=str(customer_ref))
        )
    PaymentMethod.objects.filter(pk=method.pk).update(is_active=False, is_default=False)
    method.is_active = False
    method.is_default = False
    return method
