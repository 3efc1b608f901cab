"""Request and response shapes of the API.

This module owns one decision: what goes over the wire. Response serializers show public
ids and exact amounts only: no provider tokens, no raw provider payloads, no sequential
ids. Request-body serializers (``...CreateSerializer`` and the actions') refuse unknown
fields and JSON numbers as amounts (see ``fields.py``); they validate shapes only, and the
services decide the rest.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Payment, PaymentMethod, PaymentMethodType, Refund, TransactionLog
from ..services.methods import RESERVED_METADATA_KEYS
from ..states import LedgerKind, PaymentStatus, RefundStatus
from ..types import Capability
from .fields import (
    AmountField,
    AmountOutField,
    CurrencyField,
    MetadataField,
    StrictSerializer,
    format_amount,
)

__all__ = [
    "ConfigSerializer",
    "ErrorSerializer",
    "LedgerEntrySerializer",
    "PaymentCancelSerializer",
    "PaymentCaptureSerializer",
    "PaymentCreateSerializer",
    "PaymentListQuery",
    "PaymentMethodCreateSerializer",
    "PaymentMethodSerializer",
    "PaymentMethodUpdateSerializer",
    "PaymentProcessSerializer",
    "PaymentRetrySerializer",
    "PaymentSerializer",
    "RefundCreateSerializer",
    "RefundListQuery",
    "RefundSerializer",
]


def _enum(values: list[str], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": values}
    if description:
        schema["description"] = description
    return schema


@extend_schema_field(_enum([s.value for s in PaymentStatus]))
class PaymentStatusField(serializers.CharField):
    pass


@extend_schema_field(_enum([s.value for s in RefundStatus]))
class RefundStatusField(serializers.CharField):
    pass


@extend_schema_field(_enum(list(PaymentMethodType.values)))
class MethodTypeField(serializers.CharField):
    pass


@extend_schema_field(_enum([k.value for k in LedgerKind]))
class LedgerKindField(serializers.CharField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "example": {"order": "A-1001"},
    }
)
class PublicMetadataField(serializers.Field):
    """Metadata as stored, without the keys paydesk reserves for itself."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if k not in RESERVED_METADATA_KEYS}


# -- errors ---------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=[
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "not_found_error",
            "rate_limit_error",
            "idempotency_error",
            "state_error",
            "card_error",
            "provider_error",
            "api_error",
        ],
        help_text="The kind of error; branch on this first.",
    )
    code = serializers.CharField(
        help_text="A stable code (docs/api.md lists them), e.g. invalid_request, not_found."
    )
    message = serializers.CharField(help_text="What went wrong and what to do next.")
    param = serializers.CharField(
        allow_null=True, help_text="The request field at fault, when there is one."
    )


class ErrorSerializer(serializers.Serializer):
    """Every error response: ``{"error": {"type", "code", "message", "param"}}``."""

    error = ErrorDetailSerializer()


# -- payment methods ------------------------------------------------------------------------


class PaymentMethodSerializer(serializers.ModelSerializer):
    type = MethodTypeField(read_only=True)
    metadata = PublicMetadataField()

    class Meta:
        model = PaymentMethod
        fields = [
            "id",
            "type",
            "provider",
            "brand",
            "last4",
            "exp_month",
            "exp_year",
            "is_default",
            "is_active",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PaymentMethodCreateSerializer(StrictSerializer):
    provider = serializers.CharField(max_length=50, help_text="A configured provider alias.")
    provider_token = serializers.CharField(
        max_length=255,
        help_text="The provider's token or id for the method (pm_..., tok_...); never card data.",
    )
    type = serializers.ChoiceField(
        choices=PaymentMethodType.choices, default=PaymentMethodType.CREDIT_CARD
    )
    brand = serializers.CharField(max_length=30, required=False, default="")
    last4 = serializers.CharField(max_length=4, required=False, default="")
    exp_month = serializers.IntegerField(min_value=1, max_value=12, required=False)
    exp_year = serializers.IntegerField(min_value=2000, max_value=2200, required=False)
    set_default = serializers.BooleanField(default=False)
    attach = serializers.BooleanField(
        default=False, help_text="Also keep the method at the provider (Stripe: a Customer)."
    )
    metadata = MetadataField()


class PaymentMethodUpdateSerializer(StrictSerializer):
    is_default = serializers.BooleanField(
        required=False, help_text="true makes this method the default (false is refused)."
    )
    metadata = MetadataField(help_text="Replaces the method's metadata.")

    def validate_is_default(self, value: bool) -> bool:
        if value is False:
            raise serializers.ValidationError(
                "A method stops being the default when another one is made the default; "
                "send is_default=true on that one instead."
            )
        return value


# -- payments -------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "type": {"type": "string", "enum": ["redirect", "use_client_secret"]},
            "redirect_url": {"type": "string"},
            "client_secret": {"type": "string"},
        },
        "required": ["type"],
        "description": "What the customer must do next: follow redirect_url, or hand "
        "client_secret to the provider's SDK (Stripe 3-D Secure).",
    }
)
class NextActionField(serializers.JSONField):
    pass


class PaymentSerializer(serializers.ModelSerializer):
    status = PaymentStatusField(read_only=True)
    amount = AmountOutField("amount")
    authorized_amount = AmountOutField("authorized_amount")
    captured_amount = AmountOutField("captured_amount")
    refunded_amount = AmountOutField("refunded_amount")
    refundable_amount = AmountOutField("refundable_amount")
    processing_fee = AmountOutField("processing_fee")
    payment_method = serializers.CharField(
        source="payment_method_id", read_only=True, allow_null=True
    )
    next_action = NextActionField(read_only=True, allow_null=True)
    metadata = PublicMetadataField()

    class Meta:
        model = Payment
        fields = [
            "id",
            "status",
            "amount",
            "currency",
            "provider",
            "payment_method",
            "capture_method",
            "authorized_amount",
            "captured_amount",
            "refunded_amount",
            "refundable_amount",
            "processing_fee",
            "reference",
            "description",
            "customer_email",
            "return_url",
            "next_action",
            "failure_code",
            "failure_message",
            "attempt",
            "metadata",
            "created_at",
            "updated_at",
            "processed_at",
            "cancelled_at",
        ]
        read_only_fields = fields


class PaymentCreateSerializer(StrictSerializer):
    amount = AmountField()
    currency = CurrencyField(required=False, help_text="Default: PAYDESK['DEFAULT_CURRENCY'].")
    provider = serializers.CharField(
        max_length=50, required=False, help_text="Default: PAYDESK['DEFAULT_PROVIDER']."
    )
    payment_method = serializers.CharField(
        max_length=40, required=False, help_text="Id of one of your saved payment methods."
    )
    payment_method_token = serializers.CharField(
        max_length=255, required=False, default="", help_text="A one-off provider token."
    )
    capture = serializers.BooleanField(
        default=True, help_text="false: authorize now, capture later (capture action)."
    )
    reference = serializers.CharField(max_length=255, required=False, default="")
    description = serializers.CharField(max_length=255, required=False, default="")
    return_url = serializers.URLField(max_length=2048, required=False, default="")
    customer_email = serializers.EmailField(required=False, default="")
    metadata = MetadataField()


class PaymentProcessSerializer(StrictSerializer):
    payment_method_token = serializers.CharField(max_length=255, required=False)
    return_url = serializers.URLField(max_length=2048, required=False)


class PaymentCaptureSerializer(StrictSerializer):
    amount = AmountField(required=False, help_text="Default: all that is authorized.")


class PaymentCancelSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=255, required=False, default="")


class PaymentRetrySerializer(StrictSerializer):
    payment_method = serializers.CharField(
        max_length=40, required=False, help_text="Id of another of your saved methods."
    )
    payment_method_token = serializers.CharField(max_length=255, required=False)


class LedgerEntrySerializer(serializers.ModelSerializer):
    kind = LedgerKindField(read_only=True)
    amount = serializers.SerializerMethodField()
    currency = serializers.SerializerMethodField()
    refund = serializers.CharField(source="refund_id", read_only=True, allow_null=True)

    class Meta:
        model = TransactionLog
        fields = ["kind", "amount", "currency", "attempt", "refund", "message", "created_at"]
        read_only_fields = fields

    def _currency(self, entry: TransactionLog) -> str:
        payment_currency = self.context.get("currency", "")
        return entry.currency or payment_currency

    @extend_schema_field({"type": "string", "format": "decimal", "nullable": True})
    def get_amount(self, entry: TransactionLog) -> str | None:
        return format_amount(entry.amount, self._currency(entry))

    def get_currency(self, entry: TransactionLog) -> str:
        return self._currency(entry)


ORDERINGS = ["created_at", "-created_at", "amount", "-amount", "status", "-status"]


class PaymentListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=[s.value for s in PaymentStatus], required=False)
    provider = serializers.CharField(max_length=50, required=False)
    currency = CurrencyField(required=False)
    created_after = serializers.DateTimeField(
        required=False, help_text="ISO 8601, inclusive, e.g. 2025-01-01T00:00:00Z."
    )
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive.")
    ordering = serializers.ChoiceField(choices=ORDERINGS, required=False, default="-created_at")


# -- refunds --------------------------------------------------------------------------------


class RefundSerializer(serializers.ModelSerializer):
    status = RefundStatusField(read_only=True)
    payment = serializers.CharField(source="payment_id", read_only=True)
    amount = AmountOutField("amount")

    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "status",
            "amount",
            "currency",
            "reason",
            "failure_code",
            "failure_message",
            "created_at",
            "updated_at",
            "processed_at",
        ]
        read_only_fields = fields


class RefundCreateSerializer(StrictSerializer):
    payment = serializers.CharField(max_length=40, help_text="The payment to refund.")
    amount = AmountField(required=False, help_text="Default: all that can still be refunded.")
    currency = CurrencyField(required=False, help_text="If given, must be the payment's.")
    reason = serializers.CharField(max_length=255, required=False, default="")
    process = serializers.BooleanField(
        default=True, help_text="false: only reserve the refund; send it later with process."
    )


class RefundListQuery(serializers.Serializer):
    payment = serializers.CharField(max_length=40, required=False)
    status = serializers.ChoiceField(choices=[s.value for s in RefundStatus], required=False)


# -- configuration --------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Public client options (publishable_key, client_id); never a secret.",
        "example": {"publishable_key": "pk_test_..."},
    }
)
class PublicOptionsField(serializers.DictField):
    pass


@extend_schema_field({"type": "array", "items": _enum([c.value for c in Capability])})
class CapabilitiesField(serializers.ListField):
    pass


class ProviderConfigSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    icon = serializers.CharField()
    capabilities = CapabilitiesField(child=serializers.CharField())
    currencies = serializers.ListField(
        child=serializers.CharField(),
        allow_null=True,
        help_text="Accepted currencies; null: any ISO 4217 currency.",
    )
    client = PublicOptionsField(child=serializers.CharField())


class ConfigSerializer(serializers.Serializer):
    default_currency = serializers.CharField()
    default_provider = serializers.CharField()
    providers = ProviderConfigSerializer(many=True)
    payment_method_types = serializers.ListField(child=serializers.CharField())
