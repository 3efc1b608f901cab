"""``Idempotency-Key`` for API POSTs, with Stripe's semantics, stored in ``APIIdempotencyKey``.

This module owns one decision: what a POST carrying an ``Idempotency-Key`` header gets when
the key was seen before. Keys are scoped per authenticated principal (an API key, else a
user), so two clients never share a key.

* First use: the key is claimed with ONE INSERT (the unique constraint on
  ``(principal, key)`` decides any race), committed before the view runs; the view's
  response is then stored with the claim.
* Same key, same request (method, path and canonical JSON body hash the same): the stored
  status and body are replayed with the header ``Idempotent-Replayed: true``; nothing runs.
* Same key, different request: 422 ``idempotency_key_reused``.
* Same key while the first request is still running: 409 ``idempotency_in_progress``;
  retry later with the same key.
* Responses stored: 2xx and 4xx, except 409 and 429 (conflicts and throttling are
  transient). A 5xx, or an exception, is **not** stored: the claim is released so a retry
  with the same key runs again (services use their own idempotency keys with providers, so
  a retry cannot charge twice).
* Keys expire ``PAYDESK["API"]["IDEMPOTENCY_TTL_HOURS"]`` (24) after first use; an
  expired key is claimed afresh. A claim whose process died is presumed abandoned after
  ``["IDEMPOTENCY_LOCK_SECONDS"]`` (300). ``purge_expired()`` deletes old rows (run it
  from a periodic task if the table grows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import paydesk_settings
from ..models import APIIdempotencyKey
from .exceptions import APIError, IdempotencyInProgress, IdempotencyKeyReused

__all__ = [
    "HEADER",
    "REPLAYED_HEADER",
    "purge_expired",
    "request_fingerprint",
    "run_idempotently",
]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
_NOT_STORED = frozenset({409, 429})


def _ttl() -> dt.timedelta:
    return dt.timedelta(hours=float(paydesk_settings.API["IDEMPOTENCY_TTL_HOURS"]))


def _lock_timeout() -> dt.timedelta:
    return dt.timedelta(seconds=float(paydesk_settings.API["IDEMPOTENCY_LOCK_SECONDS"]))


def _plain(data: Any) -> Any:
    if isinstance(data, QueryDict):
        return {key: data.getlist(key) for key in data}
    return data


def request_fingerprint(request: Request) -> str:
    """SHA-256 of the method, the full path and the canonical JSON of the parsed body."""
    body = json.dumps(
        _plain(request.data), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder
    )
    canonical = json.dumps([request.method, request.get_full_path(), body])
    return hashlib.sha256(canonical.encode()).hexdigest()


def header_key(request: Request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise APIError(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID.",
            code="invalid_idempotency_key",
            status_code=400,
            param=HEADER,
        )
    return key


def _claim(principal: str, key: str, request: Request, fingerprint: str) -> APIIdempotencyKey:
    """Insert the in-flight claim, or raise/replay according to the stored one."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return APIIdempotencyKey.objects.create(
                    principal=principal,
                    key=key,
                    method=request.method or "POST",
                    path=request.get_full_path()[:500],
                    request_hash=fingerprint,
                )
        except IntegrityError:
            pass
        now = timezone.now()
        with transaction.atomic():
            existing = (
                APIIdempotencyKey.objects.select_for_update()
                .filter(principal=principal, key=key)
                .first()
            )
            if existing is None:
                continue  # released meanwhile: claim again
            abandoned = existing.response_status is None and (
                existing.created_at <= now - _lock_timeout()
            )
            if existing.created_at <= now - _ttl() or abandoned:
                existing.delete()
                continue
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused(
                    f"This {HEADER} was already used for a different request "
                    f"({existing.method} {existing.path}); use a new key for a new request.",
                    param=HEADER,
                )
            if existing.response_status is None:
                raise IdempotencyInProgress(
                    f"A request with this {HEADER} is still being processed; retry later "
                    "with the same key to get its response.",
                    param=HEADER,
                )
            raise _Replay(existing)
    raise IdempotencyInProgress(  # pragma: no cover - three lost races in a row
        f"A request with this {HEADER} is being processed; retry later.", param=HEADER
    )


class _Replay(Exception):
    def __init__(self, stored: APIIdempotencyKey) -> None:
        self.stored = stored


def run_idempotently(
    request: Request,
    *,
    principal: str,
    key: str,
    run: Callable[[], Response],
) -> Response:
    """Run ``run`` once per ``(principal, key)``; see the module docstring."""
    fingerprint = request_fingerprint(request)
    try:
        claim = _claim(principal, key, request, fingerprint)
    except _Replay as replay:
        stored = replay.stored
        response = Response(stored.response_body, status=stored.response_status)
        response[REPLAYED_HEADER] = "true"
        return response
    try:
        response = run()
    except BaseException:
        APIIdempotencyKey.objects.filter(pk=claim.pk).delete()
        raise
    status = response.status_code
    if status >= 500 or status in _NOT_STORED:
        APIIdempotencyKey.objects.filter(pk=claim.pk).delete()
        return response
    body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
    APIIdempotencyKey.objects.filter(pk=claim.pk).update(response_status=status, response_body=body)
    return response


def purge_expired(*, now: dt.datetime | None = None) -> int:
    """Delete stored keys older than the TTL; returns how many."""
    now = now or timezone.now()
    deleted, _ = APIIdempotencyKey.objects.filter(created_at__lte=now - _ttl()).delete()
    return deleted
