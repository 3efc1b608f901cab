"""Which provider instance answers for an alias.

This module owns one decision: how ``PAYDESK["PROVIDERS"]`` becomes provider instances. It
works like Django's ``storages`` handler: ``{alias: {"BACKEND": ..., "OPTIONS": {...}}}``,
each instance built on first use from the then-current settings (``env()`` markers resolved
at that moment), cached per alias, and dropped when ``PAYDESK`` changes. ``BACKEND`` is a
dotted path or a short name registered with ``register_provider_class``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.utils.module_loading import import_string

from ..conf import paydesk_settings, resolve
from ..exceptions import ConfigurationError
from .base import PaymentProvider, ProviderInfo

__all__ = [
    "BUILTIN_BACKENDS",
    "ProviderHandler",
    "get_async_payment_provider",
    "get_payment_provider",
    "list_available_providers",
    "native_async_operations",
    "providers",
    "register_provider_class",
]

BUILTIN_BACKENDS: dict[str, str] = {
    "sandbox": "paydesk.providers.sandbox.SandboxProvider",
    "iyzico": "paydesk.providers.iyzico.IyzicoProvider",
    "nowpayments": "paydesk.providers.nowpayments.NowPaymentsProvider",
    "easypay": "paydesk.providers.easypay.EasyPayProvider",
    "bank_transfer": "paydesk.providers.bank_transfer.BankTransferProvider",
    "stripe": "paydesk.providers.stripe.StripeProvider",
    "paypal": "paydesk.providers.paypal.PayPalProvider",
}

_registered: dict[str, type[PaymentProvider]] = {}


def register_provider_class(name: str, cls: type[PaymentProvider]) -> None:
    """Make ``cls`` usable as ``"BACKEND": name`` in ``PAYDESK["PROVIDERS"]``."""
    if not (isinstance(cls, type) and issubclass(cls, PaymentProvider)):
        raise ConfigurationError(
            f"register_provider_class({name!r}, ...) needs a PaymentProvider subclass, got {cls!r}."
        )
    _registered[name] = cls
    providers.reset()


def load_backend(backend: object) -> type[PaymentProvider]:
    """Resolve a BACKEND value (registered name, built-in name or dotted path) to a class."""
    if not isinstance(backend, str):
        # As in STORAGES: settings name classes by path, so they import lazily.
        hint = (
            f" such as {backend.__module__}.{backend.__qualname__}"
            if isinstance(backend, type)
            else ""
        )
        raise ConfigurationError(
            f"Provider BACKEND must be a dotted path string{hint}, got {backend!r}."
        )
    if backend in _registered:
        return _registered[backend]
    path = BUILTIN_BACKENDS.get(backend, backend)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f"Cannot import provider backend {backend!r}: {exc}. Use a dotted path to a "
            "PaymentProvider subclass, a built-in name, or register_provider_class()."
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, PaymentProvider)):
        raise ConfigurationError(
            f"Provider backend {backend!r} is not a paydesk.providers.base.PaymentProvider."
        )
    return cls


class ProviderHandler:
    def __init__(self) -> None:
        self._instances: dict[str, PaymentProvider] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> dict[str, Any]:
        configured = paydesk_settings.PROVIDERS
        if not isinstance(configured, dict):
            raise ConfigurationError('PAYDESK["PROVIDERS"] must be a dict of alias -> config.')
        return configured

    def aliases(self) -> list[str]:
        return list(self.config)

    def __getitem__(self, alias: str) -> PaymentProvider:
        instance = self._instances.get(alias)
        if instance is not None:
            return instance
        with self._lock:
            instance = self._instances.get(alias)
            if instance is None:
                instance = self.create(alias)
                self._instances[alias] = instance
        return instance

    def create(self, alias: str) -> PaymentProvider:
        try:
            params = self.config[alias]
        except KeyError:
            known = ", ".join(sorted(self.config)) or "none"
            raise ConfigurationError(
                f"No payment provider is configured under alias {alias!r} (configured: {known}). "
                'Add it to PAYDESK["PROVIDERS"].'
            ) from None
        if not isinstance(params, dict) or "BACKEND" not in params:
            raise ConfigurationError(
                f'PAYDESK["PROVIDERS"][{alias!r}] needs a "BACKEND" key, like STORAGES entries.'
            )
        cls = load_backend(params["BACKEND"])
        options = resolve(params.get("OPTIONS") or {})
        try:
            return cls(alias=alias, options=options)
        except (LookupError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f'PAYDESK["PROVIDERS"][{alias!r}] cannot be built: {exc!r}. Check its OPTIONS.'
            ) from exc

    def reset(self) -> None:
        with self._lock:
            self._instances = {}

    def set_instance(self, alias: str, instance: PaymentProvider) -> None:
        """Use ``instance`` for ``alias`` until the next reset (the testing kit's seam)."""
        with self._lock:
            self._instances[alias] = instance


providers = ProviderHandler()


def get_payment_provider(alias: str | None = None) -> PaymentProvider:
    """The provider instance for ``alias``, or for ``PAYDESK["DEFAULT_PROVIDER"]``."""
    return providers[alias or paydesk_settings.DEFAULT_PROVIDER]


#: The provider operations that have an ``*_async`` twin.
ASYNC_OPERATIONS: tuple[str, ...] = (
    "create_payment",
    "confirm_payment",
    "capture_payment",
    "cancel_payment",
    "get_payment_status",
    "create_refund",
)


def native_async_operations(provider: PaymentProvider) -> frozenset[str]:
    """The operations whose ``*_async`` twin ``provider`` implements itself.

    The others fall back to ``PaymentProvider``'s default: the sync method run in asgiref's
    thread-sensitive executor. That is the right choice for adapters that answer from the
    database (sandbox, bank transfer); an HTTP adapter should appear here with every
    operation it supports.
    """
    cls = type(provider)
    return frozenset(
        name
        for name in ASYNC_OPERATIONS
        if getattr(cls, f"{name}_async") is not getattr(PaymentProvider, f"{name}_async")
    )


def get_async_payment_provider(alias: str | None = None) -> PaymentProvider:
    """The provider for ``alias`` (default: ``PAYDESK["DEFAULT_PROVIDER"]``), for async code.

    Call its ``*_async`` methods (``create_payment_async``, ``get_payment_status_async``...)
    from an event loop. It is the same instance ``get_payment_provider`` returns, so one
    alias keeps one set of credentials, token caches and clients whichever way it is called;
    the HTTP adapters (Stripe, PayPal, iyzico, NOWPayments, EasyPay) answer those methods
    natively on ``httpx.AsyncClient`` or the Stripe SDK's async client, never by wrapping
    their sync code in a thread (``native_async_operations`` says which are native).

    Building the instance reads settings only, no database and no network, so this is
    safe to call inside an event loop.
    """
    return get_payment_provider(alias)


def list_available_providers() -> list[ProviderInfo]:
    """Display metadata of every configured provider (unbuildable ones are left out)."""
    infos = []
    for alias in providers.aliases():
        try:
            infos.append(providers[alias].info())
        except ConfigurationError:
            continue
    return infos
