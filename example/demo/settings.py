"""Settings for the paydesk demo project (a shop and event bookings on the sandbox provider).

Runs on an SQLite file with nothing but Python. Environment variables:

* ``DATABASE_URL``: use another database, e.g. ``postgres://user:pass@localhost/paydesk_demo``
  (needs ``pip install dj-database-url "psycopg[binary]"``, both in paydesk's ``test`` extra).
* ``DEMO_DEBUG=0``: turn ``DEBUG`` off (it is on by default).
* ``DEMO_SECRET_KEY``, ``DEMO_ALLOWED_HOSTS`` (comma-separated).
* ``PAYDESK_<ALIAS>_<OPTION>``: a provider's options, see ``provider()`` below and
  ``docs/demo.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import django
from django.core.exceptions import ImproperlyConfigured

from paydesk.conf import env

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in {"0", "false", "no", "off"}


def provider(
    alias: str,
    backend: str,
    *option_names: str,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``PAYDESK["PROVIDERS"]`` entry whose options come from the environment.

    Each option ``NAME`` is read from ``PAYDESK_<ALIAS>_<NAME>`` (alias upper-cased, anything
    but letters and digits turned into ``_``) when paydesk first builds the provider, not when
    this file loads, so the settings hold no secret and ``manage.py check`` names any variable
    that is missing. ``defaults`` gives a value for options whose variable is unset::

        provider("stripe", "paydesk.providers.stripe.StripeProvider",
                 "SECRET_KEY", "WEBHOOK_SECRET")
        # -> {"BACKEND": ..., "OPTIONS": {"SECRET_KEY": env("PAYDESK_STRIPE_SECRET_KEY"), ...}}
    """
    defaults = dict(defaults or {})
    unknown = set(defaults) - set(option_names)
    if unknown:
        raise ImproperlyConfigured(
            f"provider({alias!r}): defaults for options not listed: {', '.join(sorted(unknown))}."
        )
    prefix = "PAYDESK_" + re.sub(r"[^A-Z0-9]", "_", alias.upper()) + "_"
    return {
        "BACKEND": backend,
        "OPTIONS": {name: env(prefix + name, defaults.get(name)) for name in option_names},
    }


def _database() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        try:
            import dj_database_url
        except ImportError as exc:
            raise ImproperlyConfigured(
                "DATABASE_URL is set but dj-database-url is not installed; run "
                '`pip install dj-database-url "psycopg[binary]"` (or unset DATABASE_URL to '
                "use the SQLite file)."
            ) from exc
        config: dict[str, Any] = dj_database_url.parse(url, conn_max_age=60)
    else:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE makes a transaction take SQLite's write lock when it starts, so two
        # concurrent refunds cannot both read the same balance (paydesk.W004); the timeout
        # turns "database is locked" into waiting.
        config.setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    return config


SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "paydesk-demo-not-a-secret")
DEBUG = _flag("DEMO_DEBUG", default=True)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    host.strip() for host in os.environ.get("DEMO_ALLOWED_HOSTS", "").split(",") if host.strip()
]

INSTALLED_APPS: list[str] = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "paydesk",
    "shop",
    "bookings",
]
if django.VERSION < (6, 0):  # Django 5.2: Django Tasks come from the backport
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Bank-transfer receipts are uploaded files; keep them beside the demo's database.
MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "media/"
LOGIN_URL = "shop:login"
LOGIN_REDIRECT_URL = "shop:product-list"
LOGOUT_REDIRECT_URL = "shop:product-list"

# paydesk's REST API (paydesk.api, docs/api.md): OpenAPI by drf-spectacular, with Swagger UI
# and ReDoc served from drf-spectacular-sidecar's static files (no CDN).
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "paydesk API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Fraud screening (docs/fraud.md). Small shop baskets pass; a large amount is held for a
# staff review (amount_limit, score 50), a blocklisted email domain is refused (seed_demo adds
# one), a first purchase far above the usual basket from another country is held too
# (first_purchase 40 + country_mismatch 30). The seeded history's fraud checks
# (shop/history.py) are worded after these rules and limits.
DEMO_FRAUD: dict[str, Any] = {
    "RULES": [
        "blocklist",
        {
            "RULE": "amount_limit",
            "OPTIONS": {
                "limits": dict(
                    USD="1500", EUR="1500", GBP="1200", JPY="200000", KRW="2000000", TRY="50000"
                )
            },
        },
        "country_mismatch",
        {
            "RULE": "first_purchase",
            "OPTIONS": {
                "thresholds": dict(
                    USD="400", EUR="400", GBP="350", JPY="60000", KRW="550000", TRY="15000"
                )
            },
        },
    ],
}

PAYDESK = {
    "DEFAULT_PROVIDER": "sandbox",
    "PROVIDERS": {
        "sandbox": provider(
            "sandbox", "paydesk.providers.sandbox.SandboxProvider", "WEBHOOK_SECRET"
        ),
        # A second sandbox account, standing for a European acquirer: the seeded history
        # (shop/history.py) takes EUR, GBP and TRY cards through it, so a dashboard shows
        # two card providers that both work offline.
        "sandbox_eu": provider(
            "sandbox_eu", "paydesk.providers.sandbox.SandboxProvider", "WEBHOOK_SECRET"
        ),
        # Customers transfer money themselves; staff approve in the admin. The defaults are
        # demo details (a well-known example IBAN), not a real account.
        "bank_transfer": provider(
            "bank_transfer",
            "paydesk.providers.bank_transfer.BankTransferProvider",
            "ACCOUNT_HOLDER",
            "IBAN",
            "BIC",
            "BANK_NAME",
            "INSTRUCTIONS",
            "EXPIRY_HOURS",
            "FOUR_EYES",
            defaults={
                "ACCOUNT_HOLDER": "Paydesk Demo Shop Ltd",
                "IBAN": "DE89 3704 0044 0532 0130 00",
                "BIC": "COBADEFFXXX",
                "BANK_NAME": "Demo Bank",
                "INSTRUCTIONS": "Demo only: do not send real money.",
                "EXPIRY_HOURS": "72",
                "FOUR_EYES": "false",
            },
        ),
        # iyzico's sandbox (docs/providers/iyzico.md): set PAYDESK_IYZICO_API_KEY and
        # PAYDESK_IYZICO_SECRET_KEY. The checkout form sends the browser back to
        # PAYDESK_IYZICO_CALLBACK_BASE_URL (default: the local runserver address).
        "iyzico": provider(
            "iyzico",
            "paydesk.providers.iyzico.IyzicoProvider",
            "API_KEY",
            "SECRET_KEY",
            "MODE",
            "CF_INITIALIZE_PATH",
            "CALLBACK_BASE_URL",
            defaults={"MODE": "sandbox", "CALLBACK_BASE_URL": "http://127.0.0.1:8000"},
        ),
        # Stripe in test mode (docs/providers/stripe.md): set PAYDESK_STRIPE_SECRET_KEY,
        # PAYDESK_STRIPE_PUBLISHABLE_KEY and PAYDESK_STRIPE_WEBHOOK_SECRET. Without them the
        # demo still starts; `manage.py check` names what is missing (paydesk.W001, W002).
        "stripe": provider(
            "stripe",
            "paydesk.providers.stripe.StripeProvider",
            "SECRET_KEY",
            "PUBLISHABLE_KEY",
            "WEBHOOK_SECRET",
            "API_VERSION",
        ),
        # Later providers go here under their own alias.
    },
    "DEFAULT_CURRENCY": "USD",
    "PROCESSING_FEE_RATE": "3",  # percent, recorded on each payment
    "REFUND_POLICY": "bookings.policy.BookingRefundPolicy",
    # The demo only ever talks to the sandbox, also with DEMO_DEBUG=0; no real money moves.
    "SANDBOX_IN_PRODUCTION": True,
    "FRAUD": DEMO_FRAUD,
}

# PayPal in its sandbox (docs/providers/paypal.md): set PAYDESK_PAYPAL_CLIENT_ID,
# PAYDESK_PAYPAL_CLIENT_SECRET and PAYDESK_PAYPAL_WEBHOOK_ID (optionally PAYDESK_PAYPAL_MODE and
# PAYDESK_PAYPAL_PUBLIC_BASE_URL, the absolute address PayPal sends the buyer back to). Without
# them the demo still starts; `manage.py check` names what is missing (paydesk.W001, W002).
PAYDESK["PROVIDERS"]["paypal"] = provider(  # type: ignore[index]
    "paypal",
    "paydesk.providers.paypal.PayPalProvider",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "WEBHOOK_ID",
    "MODE",
    "PUBLIC_BASE_URL",
    defaults={"MODE": "sandbox", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"},
)

# NOWPayments' sandbox (docs/providers/nowpayments.md): set PAYDESK_NOWPAYMENTS_API_KEY and
# PAYDESK_NOWPAYMENTS_IPN_SECRET (from account-sandbox.nowpayments.io); optionally
# PAYDESK_NOWPAYMENTS_EMAIL/_PASSWORD (finding a payment whose create answer was lost) and
# PAYDESK_NOWPAYMENTS_PUBLIC_BASE_URL (an address NOWPayments can reach, for IPNs).
PAYDESK["PROVIDERS"]["nowpayments"] = provider(  # type: ignore[index]
    "nowpayments",
    "paydesk.providers.nowpayments.NowPaymentsProvider",
    "API_KEY",
    "IPN_SECRET",
    "MODE",
    "MODE_INVOICE",
    "PAY_CURRENCY",
    "EMAIL",
    "PASSWORD",
    "PUBLIC_BASE_URL",
    defaults={"MODE": "sandbox", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"},
)
# KICC EasyPay's test environment (docs/providers/easypay.md), Korean won only: set
# PAYDESK_EASYPAY_MALL_ID and PAYDESK_EASYPAY_SECRET_KEY (self-issued test MID and key).
PAYDESK["PROVIDERS"]["easypay"] = provider(  # type: ignore[index]
    "easypay",
    "paydesk.providers.easypay.EasyPayProvider",
    "MALL_ID",
    "SECRET_KEY",
    "MODE",
    "REVISE_TYPE_FULL",
    "REVISE_TYPE_PARTIAL",
    "PUBLIC_BASE_URL",
    defaults={"MODE": "test", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"},
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"paydesk": {"handlers": ["console"], "level": "INFO"}},
}
