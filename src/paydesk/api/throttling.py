"""Throttling of the API's write endpoints: ``PAYDESK["API"]["WRITE_THROTTLE_RATE"]``.

A DRF ``SimpleRateThrottle`` (scope ``paydesk_write``) that counts only unsafe methods
(POST, PATCH, PUT, DELETE), per principal (API key, else user, else client address), in
Django's default cache. The rate is read from paydesk's settings on each request, in DRF's
notation (``"60/min"``); ``None`` turns it off. Reads are left to the project's own
``DEFAULT_THROTTLE_CLASSES``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from ..conf import paydesk_settings
from .authentication import api_key_from_request

__all__ = ["WriteRateThrottle", "principal_of"]


def principal_of(request: Request | Any) -> str | None:
    """A stable name for who is calling: ``key:<id>`` or ``user:<id>``; None if anonymous."""
    key = api_key_from_request(request)
    if key is not None:
        return f"key:{key.pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return None


class WriteRateThrottle(SimpleRateThrottle):
    scope = "paydesk_write"

    def __init__(self) -> None:
        # SimpleRateThrottle reads THROTTLE_RATES in __init__; paydesk's setting decides.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        rate = paydesk_settings.API.get("WRITE_THROTTLE_RATE")
        return str(rate) if rate else None

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        ident = principal_of(request) or f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
