"""Checkout glue shared by the shop and bookings: everything here goes through paydesk.services.

The host project's side of a payment is small: create it for an object (an order, a
booking), send it to the provider, and follow ``payment.next_action`` (the sandbox's hosted
checkout page) when the customer has to act. paydesk's return view brings the browser back to
``return_url`` afterwards; signal receivers then update the object (see ``receivers.py``).
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from paydesk import services
from paydesk.exceptions import PaydeskError
from paydesk.models import Payment
from paydesk.states import PaymentStatus

#: The demo pays with the sandbox provider only (see PAYDESK["PROVIDERS"] in demo.settings).
PROVIDER = "sandbox"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_checkout_token() -> str:
    """A one-time token for a buy form's hidden field (the payment's idempotency key)."""
    return secrets.token_urlsafe(18)


def is_checkout_token(value: str) -> bool:
    return bool(_TOKEN.match(value or ""))


def paid_objects(payment: Payment, model: type[models.Model]) -> models.QuerySet[Any]:
    """The ``model`` rows a payment is for, from its generic relation (none if it is not)."""
    if payment.content_type_id != ContentType.objects.get_for_model(model).pk:
        return model._default_manager.none()
    if not str(payment.object_id).isdigit():
        return model._default_manager.none()
    return model._default_manager.filter(pk=int(payment.object_id))


def _follow(payment: Payment, return_path: str) -> HttpResponse:
    """Send the customer where the payment needs them: the provider's page, or back."""
    # next_action comes from the provider through paydesk, never from the browser, so
    # following it is not an open redirect (a real provider's page is on its own host).
    target = (payment.next_action or {}).get("redirect_url") or ""
    if payment.status == PaymentStatus.REQUIRES_ACTION and target:
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(return_path)


def start_checkout(
    request: HttpRequest,
    *,
    target: Any,
    amount: Decimal,
    currency: str,
    reference: str,
    description: str,
    return_path: str,
    token: str,
    email: str = "",
) -> HttpResponse:
    """Create (or find again, for the same ``token``) the payment for ``target`` and start it.

    ``target`` must have a nullable ``payment`` foreign key. A double-submitted form reaches
    here twice with the same token: paydesk returns the first payment, and the second request
    just follows it instead of sending it to the provider again.
    """
    user = request.user if request.user.is_authenticated else None
    try:
        payment = services.create_payment(
            amount=amount,
            currency=currency,
            provider=PROVIDER,
            user=user,
            content_object=target,
            reference=reference,
            return_url=return_path,
            description=description,
            customer_email=email,
            idempotency_key=token,
        )
        if target.payment_id != payment.pk:
            target.payment = payment
            target.save(update_fields=["payment"])
        if payment.status == PaymentStatus.PENDING:
            payment = services.process_payment(payment=payment)
    except PaydeskError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(return_path)
    return _follow(payment, return_path)


def retry_checkout(request: HttpRequest, *, payment: Payment, return_path: str) -> HttpResponse:
    """Start a new attempt for a failed payment (the customer tries another card)."""
    try:
        payment = services.retry_payment(payment=payment)
    except PaydeskError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(return_path)
    return _follow(payment, return_path)
