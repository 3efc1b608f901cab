"""Payment routes on a host project's own model, in one line: :func:`payable_routes`.

This module owns one decision: how a host object (a Booking, an Order) is paid, confirmed,
checked, refunded and retried through the API without the host writing views. For::

    urlpatterns += payable_routes(
        Booking,
        lookup="public_id",
        queryset=lambda request: Booking.objects.filter(owner=request.user),
        amount=lambda booking: Money(booking.price, booking.currency),
    )

the routes are, under the prefix (default: the model's plural name, ``bookings``):

=====================================  ====  ==============================================
``bookings/{public_id}/payment/intent/``  POST  create or reuse the booking's pending payment
                                              and send it: returns the payment and its
                                              ``next_action`` (redirect URL or client secret)
``.../payment/confirm/``                  POST  after the customer's action: confirm_payment
``.../payment/status/``                   GET   the booking's payment, refreshed (sync_payment)
``.../payment/refund/``                   POST  refund (all or part): create_refund
``.../payment/retry/``                    POST  retry a failed payment: retry_payment
=====================================  ====  ==============================================

The object's payment is its latest ``Payment`` linked through the generic relation
(``create_payment(content_object=obj)``). Every write goes through :mod:`paydesk.services`.

Who may do what: the request must be authenticated like every paydesk endpoint (reads need
the ``read`` scope, writes ``write``). The object is looked up in ``queryset`` (a QuerySet,
or a callable taking the request) and then passed to ``permission(request, obj)``; an object
outside the queryset or refused by ``permission`` answers 404, exactly like a missing one.
Refunds additionally need ``refund_permission(request, obj)`` when given, else staff or an
API key with the ``refund`` scope (an API key always needs that scope), and then the
project's refund policy (``PAYDESK["REFUND_POLICY"]``) decides, as for every refund.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.urls import URLPattern, path
from django.utils.text import slugify
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..conf import paydesk_settings
from ..exceptions import NotSupported, PaymentInProgress, PaymentStateError
from ..models import APIKeyScope, Payment
from ..money import Money
from ..services.fraud import context_from_request
from ..states import PaymentStatus
from .authentication import api_key_from_request
from .base import PaydeskAPIView
from .fields import AmountField, StrictSerializer
from .permissions import is_staff
from .serializers import PaymentSerializer, RefundSerializer

__all__ = ["AlreadyPaid", "NoPayment", "Payable", "payable_routes"]

Request_ = Any  # a DRF Request
PAID = frozenset(
    {
        PaymentStatus.AUTHORIZED,
        PaymentStatus.COMPLETED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    }
)
OPEN = frozenset({PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION})


class NoPayment(PaymentStateError):
    """The object has no payment yet: POST ``payment/intent/`` first."""

    default_code = "no_payment"


class AlreadyPaid(PaymentStateError):
    """The object's payment already succeeded; refund it instead of paying again."""

    default_code = "already_paid"


def _constant_or_call(value: Any, obj: models.Model) -> Any:
    return value(obj) if callable(value) else value


@dataclass(frozen=True)
class Payable:
    """What :func:`payable_routes` was told about one model."""

    model: type[models.Model]
    lookup: str
    url_kwarg: str
    field: models.Field
    queryset: QuerySet[Any] | Callable[[Request_], QuerySet[Any]] | None
    amount: Callable[[Any], Money | Decimal]
    currency: str | Callable[[Any], str] | None
    provider: str | Callable[[Any], str] | None
    permission: Callable[[Request_, Any], bool] | None
    refund_permission: Callable[[Request_, Any], bool] | None
    description: str | Callable[[Any], str] | None
    capture: bool
    name: str  # for messages: "booking"

    def queryset_for(self, request: Request_) -> QuerySet[Any]:
        if self.queryset is None:
            return self.model._default_manager.all()
        if isinstance(self.queryset, QuerySet):
            return self.queryset.all()  # a fresh copy: never a cached result
        queryset = self.queryset(request)
        if not isinstance(queryset, QuerySet):
            raise ImproperlyConfigured(
                f"payable_routes({self.model.__name__}): queryset(request) must return a "
                f"QuerySet, not {type(queryset).__name__}."
            )
        return queryset

    def money_for(self, obj: Any) -> Money:
        amount = self.amount(obj)
        currency = _constant_or_call(self.currency, obj)
        if isinstance(amount, Money):
            if currency and str(currency).upper() != amount.currency:
                raise ImproperlyConfigured(
                    f"payable_routes({self.model.__name__}): amount() gave {amount} but "
                    f"currency() gave {currency!r}."
                )
            return amount
        return Money(amount, currency or paydesk_settings.DEFAULT_CURRENCY)

    def provider_for(self, obj: Any) -> str:
        return str(_constant_or_call(self.provider, obj) or paydesk_settings.DEFAULT_PROVIDER)

    def description_for(self, obj: Any) -> str:
        text = _constant_or_call(self.description, obj)
        return str(text if text is not None else obj)[:255]

    def payments_of(self, obj: models.Model) -> QuerySet[Payment]:
        content_type = ContentType.objects.get_for_model(obj)
        return Payment.objects.filter(content_type=content_type, object_id=str(obj.pk)).order_by(
            "-created_at", "-id"
        )


# -- request and response shapes ------------------------------------------------------------


class PayableIntentRequest(StrictSerializer):
    payment_method_token = serializers.CharField(
        max_length=255,
        required=False,
        help_text="A one-off provider token (pm_...); without one the provider's hosted page "
        "collects the card (next_action.redirect_url).",
    )
    return_url = serializers.URLField(
        max_length=2048,
        required=False,
        help_text="Where the provider sends the customer back after a redirect.",
    )


class PayableConfirmRequest(StrictSerializer):
    params = serializers.DictField(
        child=serializers.CharField(max_length=2048),
        required=False,
        help_text="What the provider sent back to return_url (e.g. Stripe's "
        "payment_intent), if anything.",
    )


class PayableRefundRequest(StrictSerializer):
    amount = AmountField(required=False, help_text="Default: all that can still be refunded.")
    reason = serializers.CharField(max_length=255, required=False, default="")


class PayableRetryRequest(StrictSerializer):
    payment_method_token = serializers.CharField(
        max_length=255, required=False, help_text="Another provider token to retry with."
    )


class PayableSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="The object's identifier, as in the URL.")
    amount = serializers.CharField(help_text="What the object costs now: a decimal string.")
    currency = serializers.CharField()
    status = serializers.CharField(
        help_text='The payment\'s status, or "unpaid" when there is no payment yet.'
    )
    payment = PaymentSerializer(
        allow_null=True,
        help_text="The object's latest payment (with next_action when the customer must act).",
    )


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# -- views ----------------------------------------------------------------------------------


class PayableView(PaydeskAPIView):
    """Base of the five views; ``payable`` is set per model by :func:`payable_routes`."""

    payable: Payable | None = None
    calls_provider = True

    def config(self) -> Payable:
        assert self.payable is not None
        return self.payable

    def get_object(self) -> Any:
        payable = self.config()
        raw = self.kwargs.get(payable.url_kwarg)
        missing = NotFound(f"No such {payable.name}.")
        try:
            value = payable.field.to_python(raw)
            payable.field.run_validators(value)
            obj = payable.queryset_for(self.request).filter(**{payable.lookup: value}).first()
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise missing from None
        if obj is None:
            raise missing
        if payable.permission is not None and not payable.permission(self.request, obj):
            raise missing  # someone else's object looks exactly like a missing one
        return obj

    def latest_payment(self, obj: Any) -> Payment | None:
        return self.config().payments_of(obj).first()

    def required_payment(self, obj: Any) -> Payment:
        payment = self.latest_payment(obj)
        if payment is None:
            raise NoPayment(
                f"This {self.config().name} has no payment yet; POST payment/intent/ first."
            )
        return payment

    def respond(self, obj: Any, payment: Payment | None, code: int = 200) -> Response:
        payable = self.config()
        money = payable.money_for(obj)
        body = {
            "object": str(self.kwargs.get(payable.url_kwarg)),
            "amount": f"{money.amount:f}",
            "currency": money.currency,
            "status": payment.status if payment is not None else "unpaid",
            "payment": payment,
        }
        return Response(PayableSerializer(body).data, status=code)


def _refuse_second_payment(payment: Payment, name: str) -> None:
    if payment.status in PAID:
        raise AlreadyPaid(
            f"This {name} is already paid (payment {payment.pk} is {payment.status}); "
            "refund it rather than paying twice."
        )
    if payment.status == PaymentStatus.PROCESSING:
        raise PaymentInProgress(
            f"This {name}'s payment {payment.pk} is being processed; read payment/status/ "
            "instead of paying again."
        )


class PayableIntentView(PayableView):
    def post(self, request: Request, **kwargs: Any) -> Response:
        obj = self.get_object()
        data = _validated(PayableIntentRequest, request.data)
        payable = self.config()
        money = payable.money_for(obj)
        alias = payable.provider_for(obj)
        current = self.latest_payment(obj)
        if current is not None:
            _refuse_second_payment(current, payable.name)
        stale = current is not None and (current.money != money or current.provider != alias)
        if current is not None and current.status in OPEN and stale:
            # The price (or provider) changed since: that payment must not go through.
            current = services.cancel_payment(
                payment=current, reason=f"{payable.name} now costs {money} via {alias}"
            )
        created = False
        payment = current if current is not None and current.status in OPEN else None
        if payment is None:
            payment, created = self._create(obj, money, alias, request)
        if payment.status == PaymentStatus.PENDING:
            payment = services.process_payment(
                payment=payment,
                payment_method_token=data.get("payment_method_token"),
                return_url=data.get("return_url"),
                fraud_context=context_from_request(request),
            )
        return self.respond(obj, payment, status.HTTP_201_CREATED if created else 200)

    def _create(self, obj: Any, money: Money, alias: str, request: Request) -> tuple[Payment, bool]:
        payable = self.config()
        with transaction.atomic():
            # Lock the host row so two intents at once make one payment; nothing inside
            # talks to a provider.
            type(obj)._default_manager.select_for_update().filter(pk=obj.pk).first()
            latest = payable.payments_of(obj).first()
            if latest is not None:
                _refuse_second_payment(latest, payable.name)
            if (
                latest is not None
                and latest.status in OPEN
                and latest.money == money
                and latest.provider == alias
            ):
                return latest, False
            meta = obj._meta
            payment = services.create_payment(
                amount=money,
                provider=alias,
                user=request.user,
                content_object=obj,
                reference=f"{meta.app_label}.{meta.model_name}:{obj.pk}",
                description=payable.description_for(obj),
                capture=payable.capture,
            )
        return payment, True


class PayableConfirmView(PayableView):
    def post(self, request: Request, **kwargs: Any) -> Response:
        obj = self.get_object()
        data = _validated(PayableConfirmRequest, request.data)
        payment = services.confirm_payment(
            payment=self.required_payment(obj), params=data.get("params")
        )
        return self.respond(obj, payment)


class PayableStatusView(PayableView):
    def get(self, request: Request, **kwargs: Any) -> Response:
        obj = self.get_object()
        payment = self.latest_payment(obj)
        if payment is not None:
            # A provider that cannot report a status: the recorded one is all there is.
            with contextlib.suppress(NotSupported):
                payment = services.sync_payment(payment=payment)
        return self.respond(obj, payment)


class PayableRefundView(PayableView):
    def get_required_scope(self) -> str | None:
        # An API key needs the refund scope; other principals are checked in post().
        if api_key_from_request(self.request) is not None:
            return APIKeyScope.REFUND
        return super().get_required_scope()

    def post(self, request: Request, **kwargs: Any) -> Response:
        obj = self.get_object()
        payable = self.config()
        if payable.refund_permission is not None:
            allowed = payable.refund_permission(request, obj)
        else:
            allowed = is_staff(request) or api_key_from_request(request) is not None
        if not allowed:
            raise PermissionDenied(f"You may not refund this {payable.name}.")
        data = _validated(PayableRefundRequest, request.data)
        refund = services.create_refund(
            payment=self.required_payment(obj),
            amount=data.get("amount"),
            reason=data.get("reason", ""),
            user=request.user,
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class PayableRetryView(PayableView):
    def post(self, request: Request, **kwargs: Any) -> Response:
        obj = self.get_object()
        data = _validated(PayableRetryRequest, request.data)
        payment = services.retry_payment(
            payment=self.required_payment(obj),
            payment_method_token=data.get("payment_method_token"),
        )
        return self.respond(obj, payment)


# -- the one-liner --------------------------------------------------------------------------


def _lookup_field(model: type[models.Model], lookup: str) -> models.Field:
    meta = model._meta
    if lookup == "pk":
        assert meta.pk is not None
        return meta.pk
    try:
        field = meta.get_field(lookup)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(
            f"payable_routes({model.__name__}, lookup={lookup!r}): {model.__name__} has no "
            "such field; use 'pk' or a unique field such as a public id."
        ) from None
    if not isinstance(field, models.Field) or field.is_relation:
        raise ImproperlyConfigured(
            f"payable_routes({model.__name__}, lookup={lookup!r}) must name a plain field."
        )
    return field


def payable_routes(
    model: type[models.Model],
    *,
    amount: Callable[[Any], Money | Decimal],
    lookup: str = "pk",
    queryset: QuerySet[Any] | Callable[[Request_], QuerySet[Any]] | None = None,
    currency: str | Callable[[Any], str] | None = None,
    provider: str | Callable[[Any], str] | None = None,
    permission: Callable[[Request_, Any], bool] | None = None,
    refund_permission: Callable[[Request_, Any], bool] | None = None,
    prefix: str | None = None,
    basename: str | None = None,
    description: str | Callable[[Any], str] | None = None,
    capture: bool = True,
) -> list[URLPattern]:
    """URL patterns paying for ``model`` objects through paydesk (see the module docstring).

    ``amount(obj)`` gives a ``Money`` or a ``Decimal`` (then ``currency``, a code or
    ``currency(obj)``, default ``PAYDESK["DEFAULT_CURRENCY"]``). ``provider`` is an alias or
    ``provider(obj)`` (default ``PAYDESK["DEFAULT_PROVIDER"]``). ``queryset`` and/or
    ``permission`` say who may see an object: at least one is required, so that no model
    becomes payable by everyone by accident. ``basename`` prefixes the URL names
    (``f"{basename}-payment-intent"``); ``description`` (a string or ``description(obj)``)
    is the payment's description, ``str(obj)`` by default.
    """
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise ImproperlyConfigured(f"payable_routes() needs a model class, not {model!r}.")
    if not callable(amount):
        raise ImproperlyConfigured(
            f"payable_routes({model.__name__}): amount must be a callable(obj) -> Money."
        )
    if queryset is None and permission is None:
        raise ImproperlyConfigured(
            f"payable_routes({model.__name__}): say who may pay for which object with "
            "queryset=lambda request: ... and/or permission=lambda request, obj: ...; "
            "without either every signed-in user could pay, see and retry every object."
        )
    meta = model._meta
    field = _lookup_field(model, lookup)
    url_kwarg = lookup if lookup.isidentifier() else "pk"
    prefix = (prefix if prefix is not None else slugify(str(meta.verbose_name_plural))).strip("/")
    basename = basename or meta.model_name or model.__name__.lower()
    payable = Payable(
        model=model,
        lookup=lookup,
        url_kwarg=url_kwarg,
        field=field,
        queryset=queryset,
        amount=amount,
        currency=currency,
        provider=provider,
        permission=permission,
        refund_permission=refund_permission,
        description=description,
        capture=capture,
        name=str(meta.verbose_name),
    )
    lookup_parameter = OpenApiParameter(
        url_kwarg,
        str,
        OpenApiParameter.PATH,
        description=f"The {meta.verbose_name}'s {field.name}.",
    )
    tag = str(meta.verbose_name_plural)
    routes = [
        ("intent", PayableIntentView, "post", "Pay: create or reuse the payment and send it",
         PayableIntentRequest, {200: PayableSerializer, 201: PayableSerializer}),
        ("confirm", PayableConfirmView, "post", "Confirm after the customer's action",
         PayableConfirmRequest, {200: PayableSerializer}),
        ("status", PayableStatusView, "get", "The payment's status, refreshed",
         None, {200: PayableSerializer}),
        ("refund", PayableRefundView, "post", "Refund, in full or in part",
         PayableRefundRequest, {201: RefundSerializer}),
        ("retry", PayableRetryView, "post", "Retry a failed payment",
         PayableRetryRequest, {200: PayableSerializer}),
    ]  # fmt: skip
    patterns = []
    base = f"{prefix}/" if prefix else ""
    for name, view_class, method, summary, request_shape, responses in routes:
        view: type[PayableView] = type(
            f"{model.__name__}{view_class.__name__.removeprefix('Payable')}",
            (view_class,),
            {"payable": payable, "__module__": view_class.__module__},
        )
        schema = extend_schema(
            operation_id=f"{basename}_payment_{name}",
            summary=f"{summary} ({meta.verbose_name})",
            tags=[tag],
            parameters=[lookup_parameter],
            request=request_shape,
            responses=responses,
        )
        view = extend_schema_view(**{method: schema})(view)
        patterns.append(
            path(
                f"{base}<str:{url_kwarg}>/payment/{name}/",
                view.as_view(),
                name=f"{basename}-payment-{name}",
            )
        )
    return patterns
