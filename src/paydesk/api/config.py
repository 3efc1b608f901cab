"""``GET config/``: what a frontend needs to start a payment, and never a secret.

This module owns one decision: which provider options are public. Only option names on
``PUBLIC_OPTIONS`` are shown (a Stripe publishable key, a PayPal client id, a mode), and
even those are dropped if their value looks like a secret (``sk_...``, ``rk_...``,
``whsec_...``, anything containing "secret"), so a key pasted into the wrong option is not
published. Providers that are not fully configured are left out. No login is needed: all
of it is public by nature.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import paydesk_settings
from ..exceptions import ConfigurationError
from ..models import PaymentMethodType
from ..providers.registry import list_available_providers, providers
from .base import PaydeskAPIView
from .serializers import ConfigSerializer

__all__ = ["PUBLIC_OPTIONS", "ConfigView", "public_options"]

#: Provider OPTIONS that are public by nature, and the name the API shows them under.
PUBLIC_OPTIONS: dict[str, str] = {
    "PUBLISHABLE_KEY": "publishable_key",
    "CLIENT_ID": "client_id",
    "MODE": "mode",
}
_SECRET_MARKERS = ("sk_", "rk_", "whsec_")


def looks_secret(value: str) -> bool:
    lowered = value.lower()
    return "secret" in lowered or lowered.startswith(_SECRET_MARKERS)


def public_options(options: dict[str, Any]) -> dict[str, str]:
    shown = {}
    for option, name in PUBLIC_OPTIONS.items():
        value = options.get(option)
        if value is None or value == "" or not isinstance(value, str | int):
            continue
        text = str(value)
        if looks_secret(text):
            continue
        shown[name] = text
    return shown


def frontend_config() -> dict[str, Any]:
    listed = []
    for info in list_available_providers():
        if not info.configured:
            continue
        try:
            provider = providers[info.alias]
        except ConfigurationError:  # pragma: no cover - list_available_providers built it
            continue
        currencies = provider.supported_currencies
        listed.append(
            {
                "name": info.alias,
                "display_name": info.display_name,
                "icon": info.icon,
                "capabilities": sorted(str(c) for c in info.capabilities),
                "currencies": sorted(currencies) if currencies is not None else None,
                "client": public_options(provider.options),
            }
        )
    return {
        "default_currency": paydesk_settings.DEFAULT_CURRENCY,
        "default_provider": paydesk_settings.DEFAULT_PROVIDER,
        "providers": listed,
        "payment_method_types": list(PaymentMethodType.values),
    }


class ConfigView(PaydeskAPIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="What a frontend needs: providers, public keys, default currency",
        tags=["configuration"],
        responses={200: ConfigSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(ConfigSerializer(frontend_config()).data)
