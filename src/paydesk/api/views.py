"""The API's resources: payment methods, payments, refunds.

This module owns one decision: which service each endpoint calls, for whom. Every write is
a call into :mod:`paydesk.services`; nothing here saves a model. Objects are always looked
up in the caller's own queryset (``permissions.owned_by``: their own, or everything for
staff), so another user's object answers 404 exactly like a missing one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from .. import services
from ..exceptions import NotSupported
from ..models import Payment, PaymentMethod, Refund
from ..models.apikey import APIKeyScope
from ..providers.registry import providers
from ..services.fraud import context_from_request
from ..services.methods import RESERVED_METADATA_KEYS, update_payment_method
from .base import PaydeskGenericViewSet
from .exceptions import APIError
from .pagination import PaydeskPagination
from .permissions import owned_by
from .serializers import (
    LedgerEntrySerializer,
    PaymentCancelSerializer,
    PaymentCaptureSerializer,
    PaymentCreateSerializer,
    PaymentListQuery,
    PaymentMethodCreateSerializer,
    PaymentMethodSerializer,
    PaymentMethodUpdateSerializer,
    PaymentProcessSerializer,
    PaymentRetrySerializer,
    PaymentSerializer,
    RefundCreateSerializer,
    RefundListQuery,
    RefundSerializer,
)

__all__ = ["PaymentMethodViewSet", "PaymentViewSet", "RefundViewSet"]


def _validated(serializer_class: type[BaseSerializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _check_provider(alias: str, *, field: str = "provider") -> None:
    """A provider alias from a request must be configured (else 400, not a 500)."""
    if alias not in providers.aliases():
        known = ", ".join(sorted(providers.aliases()))
        raise APIError(
            f"Unknown provider {alias!r}; configured providers: {known}.",
            code="unknown_provider",
            param=field,
            status_code=400,
        )


def _missing(field: str, what: str) -> APIError:
    return APIError(f"No such {what}.", code="resource_missing", param=field, status_code=400)


def _no_reserved_metadata(metadata: dict[str, str] | None) -> None:
    for key in metadata or {}:
        if key in RESERVED_METADATA_KEYS:
            raise APIError(
                f"metadata key {key!r} is reserved by paydesk.",
                code="invalid_request",
                param="metadata",
                status_code=400,
            )


_IDEMPOTENT_EXAMPLE = OpenApiExample(
    "Create a payment",
    value={
        "amount": "19.99",
        "currency": "USD",
        "provider": "sandbox",
        "payment_method_token": "pm_sandbox_visa",
        "reference": "order-1001",
        "metadata": {"order": "1001"},
    },
    request_only=True,
)


# -- payment methods ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List your saved payment methods", tags=["payment methods"]),
    retrieve=extend_schema(summary="A saved payment method", tags=["payment methods"]),
)
class PaymentMethodViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PaydeskGenericViewSet):
    """Tokenized payment methods. Create one from a provider token; never send card data."""

    serializer_class = PaymentMethodSerializer
    pagination_class = PaydeskPagination
    lookup_value_regex = "[^/]+"
    provider_actions = ("create", "destroy")  # attach=true, and detaching an attached one
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[PaymentMethod]:
        queryset = owned_by(PaymentMethod.objects.order_by("-created_at", "id"), self.request)
        if getattr(self, "action", None) == "list":
            queryset = queryset.filter(is_active=True)
        return queryset

    @extend_schema(
        summary="Save a payment method from a provider token",
        tags=["payment methods"],
        request=PaymentMethodCreateSerializer,
        responses={201: PaymentMethodSerializer},
        examples=[
            OpenApiExample(
                "Save a sandbox card",
                value={"provider": "sandbox", "provider_token": "pm_sandbox_visa"},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = _validated(PaymentMethodCreateSerializer, request.data)
        _check_provider(data["provider"])
        _no_reserved_metadata(data.get("metadata"))
        method = services.add_payment_method(user=request.user, **data)
        return Response(PaymentMethodSerializer(method).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Update a payment method (default flag, metadata)",
        tags=["payment methods"],
        request=PaymentMethodUpdateSerializer,
        responses={200: PaymentMethodSerializer},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        method = self.get_object()
        data = _validated(PaymentMethodUpdateSerializer, request.data)
        if "metadata" in data:
            _no_reserved_metadata(data["metadata"])
            method = update_payment_method(method=method, metadata=data["metadata"])
        if data.get("is_default"):
            method = services.set_default_payment_method(method=method)
        method.refresh_from_db()
        return Response(PaymentMethodSerializer(method).data)

    @extend_schema(
        summary="Deactivate a payment method (soft delete)",
        tags=["payment methods"],
        request=None,
        responses={204: None},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        method = self.get_object()
        if method.is_active:
            services.deactivate_payment_method(method=method)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Make this your default payment method",
        tags=["payment methods"],
        request=None,
        responses={200: PaymentMethodSerializer},
    )
    @action(detail=True, methods=["post"], url_path="set-default")
    def set_default(self, request: Request, pk: str) -> Response:
        method = services.set_default_payment_method(method=self.get_object())
        method.refresh_from_db()
        return Response(PaymentMethodSerializer(method).data)


# -- payments -------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List payments",
        tags=["payments"],
        parameters=[PaymentListQuery],
    ),
    retrieve=extend_schema(summary="A payment", tags=["payments"]),
)
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PaydeskGenericViewSet):
    """Payments: create, send to the provider, capture, cancel, retry, and read the ledger."""

    serializer_class = PaymentSerializer
    pagination_class = PaydeskPagination
    lookup_value_regex = "[^/]+"
    provider_actions = ("process", "capture", "cancel", "sync", "retry")

    def get_queryset(self) -> QuerySet[Payment]:
        return owned_by(Payment.objects.all(), self.request)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if getattr(self, "action", None) != "list":
            return queryset
        query = _validated(PaymentListQuery, self.request.query_params)
        for name in ("status", "provider", "currency"):
            if query.get(name):
                queryset = queryset.filter(**{name: query[name]})
        if query.get("created_after"):
            queryset = queryset.filter(created_at__gte=query["created_after"])
        if query.get("created_before"):
            queryset = queryset.filter(created_at__lt=query["created_before"])
        ordering = query.get("ordering") or "-created_at"
        tiebreak = "-id" if ordering.startswith("-") else "id"
        return queryset.order_by(ordering, tiebreak)

    def _method(self, method_id: str | None, field: str = "payment_method") -> Any:
        if not method_id:
            return None
        # Only the caller's own, active methods can pay (also for staff: a payment is made
        # by its user).
        method = PaymentMethod.objects.filter(
            pk=method_id, user=self.request.user, is_active=True
        ).first()
        if method is None:
            raise _missing(field, "payment method")
        return method

    def _respond(self, payment: Payment, code: int = status.HTTP_200_OK) -> Response:
        return Response(PaymentSerializer(payment).data, status=code)

    @extend_schema(
        summary="Create a payment (not yet sent to the provider)",
        tags=["payments"],
        request=PaymentCreateSerializer,
        responses={201: PaymentSerializer},
        examples=[_IDEMPOTENT_EXAMPLE],
    )
    def create(self, request: Request) -> Response:
        data = _validated(PaymentCreateSerializer, request.data)
        if data.get("provider"):
            _check_provider(data["provider"])
        _no_reserved_metadata(data.get("metadata"))
        method = self._method(data.pop("payment_method", None))
        payment = services.create_payment(
            user=request.user,
            payment_method=method,
            **data,
        )
        return self._respond(payment, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Send the payment to its provider; returns the next action if any",
        description=(
            "On success the status is completed (or authorized with capture=false). "
            "requires_action comes with next_action: follow redirect_url, or pass "
            "client_secret to the provider's SDK (3-D Secure). A decline is an outcome, "
            "not an error: 200 with status failed and failure_code."
        ),
        tags=["payments"],
        request=PaymentProcessSerializer,
        responses={200: PaymentSerializer},
    )
    @action(detail=True, methods=["post"])
    def process(self, request: Request, pk: str) -> Response:
        payment = self.get_object()
        data = _validated(PaymentProcessSerializer, request.data)
        # The client's address feeds the fraud rules (IP velocity, blocklists, country).
        context = context_from_request(request)
        return self._respond(
            services.process_payment(payment=payment, fraud_context=context, **data)
        )

    @extend_schema(
        summary="Capture an authorized payment, in full or in part",
        tags=["payments"],
        request=PaymentCaptureSerializer,
        responses={200: PaymentSerializer},
    )
    @action(detail=True, methods=["post"])
    def capture(self, request: Request, pk: str) -> Response:
        payment = self.get_object()
        data = _validated(PaymentCaptureSerializer, request.data)
        return self._respond(services.capture_payment(payment=payment, amount=data.get("amount")))

    @extend_schema(
        summary="Cancel a payment that was not captured",
        tags=["payments"],
        request=PaymentCancelSerializer,
        responses={200: PaymentSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        payment = self.get_object()
        data = _validated(PaymentCancelSerializer, request.data)
        return self._respond(services.cancel_payment(payment=payment, **data))

    @extend_schema(
        summary="The payment's status, refreshed from the provider",
        description=(
            "Asks the provider (when it can report a status) and records anything new, then "
            "returns the payment."
        ),
        tags=["payments"],
        responses={200: PaymentSerializer},
    )
    @action(detail=True, methods=["get"], url_path="status")
    def sync(self, request: Request, pk: str) -> Response:
        payment = self.get_object()
        # A provider that cannot report a status: the recorded one is all there is.
        with contextlib.suppress(NotSupported):
            payment = services.sync_payment(payment=payment)
        return self._respond(payment)

    @extend_schema(
        summary="Retry a failed payment, optionally with another method or token",
        tags=["payments"],
        request=PaymentRetrySerializer,
        responses={200: PaymentSerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        payment = self.get_object()
        data = _validated(PaymentRetrySerializer, request.data)
        method = self._method(data.pop("payment_method", None))
        return self._respond(services.retry_payment(payment=payment, payment_method=method, **data))

    @extend_schema(
        summary="The payment's ledger: every money movement and provider interaction",
        tags=["payments"],
        responses={200: LedgerEntrySerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def ledger(self, request: Request, pk: str) -> Response:
        payment = self.get_object()
        entries = payment.ledger.order_by("created_at", "id")
        data = LedgerEntrySerializer(entries, many=True, context={"currency": payment.currency})
        return Response(data.data)


# -- refunds --------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List refunds", tags=["refunds"], parameters=[RefundListQuery]),
    retrieve=extend_schema(summary="A refund", tags=["refunds"]),
)
class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PaydeskGenericViewSet):
    """Refunds of your payments. Creating and sending one needs staff or the refund scope."""

    serializer_class = RefundSerializer
    pagination_class = PaydeskPagination
    lookup_value_regex = "[^/]+"
    provider_actions = ("create", "process")
    action_scopes = {"create": APIKeyScope.REFUND, "process": APIKeyScope.REFUND}

    def get_queryset(self) -> QuerySet[Refund]:
        return owned_by(
            Refund.objects.order_by("-created_at", "-id"), self.request, "payment__user"
        )

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if getattr(self, "action", None) != "list":
            return queryset
        query = _validated(RefundListQuery, self.request.query_params)
        if query.get("payment"):
            queryset = queryset.filter(payment_id=query["payment"])
        if query.get("status"):
            queryset = queryset.filter(status=query["status"])
        return queryset

    @extend_schema(
        summary="Refund a payment, in full or in part",
        tags=["refunds"],
        request=RefundCreateSerializer,
        responses={201: RefundSerializer},
        examples=[
            OpenApiExample(
                "Partial refund",
                value={"payment": "pay_...", "amount": "5.00", "reason": "damaged item"},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = _validated(RefundCreateSerializer, request.data)
        payment = owned_by(Payment.objects.all(), request).filter(pk=data["payment"]).first()
        if payment is None:
            raise _missing("payment", "payment")
        currency = data.get("currency")
        if currency and currency != payment.currency:
            raise APIError(
                f"The payment is in {payment.currency}; refund it in {payment.currency}.",
                code="currency_mismatch",
                param="currency",
                status_code=400,
            )
        refund = services.create_refund(
            payment=payment,
            amount=data.get("amount"),
            reason=data.get("reason", ""),
            user=request.user,
            process=data.get("process", True),
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Send a pending refund to the provider (again, after a timeout)",
        tags=["refunds"],
        request=None,
        responses={200: RefundSerializer},
    )
    @action(detail=True, methods=["post"])
    def process(self, request: Request, pk: str) -> Response:
        refund = services.process_refund(refund=self.get_object())
        return Response(RefundSerializer(refund).data)
