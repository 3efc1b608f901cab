"""iyzico (Turkey): Checkout Form payments, stored-card charges, cancel and refunds.

``PAYDESK["PROVIDERS"]["iyzico"] = {"BACKEND": "iyzico", "OPTIONS": {"API_KEY": ...,
"SECRET_KEY": ...}}``; see ``docs/providers/iyzico.md`` for every option. The adapter needs
no SDK: it speaks iyzico's HTTP API with ``httpx`` (``IYZWSv2`` request signatures, response
``signature`` checks, ``X-Iyz-Signature-V3`` webhooks).
"""

from .provider import (
    CF_INITIALIZE_PATHS,
    CHECKOUT_FORM_TOKEN,
    LIVE_BASE_URL,
    PAYMENT_EVENT_TYPES,
    SANDBOX_BASE_URL,
    SUPPORTED_CURRENCIES,
    IyzicoProvider,
)

__all__ = [
    "CF_INITIALIZE_PATHS",
    "CHECKOUT_FORM_TOKEN",
    "LIVE_BASE_URL",
    "PAYMENT_EVENT_TYPES",
    "SANDBOX_BASE_URL",
    "SUPPORTED_CURRENCIES",
    "IyzicoProvider",
]
