"""Run an operation once per key, across threads, processes and retries.

This module owns one decision: who gets to run an operation identified by a key, and what
everyone else gets instead. The first caller claims the key with ONE INSERT into
``IdempotencyRecord`` (its primary key is the scoped key), so the database's unique index
decides the race: never a check followed by a write. Later callers see the claim: if the
operation finished they get its stored (JSON) response; if it is still running they get
``PaymentInProgress`` (HTTP 409) and should retry later with the same key.

Keys are scoped (``"<scope>:<key>"``) so different operations never collide; keys longer
than the column (255) are replaced by ``"<scope>:sha256:<hex>"``. A record with an
``expires_at`` in the past is treated as absent and can be reclaimed; the expired row is
deleted and the new claim inserted in one transaction, so two reclaimers cannot both win.

A claim whose operation raised is released (deleted) so the operation can be retried. A
claim whose process died is never released by itself unless ``claim_ttl`` is set: choose a
``claim_ttl`` longer than the operation can take.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, router, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..exceptions import ConfigurationError, PaymentInProgress
from ..models.idempotency import IdempotencyRecord

__all__ = ["IdempotencyManager", "idempotent"]

P = ParamSpec("P")
R = TypeVar("R")

_KEY_MAX = 255
_SCOPE_MAX = 100
STARTED = "started"
DONE = "done"


def _seconds(value: int | float | timedelta | None, *, name: str) -> timedelta | None:
    if value is None:
        return None
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive, or None for no expiry; got {value!r}.")
    return delta


def to_json(value: Any) -> Any:
    """``value`` as it will be stored and handed to later callers (Decimal, datetime, UUID
    become strings); raises ``TypeError`` for values JSON cannot hold."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


class IdempotencyManager:
    """Claims, results and releases of idempotency keys in one scope.

    ``ttl``: how long a finished key is remembered (seconds or ``timedelta``; ``None``:
    forever). ``claim_ttl``: how long an unfinished claim blocks others before it is
    presumed abandoned (``None``: until released).
    """

    def __init__(
        self,
        scope: str = "default",
        ttl: int | float | timedelta | None = None,
        *,
        claim_ttl: int | float | timedelta | None = None,
    ) -> None:
        if not scope or len(scope) > _SCOPE_MAX or ":" in scope:
            raise ConfigurationError(
                f"Idempotency scope {scope!r} must be 1-{_SCOPE_MAX} characters without ':'."
            )
        self.scope = scope
        self.ttl = _seconds(ttl, name="ttl")
        self.claim_ttl = _seconds(claim_ttl, name="claim_ttl")

    @property
    def _db(self) -> str:
        return router.db_for_write(IdempotencyRecord)

    def scoped_key(self, key: str) -> str:
        """The primary key stored for ``key`` in this scope."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"An idempotency key must be a non-empty str, not {key!r}.")
        scoped = f"{self.scope}:{key}"
        if len(scoped) > _KEY_MAX:
            scoped = f"{self.scope}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
        return scoped

    def _live(self, now: datetime | None = None) -> QuerySet[IdempotencyRecord]:
        now = now or timezone.now()
        return IdempotencyRecord.objects.using(self._db).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def _expiry(self, delta: timedelta | None, now: datetime) -> datetime | None:
        return None if delta is None else now + delta

    def _insert(self, scoped: str, now: datetime) -> bool:
        try:
            with transaction.atomic(using=self._db):  # a savepoint inside an outer transaction
                IdempotencyRecord.objects.using(self._db).create(
                    key=scoped,
                    scope=self.scope,
                    status=STARTED,
                    expires_at=self._expiry(self.claim_ttl, now),
                )
        except IntegrityError:
            return False
        return True

    def start(self, key: str) -> bool:
        """Claim ``key``: ``True`` for exactly one caller until the claim is released or
        expires; ``False`` for everyone else."""
        scoped = self.scoped_key(key)
        now = timezone.now()
        for _ in range(3):
            if self._insert(scoped, now):
                return True
            # Taken, but perhaps expired. Lock the row, delete it if expired, and insert the
            # new claim in the same transaction: a concurrent reclaimer blocks on the row lock
            # and then finds the row gone and the new claim's key taken.
            with transaction.atomic(using=self._db):
                current = (
                    IdempotencyRecord.objects.using(self._db)
                    .select_for_update()
                    .filter(key=scoped)
                    .first()
                )
                if current is None:
                    continue  # released (or reclaimed and released) meanwhile: try again
                if current.expires_at is None or current.expires_at > now:
                    return False
                current.delete()
                return self._insert(scoped, now)
        return False

    def check(self, key: str) -> bool:
        """``True`` if ``key`` is claimed or done (and not expired)."""
        return self._live().filter(key=self.scoped_key(key)).exists()

    def record(self, key: str) -> IdempotencyRecord | None:
        """The live record for ``key``, or ``None``."""
        return self._live().filter(key=self.scoped_key(key)).first()

    def is_done(self, key: str) -> bool:
        return self._live().filter(key=self.scoped_key(key), status=DONE).exists()

    def get_response(self, key: str) -> Any:
        """The stored response of a finished ``key``; ``None`` if not finished (or none)."""
        record = self._live().filter(key=self.scoped_key(key), status=DONE).first()
        return None if record is None else record.response

    def mark_processed(self, key: str, response: Any = None) -> None:
        """Record ``key`` as done with ``response`` (JSON-serializable), claimed or not."""
        stored = to_json(response)
        now = timezone.now()
        IdempotencyRecord.objects.using(self._db).update_or_create(
            key=self.scoped_key(key),
            defaults={
                "scope": self.scope,
                "status": DONE,
                "response": stored,
                "expires_at": self._expiry(self.ttl, now),
            },
        )

    def release(self, key: str) -> bool:
        """Give up an unfinished claim so the operation can be tried again. A finished key
        is never released. Returns whether a claim was removed."""
        deleted, _ = (
            IdempotencyRecord.objects.using(self._db)
            .filter(key=self.scoped_key(key), status=STARTED)
            .delete()
        )
        return deleted > 0


def idempotent(
    key_fn: Callable[..., str],
    *,
    scope: str = "default",
    manager: IdempotencyManager | None = None,
    ttl: int | float | timedelta | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R | Any]]:
    """Run the decorated function once per ``key_fn(*args, **kwargs)``.

    The first caller runs it and gets its return value; the value is stored as JSON
    (Decimal, datetime and UUID as strings), and every later caller with the same key gets
    that stored value without running the function. A caller arriving while the first is
    still running gets ``PaymentInProgress``. If the function raises, the claim is released
    and the exception propagates, so a later call runs it again.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R | Any]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
            mgr = manager or IdempotencyManager(scope=scope, ttl=ttl)
            key = key_fn(*args, **kwargs)
            # Two rounds: the claim we lost may be released (its run failed) before we read it.
            for _ in range(2):
                if mgr.start(key):
                    return _run_claimed(mgr, key, func, args, kwargs)
                record = mgr.record(key)
                if record is None:
                    continue
                if record.status == DONE:
                    return record.response
                break
            raise PaymentInProgress(
                f"The operation for idempotency key {key!r} is already in progress; retry "
                "later with the same key to get its result."
            )

        return wrapper

    return decorate


def _run_claimed(
    mgr: IdempotencyManager,
    key: str,
    func: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    try:
        result = func(*args, **kwargs)
    except BaseException:
        connection = transaction.get_connection(mgr._db)
        # In a transaction the failure broke, the claim is rolled back with it; otherwise
        # delete it so a retry can run.
        if not connection.needs_rollback:
            mgr.release(key)
        raise
    try:
        stored = to_json(result)
    except TypeError as exc:
        # The work is done and must not run again: remember the key without a response.
        mgr.mark_processed(key, None)
        raise TypeError(
            f"{getattr(func, '__qualname__', func)!r} ran for idempotency key {key!r} but "
            f"returned a {type(result).__name__}, which cannot be stored as JSON; the key is "
            "marked done with no response. Return JSON-serializable values."
        ) from exc
    mgr.mark_processed(key, stored)
    return result
