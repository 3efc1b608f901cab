"""Writing the audit log: who did what to which payment object, from where, with what outcome.

This module owns one decision: what one audit entry records for each kind of event, and
that recording it either succeeds or fails loudly. Every ``log_*`` method inserts exactly
one :class:`paydesk.models.AuditLog` row (append-only: rows are never updated or deleted).

A failure to write the entry RAISES into the caller. An audit log that silently drops
entries is worse than none, because it is trusted: if the database cannot take the entry,
the caller should fail (or catch the error deliberately). ``details`` must be
JSON-serializable; ``Decimal``, ``datetime`` and ``UUID`` values are stored as strings, and
anything else that JSON cannot hold raises ``TypeError`` naming the detail.

The entry is written in the caller's transaction: a transaction that rolls back takes the
entry with it. To record a failure whose transaction is rolled back, log after (outside)
the ``atomic`` block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from ..models.audit import AuditLog
from ..models.fields import AMOUNT_DIGITS, AMOUNT_PLACES
from .ipfilter import client_ip, parse_ip

__all__ = ["AuditLogger", "audit_request_ip"]

_ACTION_MAX = 50
_LABEL_MAX = 150


def audit_request_ip(request: Any) -> str | None:
    """The client IP to record for ``request``, honouring ``TRUSTED_PROXIES``."""
    return client_ip(request)


def _json_details(details: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in details.items():
        try:
            out[name] = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"Audit detail {name!r} is a {type(value).__name__}, which cannot be stored as "
                "JSON; pass a str, number, bool, None, list or dict (Decimal and datetime are "
                "converted)."
            ) from exc
    return out


def _actor(actor: Any) -> tuple[Any, str]:
    """``(user or None, label)`` for a user, an anonymous user, a label string or ``None``."""
    if actor is None:
        return None, "system"
    if isinstance(actor, str):
        return None, actor[:_LABEL_MAX]
    if not getattr(actor, "is_authenticated", False):
        return None, "anonymous"
    label = actor.get_username() if hasattr(actor, "get_username") else str(actor)
    return actor, str(label)[:_LABEL_MAX]


def _object_ref(obj: Any) -> tuple[str, str]:
    if obj is None:
        return "", ""
    if isinstance(obj, models.Model):
        return obj._meta.model_name or type(obj).__name__.lower(), str(obj.pk)
    return type(obj).__name__.lower(), str(getattr(obj, "pk", getattr(obj, "id", obj)))


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    amount = getattr(value, "amount", value)  # a paydesk Money, or a plain amount
    if isinstance(amount, float):
        raise TypeError("An audit amount must be a Decimal, int, str or Money, never a float.")
    return amount if isinstance(amount, Decimal) else Decimal(str(amount))


def _fits(amount: Decimal) -> bool:
    """Whether ``amount`` fits ``AuditLog.amount`` exactly (its digits and decimal places)."""
    if not amount.is_finite():
        return False
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return places <= AMOUNT_PLACES and abs(amount) < Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


class AuditLogger:
    """Append entries to the audit log.

    ``actor`` everywhere is a user (recorded as the ``actor`` foreign key and its username),
    a label such as ``"api-key:shop-backend"`` or ``"system"``, or ``None`` (``"system"``).
    """

    def log(
        self,
        *,
        action: str,
        obj: Any = None,
        object_type: str = "",
        object_id: str = "",
        actor: Any = None,
        provider: str = "",
        success: bool = True,
        amount: Any = None,
        currency: str = "",
        ip_address: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditLog:
        """Insert one entry; the ``log_*`` methods are shorthands for this. ``object_type``
        and ``object_id`` name the object when there is no ``obj`` instance at hand."""
        if not action or len(action) > _ACTION_MAX:
            raise ValueError(f"Audit action {action!r} must be 1-{_ACTION_MAX} characters.")
        user, label = _actor(actor)
        address = parse_ip(ip_address) if ip_address else None
        if ip_address and address is None:
            raise ValueError(f"Audit ip_address {ip_address!r} is not an IP address.")
        if obj is not None:
            object_type, object_id = _object_ref(obj)
        exact = _amount(amount)
        details = dict(details or {})
        if exact is not None and not _fits(exact):
            # The attempt is what matters (often a refused one with an absurd amount): record
            # it with the exact figure in details rather than fail on the amount column.
            details.setdefault("amount", str(exact))
            exact = None
        return AuditLog.objects.create(
            actor=user,
            actor_label=label,
            action=action,
            object_type=object_type[:50],
            object_id=str(object_id)[:255],
            provider=provider or "",
            success=success,
            amount=exact,
            currency=currency or getattr(amount, "currency", "") or "",
            ip_address=None if address is None else str(address),
            details=_json_details(details),
        )

    def log_payment(
        self,
        *,
        payment: Any = None,
        action: str = "payment",
        actor: Any = None,
        success: bool = True,
        amount: Any = None,
        currency: str = "",
        ip_address: str | None = None,
        **details: Any,
    ) -> AuditLog:
        """A payment operation (``action`` e.g. ``"payment.capture"``); amount and currency
        default to the payment's."""
        if payment is not None and amount is None:
            amount, currency = payment.amount, currency or payment.currency
        return self.log(
            action=action,
            obj=payment,
            actor=actor,
            provider=getattr(payment, "provider", ""),
            success=success,
            amount=amount,
            currency=currency,
            ip_address=ip_address,
            details=details,
        )

    def log_refund(
        self,
        *,
        refund: Any = None,
        payment: Any = None,
        actor: Any = None,
        success: bool = True,
        amount: Any = None,
        currency: str = "",
        ip_address: str | None = None,
        **details: Any,
    ) -> AuditLog:
        """A refund, or a refused refund attempt (``success=False``, no ``refund`` yet).
        Amount and currency default to the refund's; the payment id is kept in details."""
        if refund is not None:
            payment = payment or refund.payment
            if amount is None:
                amount, currency = refund.amount, currency or refund.currency
        if payment is not None:
            details.setdefault("payment_id", str(payment.pk))
        return self.log(
            action="refund",
            obj=refund if refund is not None else payment,
            actor=actor,
            provider=getattr(payment, "provider", ""),
            success=success,
            amount=amount,
            currency=currency,
            ip_address=ip_address,
            details=details,
        )

    def log_webhook(
        self,
        *,
        provider: str,
        event_id: str,
        event_type: str,
        success: bool,
        ip_address: str | None = None,
        **details: Any,
    ) -> AuditLog:
        """A webhook delivery's outcome (accepted, refused by signature, rate limit, ...)."""
        details.setdefault("event_type", event_type)
        return self.log(
            action="webhook",
            object_type="webhook_event",
            object_id=event_id,
            provider=provider,
            actor=f"webhook:{provider}",
            success=success,
            ip_address=ip_address,
            details=details,
        )

    def log_admin_action(
        self, *, actor: Any, action: str, obj: Any = None, **details: Any
    ) -> AuditLog:
        """A staff action (admin, dashboard); recorded as ``admin.<action>``."""
        provider = getattr(obj, "provider", "")
        return self.log(
            action=f"admin.{action}",
            obj=obj,
            actor=actor,
            provider=provider if isinstance(provider, str) else "",
            details=details,
        )
