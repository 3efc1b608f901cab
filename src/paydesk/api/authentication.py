"""``APIKeyAuthentication``: server-to-server calls with ``pdk_<prefix>_<secret>`` keys.

This module owns one decision: how an API key in a request becomes a user. The key is read
from ``Authorization: Api-Key <key>`` or ``X-Api-Key: <key>``, looked up by its visible
prefix, and its secret compared in constant time with the stored SHA-256. A revoked or
expired key, or one whose owner is inactive, is refused with a 401 that says which. The
request then acts as the key's owner (``request.user``) and ``request.auth`` is the
:class:`~paydesk.models.APIKey`, whose scopes limit what it may do (``permissions.py``).
``last_used_at`` is written at most once a minute per key, with one UPDATE.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from ..models import APIKey
from .keys import hash_secret, parse_api_key, secrets_match

__all__ = ["APIKeyAuthentication", "api_key_from_request"]

KEYWORD = "Api-Key"
HEADER = "HTTP_X_API_KEY"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
# Compared against when no key has the prefix, so a miss costs what a hit costs.
_DUMMY_HASH = hash_secret("paydesk-no-such-key")


def api_key_from_request(request: Request | Any) -> APIKey | None:
    """The API key a request authenticated with, or None (session, token, JWT...)."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, APIKey) else None


class APIKeyAuthentication(BaseAuthentication):
    keyword = KEYWORD

    def _raw_key(self, request: Request) -> str | None:
        header = get_authorization_header(request).split()
        if header and header[0].lower() == self.keyword.lower().encode():
            if len(header) != 2:
                raise exceptions.AuthenticationFailed(
                    "Send the key as 'Authorization: Api-Key pdk_<prefix>_<secret>'.",
                    code="invalid_api_key",
                )
            try:
                return header[1].decode("ascii")
            except UnicodeDecodeError:
                raise exceptions.AuthenticationFailed(
                    "The API key is not valid.", code="invalid_api_key"
                ) from None
        value = request.META.get(HEADER)
        return value.strip() if value else None

    def authenticate(self, request: Request) -> tuple[Any, APIKey] | None:
        raw = self._raw_key(request)
        if raw is None:
            return None
        parsed = parse_api_key(raw)
        if parsed is None:
            raise exceptions.AuthenticationFailed(
                "The API key is not valid: it should look like pdk_<prefix>_<secret>.",
                code="invalid_api_key",
            )
        prefix, secret = parsed
        key = APIKey.objects.select_related("owner").filter(prefix=prefix).first()
        if not secrets_match(key.hashed_key if key else _DUMMY_HASH, secret) or key is None:
            raise exceptions.AuthenticationFailed(
                "The API key is not valid.", code="invalid_api_key"
            )
        now = timezone.now()
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                "This API key was revoked; create a new one.", code="api_key_revoked"
            )
        if key.expires_at is not None and key.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                "This API key has expired; create a new one.", code="api_key_expired"
            )
        if not key.owner.is_active:
            raise exceptions.AuthenticationFailed(
                "The API key's owner is inactive.", code="api_key_owner_inactive"
            )
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return key.owner, key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
