"""PayPal Checkout (Orders v2 / Payments v2) for paydesk.

Configure it like any provider::

    PAYDESK = {
        "PROVIDERS": {
            "paypal": {
                "BACKEND": "paydesk.providers.paypal.PayPalProvider",
                "OPTIONS": {
                    "CLIENT_ID": env("PAYDESK_PAYPAL_CLIENT_ID"),
                    "CLIENT_SECRET": env("PAYDESK_PAYPAL_CLIENT_SECRET"),
                    "WEBHOOK_ID": env("PAYDESK_PAYPAL_WEBHOOK_ID"),
                    "MODE": "sandbox",  # or "live"
                },
            },
        },
    }

See ``docs/providers/paypal.md`` for every option, the webhook events to subscribe to, the
approval redirect and going live. The adapter lives in ``.provider``, PayPal's JSON in
``.wire`` and the webhook verification and mapping in ``.webhooks``.
"""

from .provider import PayPalProvider

__all__ = ["PayPalProvider"]
