"""Provider adapters and the registry that builds them from ``PAYDESK["PROVIDERS"]``."""

from .base import PaymentProvider, ProviderInfo
from .registry import get_payment_provider, list_available_providers, register_provider_class

__all__ = [
    "PaymentProvider",
    "ProviderInfo",
    "get_payment_provider",
    "list_available_providers",
    "register_provider_class",
]
