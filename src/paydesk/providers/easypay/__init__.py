"""KICC EasyPay (Korea): KICC's payment window, approval, full and partial cancels, KRW only.

See ``docs/providers/easypay.md`` for settings, the flow, the signals receivers written for
the django-easypay guide rely on, and every choice made where KICC's documentation was not
seen.
"""

from .provider import EasyPayProvider
from .wire import msg_auth_value

__all__ = ["EasyPayProvider", "msg_auth_value"]
