"""The one ``PAYDESK`` settings dict, read lazily.

This module owns one decision: where paydesk's configuration comes from and when it is read.
Nothing is read at import time: ``paydesk_settings.X`` looks at ``settings.PAYDESK`` on first
use, merged over ``DEFAULTS``, and forgets it when Django's ``setting_changed`` fires (tests
using ``override_settings`` see their values). Secrets can be named as ``env("VAR")`` so that
settings files hold no secret and a missing variable is reported by ``manage.py check``.

Defaults (every key is optional)::

    PAYDESK = {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {"sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                                  "OPTIONS": {}}},
        "DEFAULT_CURRENCY": "USD",
        "PROCESSING_FEE_RATE": "0",        # percent of the amount, e.g. "3" for 3 %
        "REFUND_POLICY": "paydesk.policy.RefundPolicy",
        "PUBLIC_BASE_URL": None,           # absolute base URL advertised to providers
        "SANDBOX_IN_PRODUCTION": False,    # allow the sandbox when DEBUG is False
    }
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "Env", "env", "paydesk_settings", "resolve"]

DEFAULTS: dict[str, Any] = {
    "DEFAULT_PROVIDER": "sandbox",
    "PROVIDERS": {
        "sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}},
    },
    "DEFAULT_CURRENCY": "USD",
    "PROCESSING_FEE_RATE": "0",
    "REFUND_POLICY": "paydesk.policy.RefundPolicy",
    "PUBLIC_BASE_URL": None,
    "SANDBOX_IN_PRODUCTION": False,
}


@dataclass(frozen=True)
class Env:
    """A setting value taken from the environment when it is used, not when settings load."""

    name: str
    default: Any = None

    def resolve(self) -> Any:
        return os.environ.get(self.name, self.default)

    def __repr__(self) -> str:  # never print the value: it is usually a secret
        return f"env({self.name!r})"


def env(name: str, default: Any = None) -> Env:
    """Name an environment variable as a setting value: ``"SECRET_KEY": env("PAYDESK_...")``."""
    return Env(name, default)


def resolve(value: Any) -> Any:
    """Resolve ``env()`` markers inside a (possibly nested) settings value."""
    if isinstance(value, Env):
        return value.resolve()
    if isinstance(value, Mapping):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(resolve(v) for v in value)
    return value


class PaydeskSettings:
    """Attribute access to ``settings.PAYDESK`` merged over ``DEFAULTS``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._cache is None:
            configured = getattr(settings, "PAYDESK", None) or {}
            if not isinstance(configured, Mapping):
                # checks.py reports this as paydesk.E001; here, fall back so the check can run.
                configured = {}
            self._cache = dict(configured)
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Unknown paydesk setting {name!r}; see paydesk.conf.DEFAULTS.")
        return self.user_settings.get(name, DEFAULTS[name])

    def get(self, name: str, default: Any = None) -> Any:
        return self.user_settings.get(name, DEFAULTS.get(name, default))

    def reload(self) -> None:
        self._cache = None


paydesk_settings = PaydeskSettings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "PAYDESK":
        paydesk_settings.reload()
        # The provider registry builds instances from these settings; drop them too.
        from .providers.registry import providers

        providers.reset()
