"""Provider adapters and the registry that builds them from ``PAYDESK["PROVIDERS"]``."""

from .base import PaymentProvider, ProviderInfo
from .registry import (
    get_async_payment_provider,
    get_payment_provider,
    list_available_providers,
    native_async_operations,
    register_provider_class,
)

__all__ = [
    "PaymentProvider",
    "ProviderInfo",
    "get_async_payment_provider",
    "get_payment_provider",
    "list_available_providers",
    "native_async_operations",
    "register_provider_class",
]
