"""Creating and checking API keys: ``pdk_<prefix>_<secret>``, stored as a SHA-256 hash.

This module owns one decision: the shape of an API key and how its secret is stored. The
prefix (8 hex characters) is visible and identifies the key; only ``sha256(secret)`` is
kept, so a leaked database does not leak usable keys. The full key exists once, in the
return value of :func:`create_api_key`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..exceptions import PaymentValidationError
from ..models import APIKey, APIKeyScope

__all__ = [
    "KEY_PREFIX",
    "create_api_key",
    "effective_scopes",
    "hash_secret",
    "parse_api_key",
    "revoke_api_key",
    "secrets_match",
]

KEY_PREFIX = "pdk"
PREFIX_BYTES = 4  # 8 hex characters
SECRET_BYTES = 32

#: A scope grants the scopes it implies: a key that may write may also read.
IMPLIED_SCOPES: dict[str, frozenset[str]] = {
    APIKeyScope.READ: frozenset({APIKeyScope.READ}),
    APIKeyScope.WRITE: frozenset({APIKeyScope.WRITE, APIKeyScope.READ}),
    APIKeyScope.REFUND: frozenset({APIKeyScope.REFUND, APIKeyScope.READ}),
}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(stored_hash: str, secret: str) -> bool:
    """Constant-time comparison of a stored hash with a presented secret."""
    return hmac.compare_digest(stored_hash.encode(), hash_secret(secret).encode())


def parse_api_key(raw: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of ``pdk_<prefix>_<secret>``, or None when it is not that shape."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    prefix, secret = parts[1], parts[2]
    if len(prefix) > 16 or len(secret) > 200:
        return None
    return prefix, secret


def effective_scopes(scopes: Iterable[Any]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes or ():
        granted |= IMPLIED_SCOPES.get(str(scope), frozenset())
    return frozenset(granted)


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = []
    for scope in scopes:
        if scope not in APIKeyScope.values:
            raise PaymentValidationError(
                f"Unknown API key scope {scope!r}; use any of: {', '.join(APIKeyScope.values)}.",
                field="scopes",
            )
        if scope not in cleaned:
            cleaned.append(scope)
    if not cleaned:
        raise PaymentValidationError("An API key needs at least one scope.", field="scopes")
    return cleaned


def create_api_key(
    *,
    owner: Any,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
) -> tuple[APIKey, str]:
    """Create a key acting as ``owner`` with ``scopes``; return it and the full key, once."""
    cleaned = _clean_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise PaymentValidationError("expires_at must be in the future.", field="expires_at")
    for _attempt in range(5):
        prefix = secrets.token_hex(PREFIX_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        try:
            with transaction.atomic():
                key = APIKey.objects.create(
                    owner=owner,
                    name=name,
                    scopes=cleaned,
                    expires_at=expires_at,
                    prefix=prefix,
                    hashed_key=hash_secret(secret),
                )
        except IntegrityError:  # a prefix collision: 1 in 4 billion; draw again
            continue
        return key, f"{KEY_PREFIX}_{prefix}_{secret}"
    raise RuntimeError("Could not draw a unique API key prefix.")  # pragma: no cover


def revoke_api_key(key: APIKey) -> bool:
    """Revoke ``key`` now; False when it was already revoked."""
    updated = APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    key.refresh_from_db(fields=["revoked_at"])
    return bool(updated)
