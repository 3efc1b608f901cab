"""paydesk's REST API (Django REST framework), mounted at ``<prefix>/api/v1/``.

Entry points only: every write goes through :mod:`paydesk.services`. ``base.py`` holds the
view bases every endpoint uses (authentication, permissions, scopes, the one error body).
"""

from typing import Any

__all__ = ["payable_routes"]


def __getattr__(name: str) -> Any:
    # ``paydesk.api.payable_routes(Booking, ...)`` as documented, imported on first use so
    # that importing ``paydesk.api`` loads nothing of DRF before Django is ready.
    if name == "payable_routes":
        from .payable import payable_routes

        return payable_routes
    raise AttributeError(f"module 'paydesk.api' has no attribute {name!r}")
