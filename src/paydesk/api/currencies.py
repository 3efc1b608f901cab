"""Currencies, exchange rates and conversion: ``currencies/``, ``currencies/rates/``,
``currencies/convert/``.

This module owns one decision: how the rates services are shown to API clients. All three
endpoints are reads: any authenticated principal may call them (a signed-in user, a token
or JWT, an API key with the ``read`` scope), because currencies and reference rates are not
anyone's data and a checkout page needs them before there is a payment. Amounts and rates
are decimal strings in and out; ``amount=10.00`` in a query string is parsed as a
``Decimal``, never a float. Conversions state the rate, its date, its source and the
rounding (see :mod:`paydesk.services.rates`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import paydesk_settings
from ..exceptions import ConfigurationError, MoneyError, PaymentValidationError
from ..models import ExchangeRate
from ..money import Money, currency_exponent, iso_currencies
from ..providers.registry import providers
from ..services import rates
from .base import PaydeskAPIView
from .fields import AmountField, CurrencyField
from .schema import error_response
from .serializers import ErrorSerializer

__all__ = ["ConvertView", "CurrencyListView", "RatesView", "format_rate", "urlpatterns"]


def format_rate(value: Decimal) -> str:
    """A rate as a plain decimal string without trailing zeros (``"1.0866"``, ``"100"``)."""
    return f"{value.normalize():f}"


def _currency_name(code: str) -> str:
    from iso4217 import Currency

    try:
        return str(Currency(code).currency_name)
    except ValueError:  # pragma: no cover - iso_currencies() comes from the same table
        return code


def _rate_not_found() -> OpenApiResponse:
    return OpenApiResponse(
        ErrorSerializer,
        description="No stored exchange rate connects the two currencies (code "
        "rate_not_found): run update_exchange_rates or enter the rate in the admin.",
        examples=[
            OpenApiExample(
                "rate_not_found",
                value={
                    "error": {
                        "type": "invalid_request_error",
                        "code": "rate_not_found",
                        "message": "No exchange rate for USD->KWD: ...",
                        "param": None,
                    }
                },
                status_codes=["404"],
                response_only=True,
            )
        ],
    )


# -- currencies/ ----------------------------------------------------------------------------


class ProviderSupportSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="A configured provider alias.")
    accepted = serializers.BooleanField(help_text="Whether the provider takes this currency.")
    exponent = serializers.IntegerField(
        allow_null=True,
        help_text="Decimals the provider uses on the wire when it differs from ISO 4217 "
        "(Stripe sends MGA with 0); null when the provider does not accept the currency.",
    )


class CurrencySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="ISO 4217 code.")
    name = serializers.CharField()
    exponent = serializers.IntegerField(help_text="ISO 4217 minor-unit exponent (USD 2, JPY 0).")
    providers = ProviderSupportSerializer(many=True)


class CurrencyListSerializer(serializers.Serializer):
    default_currency = serializers.CharField()
    currencies = CurrencySerializer(many=True)


def _configured_providers() -> list[Any]:
    built = []
    for alias in providers.aliases():
        try:
            built.append(providers[alias])
        except ConfigurationError:
            continue  # manage.py check reports it; the list shows the providers that work
    return built


class CurrencyListView(PaydeskAPIView):
    """Every ISO 4217 currency paydesk accepts, with which configured provider takes it."""

    @extend_schema(
        operation_id="currencies_list",
        tags=["currencies"],
        summary="Supported currencies",
        responses={200: CurrencyListSerializer},
    )
    def get(self, request: Request) -> Response:
        backends = _configured_providers()
        currencies = []
        for code in iso_currencies():
            support = []
            for backend in backends:
                accepted = bool(backend.supports_currency(code))
                support.append(
                    {
                        "provider": backend.alias,
                        "accepted": accepted,
                        "exponent": backend.currency_rules.exponent(code) if accepted else None,
                    }
                )
            currencies.append(
                {
                    "code": code,
                    "name": _currency_name(code),
                    "exponent": currency_exponent(code),
                    "providers": support,
                }
            )
        body = {"default_currency": paydesk_settings.DEFAULT_CURRENCY, "currencies": currencies}
        return Response(CurrencyListSerializer(body).data)


# -- currencies/rates/ -----------------------------------------------------------------------


class RatesQuery(serializers.Serializer):
    base = CurrencyField(
        required=False,
        help_text="The currency one unit of which is priced; default: PAYDESK['DEFAULT_CURRENCY'].",
    )
    on = serializers.DateField(
        required=False, help_text="The latest rates on or before this date (YYYY-MM-DD)."
    )


class RateSerializer(serializers.Serializer):
    quote = serializers.CharField(help_text="One unit of base buys `rate` of this currency.")
    rate = serializers.CharField(help_text="A decimal string, up to 12 decimal places.")
    date = serializers.DateField(help_text="The date the rate is for.")
    # A declared field, popped from the class by DRF's metaclass: it never shadows
    # Field.source at run time.
    source = serializers.CharField(  # type: ignore[assignment]
        help_text='Where it comes from: "ecb", "manual", or derived: "ecb (inverse)", '
        '"ecb (via EUR)".'
    )


class RatesSerializer(serializers.Serializer):
    base = serializers.CharField()
    on = serializers.DateField(allow_null=True)
    rates = RateSerializer(many=True)


def _rate(row: ExchangeRate) -> dict[str, Any]:
    return {
        "quote": row.quote,
        "rate": format_rate(row.rate),
        "date": row.date,
        "source": row.source,
    }


class RatesView(PaydeskAPIView):
    """The latest exchange rates from one currency to every currency a stored rate reaches."""

    @extend_schema(
        operation_id="currencies_rates",
        tags=["currencies"],
        summary="Latest exchange rates",
        parameters=[RatesQuery],
        responses={200: RatesSerializer, 400: error_response("400")},
    )
    def get(self, request: Request) -> Response:
        query = RatesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        base = query.validated_data.get("base") or paydesk_settings.DEFAULT_CURRENCY
        on = query.validated_data.get("on")
        found = rates.latest_rates(base, on=on)
        body = {"base": base.upper(), "on": on, "rates": [_rate(row) for row in found]}
        return Response(RatesSerializer(body).data)


# -- currencies/convert/ ---------------------------------------------------------------------


class ConvertQuery(serializers.Serializer):
    # "from" is a Python keyword, so the fields are declared here rather than as attributes.
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "amount": AmountField(help_text="A decimal string in `from`, e.g. 10.00."),
            "from": CurrencyField(help_text="ISO 4217 code of the amount."),
            "to": CurrencyField(help_text="ISO 4217 code to convert to."),
            "on": serializers.DateField(
                required=False,
                help_text="Use the latest rate on or before this date (YYYY-MM-DD).",
            ),
        }


class MoneySerializer(serializers.Serializer):
    amount = serializers.CharField(help_text="A decimal string with the currency's decimals.")
    currency = serializers.CharField()


class ConversionSerializer(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": MoneySerializer(help_text="The amount asked for."),
            "to": MoneySerializer(
                help_text="The converted amount, rounded once to the currency's ISO 4217 exponent."
            ),
            "rate": serializers.CharField(help_text="One unit of `from` buys this much `to`."),
            "rate_date": serializers.DateField(help_text="The date of the rate used."),
            "source": serializers.CharField(help_text="Where the rate comes from."),
            "rounding": serializers.CharField(
                help_text="How the result was rounded, e.g. ROUND_HALF_EVEN."
            ),
        }


def _money(money: Money) -> dict[str, str]:
    return {"amount": f"{money.amount:f}", "currency": money.currency}


class ConvertView(PaydeskAPIView):
    """Convert an amount exactly, at the latest stored rate, saying which rate and date."""

    @extend_schema(
        operation_id="currencies_convert",
        tags=["currencies"],
        summary="Convert an amount",
        parameters=[ConvertQuery],
        responses={
            200: ConversionSerializer,
            400: error_response("400"),
            404: _rate_not_found(),
        },
        examples=[
            OpenApiExample(
                "USD to EUR",
                response_only=True,
                value={
                    "from": {"amount": "10.00", "currency": "USD"},
                    "to": {"amount": "8.69", "currency": "EUR"},
                    "rate": "0.868658790827",
                    "rate_date": "2025-06-13",
                    "source": "ecb (inverse)",
                    "rounding": "ROUND_HALF_EVEN",
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = ConvertQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        try:
            money = Money(data["amount"], data["from"])
        except MoneyError as exc:
            raise PaymentValidationError(exc.message, code=exc.code, field="amount") from exc
        try:
            conversion = rates.convert(money=money, to=data["to"], on=data.get("on"))
        except MoneyError as exc:  # the result has more digits than paydesk keeps
            raise PaymentValidationError(exc.message, code=exc.code, field="amount") from exc
        body = {
            "from": _money(conversion.original),
            "to": _money(conversion.result),
            "rate": format_rate(conversion.rate),
            "rate_date": conversion.rate_date,
            "source": conversion.source,
            "rounding": conversion.rounding,
        }
        return Response(ConversionSerializer(body).data)


urlpatterns = [
    path("currencies/", CurrencyListView.as_view(), name="currency-list"),
    path("currencies/rates/", RatesView.as_view(), name="currency-rates"),
    path("currencies/convert/", ConvertView.as_view(), name="currency-convert"),
]
