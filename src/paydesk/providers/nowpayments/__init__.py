"""NOWPayments (crypto): invoices and direct payments priced in fiat, IPN webhooks, no refunds.

See ``docs/providers/nowpayments.md`` for settings, the flow and every choice made where
NOWPayments' documentation is silent.
"""

from .provider import NowPaymentsProvider
from .wire import NOTIFIER_IPS, STATUS_MAP

__all__ = ["NOTIFIER_IPS", "STATUS_MAP", "NowPaymentsProvider"]
