"""Decorators for a host project's payment code: transactions, logs, timing, audit, caching.

This module owns one decision: what each of these cross-cutting wrappers may wrap. Every
decorator keeps the wrapped function's name, docstring and signature (``functools.wraps``:
``inspect.signature`` of the wrapper equals the function's), works bare or called
(``@measure_payment_time`` and ``@measure_payment_time(slow_ms=500)``), and wraps a
coroutine function in a coroutine function.

==============================  ==============================================================
``atomic_payment_operation``    ``transaction.atomic`` around the function. For database-only
                                work: never around a call that reaches a provider (the
                                services hold no lock across the network, and an outer
                                ``atomic`` would make them). It refuses a function marked
                                ``money_moving`` and paydesk's own provider-calling services.
``log_payment_operation``       a record when the function starts and when it ends (with its
                                duration and outcome), on a ``paydesk.*`` logger, redacted.
``measure_payment_time``        the duration, logged; for a provider method (or with
                                ``provider=``) also a ``provider_call`` record and, when
                                ``paydesk.metrics`` is there, its provider-call histogram.
``with_audit_log(action)``      one ``AuditLog`` entry per call, ``success`` true or false.
``cache_provider_result(ttl)``  caches a *read-only* call's result in Django's cache. Refuses,
                                when applied, anything that moves money (see
                                :func:`is_money_moving`).
==============================  ==============================================================

Order matters when stacking: put ``with_audit_log`` outside ``atomic_payment_operation`` so a
failure's entry is written after the rollback rather than rolled back with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar, overload

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.core.cache import caches
from django.db import models, transaction

from .exceptions import PaydeskError
from .logging import get_logger, redact

__all__ = [
    "MONEY_MOVING_VERBS",
    "PROVIDER_CALLING_FUNCTIONS",
    "atomic_payment_operation",
    "cache_provider_result",
    "is_money_moving",
    "log_payment_operation",
    "measure_payment_time",
    "money_moving",
    "with_audit_log",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

#: A function whose name is one of these verbs, or starts with one followed by ``_``
#: (``capture_payment``, ``refund``, ``create_refund``...), is taken to move money.
MONEY_MOVING_VERBS = frozenset(
    {
        "create",
        "process",
        "confirm",
        "capture",
        "refund",
        "cancel",
        "void",
        "charge",
        "authorize",
        "retry",
        "pay",
        "payout",
        "transfer",
        "attach",
        "detach",
        "approve",
        "reject",
    }
)


def money_moving(func: F) -> F:
    """Mark ``func`` as moving money: ``cache_provider_result`` and
    ``atomic_payment_operation`` refuse it. (Set ``func.money_moving = False`` on a
    read-only function whose name looks like a verb that moves money.)"""
    func.money_moving = True  # type: ignore[attr-defined]
    return func


def _base_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", "") or ""
    name = name.lstrip("_").lower()
    return name.removesuffix("_async")


def is_money_moving(func: Callable[..., Any]) -> bool:
    """``func.money_moving`` if set, else whether its name starts with a money-moving verb."""
    marked = getattr(func, "money_moving", None)
    if marked is not None:
        return bool(marked)
    name = _base_name(func)
    return any(name == verb or name.startswith(verb + "_") for verb in MONEY_MOVING_VERBS)


def _name(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))


def _bound(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {}
    bound.apply_defaults()
    return dict(bound.arguments)


def _subject(arguments: dict[str, Any]) -> dict[str, Any]:
    """Identifiers of what a call is about, for log records (never amounts or secrets)."""
    fields: dict[str, Any] = {}
    for name in ("payment", "refund"):
        value = arguments.get(name)
        if value is not None:
            fields[f"{name}_id"] = str(getattr(value, "pk", value))
    provider = arguments.get("provider")
    if isinstance(provider, str):
        fields["provider"] = provider
    owner = arguments.get("self")
    alias = getattr(owner, "alias", None)
    if isinstance(alias, str) and "provider" not in fields:
        fields["provider"] = alias
    return fields


# -- atomic_payment_operation ---------------------------------------------------------------


#: paydesk's own functions that call a provider (services and their async twins, the
#: retry recipes). ``create_payment`` and ``reserve_refund`` are database-only: not here.
PROVIDER_CALLING_FUNCTIONS = frozenset(
    {
        "process_payment",
        "confirm_payment",
        "capture_payment",
        "cancel_payment",
        "retry_payment",
        "sync_payment",
        "create_refund",
        "process_refund",
        "add_payment_method",
        "deactivate_payment_method",
        "aprocess_payment",
        "aconfirm_payment",
        "acapture_payment",
        "acancel_payment",
        "aretry_payment",
        "async_sync_payment",
        "acreate_refund",
        "aprocess_refund",
        "settle_payment",
        "process_payment_with_retry",
    }
)


def _calls_a_provider(func: Callable[..., Any]) -> bool:
    if getattr(func, "money_moving", None):
        return True
    module = getattr(func, "__module__", "") or ""
    paydesk_own = module.startswith(("paydesk.services", "paydesk.retry"))
    return paydesk_own and getattr(func, "__name__", "") in PROVIDER_CALLING_FUNCTIONS


@overload
def atomic_payment_operation(func: F, /) -> F: ...


@overload
def atomic_payment_operation(
    *, using: str | None = None, savepoint: bool = True, durable: bool = False
) -> Callable[[F], F]: ...


def atomic_payment_operation(
    func: Callable[..., Any] | None = None,
    /,
    *,
    using: str | None = None,
    savepoint: bool = True,
    durable: bool = False,
) -> Any:
    """Run the function in ``transaction.atomic(using, savepoint, durable)``.

    Use it for database-only operations (several writes that must land together). Never wrap
    a call that reaches a provider: the services take and release their own row locks around
    provider calls, and an outer transaction would hold those locks across the network (and
    roll back the record of a charge that did happen). It refuses functions marked
    :func:`money_moving` and paydesk's provider-calling services. A coroutine function runs
    in one database thread so its async ORM calls share the transaction.
    """

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        if _calls_a_provider(target):
            raise TypeError(
                f"atomic_payment_operation cannot wrap {_name(target)}: it calls a payment "
                "provider, and a transaction around it would hold row locks across the "
                "network. paydesk's services manage their own transactions; wrap only "
                "database work."
            )
        if iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                def run() -> Any:
                    with transaction.atomic(using=using, savepoint=savepoint, durable=durable):
                        # Back on the event loop; its sync_to_async ORM calls come back to
                        # this thread (asgiref), inside this transaction.
                        return async_to_sync(target)(*args, **kwargs)

                return await sync_to_async(run)()

            return async_wrapper

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with transaction.atomic(using=using, savepoint=savepoint, durable=durable):
                return target(*args, **kwargs)

        return wrapper

    return decorate(func) if func is not None else decorate


# -- log_payment_operation ------------------------------------------------------------------


def _outcome(result: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    status = getattr(result, "status", None)
    if status is not None:
        fields["status"] = str(status)
    if isinstance(result, models.Model):
        fields["result_id"] = str(result.pk)
    return fields


@overload
def log_payment_operation(func: F, /) -> F: ...


@overload
def log_payment_operation(
    *,
    log_start: bool = True,
    log_end: bool = True,
    logger: str = "paydesk.operations",
    level: int = logging.INFO,
) -> Callable[[F], F]: ...


def log_payment_operation(
    func: Callable[..., Any] | None = None,
    /,
    *,
    log_start: bool = True,
    log_end: bool = True,
    logger: str = "paydesk.operations",
    level: int = logging.INFO,
) -> Any:
    """Log the start and the end of each call on ``logger`` (records redacted as usual).

    The records carry ``extra["paydesk"]``: ``event`` (``operation.started`` /
    ``operation.finished`` / ``operation.failed``), ``operation`` (the qualified name), the
    ids of a ``payment``/``refund`` argument and the provider alias, and at the end
    ``duration_ms`` and the result's ``status``. A paydesk error (a decline, a state error)
    is logged as a warning; any other exception as an error with its (redacted) traceback.
    The exception is re-raised.
    """

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        name = _name(target)
        log = get_logger(logger)

        def started(arguments: dict[str, Any]) -> dict[str, Any]:
            fields = {"operation": name, **_subject(arguments)}
            if log_start:
                log.log(
                    level,
                    "%s started",
                    name,
                    extra={"paydesk": {"event": "operation.started", **fields}},
                    stacklevel=3,
                )
            return fields

        def finished(fields: dict[str, Any], began: float, result: Any) -> None:
            if log_end:
                ms = (time.perf_counter() - began) * 1000
                log.log(
                    level,
                    "%s finished in %.1f ms",
                    name,
                    ms,
                    extra={
                        "paydesk": {
                            "event": "operation.finished",
                            **fields,
                            "duration_ms": round(ms, 1),
                            **_outcome(result),
                        }
                    },
                    stacklevel=3,
                )

        def failed(fields: dict[str, Any], began: float, exc: BaseException) -> None:
            ms = (time.perf_counter() - began) * 1000
            expected = isinstance(exc, PaydeskError)
            log.log(
                logging.WARNING if expected else logging.ERROR,
                "%s failed after %.1f ms: %s: %s",
                name,
                ms,
                type(exc).__name__,
                exc,
                exc_info=None if expected else exc,
                extra={
                    "paydesk": {
                        "event": "operation.failed",
                        **fields,
                        "duration_ms": round(ms, 1),
                        "error_code": getattr(exc, "code", type(exc).__name__),
                    }
                },
                stacklevel=3,
            )

        if iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                fields = started(_bound(target, args, kwargs))
                began = time.perf_counter()
                try:
                    result = await target(*args, **kwargs)
                except Exception as exc:
                    failed(fields, began, exc)
                    raise
                finished(fields, began, result)
                return result

            return async_wrapper

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fields = started(_bound(target, args, kwargs))
            began = time.perf_counter()
            try:
                result = target(*args, **kwargs)
            except Exception as exc:
                failed(fields, began, exc)
                raise
            finished(fields, began, result)
            return result

        return wrapper

    return decorate(func) if func is not None else decorate


# -- measure_payment_time -------------------------------------------------------------------


def _provider_of(arguments: dict[str, Any], provider: str | None) -> str | None:
    if provider:
        return provider
    from .providers.base import PaymentProvider

    owner = arguments.get("self")
    return owner.alias if isinstance(owner, PaymentProvider) else None


@contextlib.contextmanager
def _metrics(provider: str | None, operation: str) -> Iterator[None]:
    """``paydesk.metrics.observe_provider_call`` when there is one, else nothing."""
    observe = None
    if provider:
        try:
            from . import metrics
        except ImportError:  # pragma: no cover - metrics is part of paydesk; be tolerant
            metrics = None  # type: ignore[assignment]
        observe = getattr(metrics, "observe_provider_call", None)
    if observe is None:
        yield
        return
    with observe(provider, operation):
        yield


@overload
def measure_payment_time(func: F, /) -> F: ...


@overload
def measure_payment_time(
    *,
    name: str | None = None,
    provider: str | None = None,
    slow_ms: float | None = None,
    logger: str = "paydesk.timing",
) -> Callable[[F], F]: ...


def measure_payment_time(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    provider: str | None = None,
    slow_ms: float | None = None,
    logger: str = "paydesk.timing",
) -> Any:
    """Measure each call's wall-clock duration.

    Logged at DEBUG (WARNING above ``slow_ms``) on ``logger`` with ``extra["paydesk"]
    ["duration_ms"]``. When the call is a provider call (a method of a ``PaymentProvider``,
    or ``provider=`` given), it is logged as :meth:`PaymentLogger.provider_call` and observed
    by ``paydesk.metrics.observe_provider_call`` (the provider-call latency histogram and
    error counter; a no-op without ``prometheus_client``). ``name`` defaults to the
    function's name (the ``operation`` label: keep it a small, fixed vocabulary).
    """

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        operation: str = name or str(getattr(target, "__name__", "call"))
        log = get_logger(logger)

        def report(alias: str | None, began: float, ok: bool) -> None:
            ms = (time.perf_counter() - began) * 1000
            if alias:
                log.provider_call(alias, operation, ms, ok)
                return
            slow = slow_ms is not None and ms > slow_ms
            log.log(
                logging.WARNING if slow else logging.DEBUG,
                "%s took %.1f ms%s",
                operation,
                ms,
                " (slow)" if slow else "",
                extra={
                    "paydesk": {
                        "event": "timing",
                        "operation": operation,
                        "duration_ms": round(ms, 1),
                        "ok": ok,
                    }
                },
                stacklevel=3,
            )

        if iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                alias = _provider_of(_bound(target, args, kwargs), provider)
                began = time.perf_counter()
                ok = False
                try:
                    with _metrics(alias, operation):
                        result = await target(*args, **kwargs)
                    ok = True
                    return result
                finally:
                    report(alias, began, ok)

            return async_wrapper

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            alias = _provider_of(_bound(target, args, kwargs), provider)
            began = time.perf_counter()
            ok = False
            try:
                with _metrics(alias, operation):
                    result = target(*args, **kwargs)
                ok = True
                return result
            finally:
                report(alias, began, ok)

        return wrapper

    return decorate(func) if func is not None else decorate


# -- with_audit_log -------------------------------------------------------------------------


def _audit_entry(
    action: str,
    arguments: dict[str, Any],
    *,
    result: Any = None,
    error: BaseException | None = None,
    operation: str,
) -> dict[str, Any]:
    from .security.audit import audit_request_ip

    request = arguments.get("request")
    actor = arguments.get("actor")
    if actor is None:
        actor = arguments.get("user")
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    obj = result if isinstance(result, models.Model) else None
    object_type = object_id = ""
    if obj is None:
        for key in ("payment", "refund", "obj", "instance"):
            value = arguments.get(key)
            if isinstance(value, models.Model):
                obj = value
                break
            if isinstance(value, str) and key in ("payment", "refund") and value:
                object_type, object_id = key, value
                break
    details: dict[str, Any] = {"operation": operation}
    if error is not None:
        details["error"] = type(error).__name__
        details["code"] = str(getattr(error, "code", "") or "")
        details["message"] = redact(str(error))[:500]
    provider = getattr(obj, "provider", "")
    return {
        "action": action,
        "obj": obj,
        "object_type": object_type,
        "object_id": object_id,
        "actor": actor,
        "provider": provider if isinstance(provider, str) else "",
        "success": error is None,
        "amount": getattr(obj, "amount", None),
        "currency": str(getattr(obj, "currency", "") or ""),
        "ip_address": audit_request_ip(request) if request is not None else None,
        "details": details,
    }


def with_audit_log(action: str) -> Callable[[F], F]:
    """Write one audit entry (``paydesk.security.audit.AuditLogger``) per call.

    The entry names ``action``; the object is the result when it is a model instance (a
    ``Payment``, a ``Refund``), else the ``payment`` / ``refund`` / ``obj`` argument; the
    actor is the ``actor`` or ``user`` argument, or ``request.user`` (and the client IP is
    taken from ``request``). A call that raises is recorded with ``success=False`` and the
    error's type, code and (redacted) message, and the error is re-raised. Like every
    audit write, a failure to record raises: an audit log that drops entries is worse than
    none. The entry is written in the caller's transaction.
    """
    if not isinstance(action, str) or not 0 < len(action) <= 50:
        raise ValueError(f"Audit action {action!r} must be a string of 1-50 characters.")

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        operation = _name(target)

        def record(arguments: dict[str, Any], result: Any, error: BaseException | None) -> None:
            from .security.audit import AuditLogger

            AuditLogger().log(
                **_audit_entry(action, arguments, result=result, error=error, operation=operation)
            )

        if iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                arguments = _bound(target, args, kwargs)
                try:
                    result = await target(*args, **kwargs)
                except Exception as exc:
                    await sync_to_async(record)(arguments, None, exc)
                    raise
                await sync_to_async(record)(arguments, result, None)
                return result

            return async_wrapper

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            arguments = _bound(target, args, kwargs)
            try:
                result = target(*args, **kwargs)
            except Exception as exc:
                record(arguments, None, exc)
                raise
            record(arguments, result, None)
            return result

        return wrapper

    return decorate  # type: ignore[return-value]


# -- cache_provider_result ------------------------------------------------------------------

_MISSING = object()


def _key_part(value: Any) -> str:
    from .providers.base import PaymentProvider

    if isinstance(value, PaymentProvider):
        return f"<provider {value.alias}>"
    if isinstance(value, models.Model):
        return f"<{value._meta.label} {value.pk}>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return repr(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: repr(item[0]))
        return "{" + ",".join(f"{k!r}:{_key_part(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_key_part(v) for v in value) + "]"
    return repr(value)


@overload
def cache_provider_result(ttl: F, /) -> F: ...


@overload
def cache_provider_result(
    ttl: int = 60, *, cache_alias: str = "default", key_prefix: str = "paydesk:result"
) -> Callable[[F], F]: ...


def cache_provider_result(
    ttl: Any = 60, *, cache_alias: str = "default", key_prefix: str = "paydesk:result"
) -> Any:
    """Cache a read-only call's result in Django's cache (``cache_alias``) for ``ttl`` seconds.

    Only for calls that change nothing (a status, a list of methods, exchange rates): it
    refuses, when applied, a function marked :func:`money_moving` or named like one
    (``create_payment``, ``process_payment``, ``capture_*``, ``refund_*``, ``cancel_*``...;
    see :data:`MONEY_MOVING_VERBS`), because a cached charge would report a payment that
    never happened. The key is the function's module and qualified name plus its arguments
    (bound to its signature, so ``f(1)`` and ``f(x=1)`` share it; a provider is keyed by its
    alias, a model instance by its pk). Exceptions are not cached. The wrapper gets
    ``cache_key(*args, **kwargs)`` and ``invalidate(*args, **kwargs)``. Results must be
    picklable.
    """
    if callable(ttl):
        return cache_provider_result()(ttl)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}.")

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        if is_money_moving(target):
            raise TypeError(
                f"cache_provider_result refuses {_name(target)}: it moves money (by its name "
                "or its money_moving mark), and a cached answer would report a charge, "
                "capture or refund that never happened. Cache only read-only calls; set "
                "money_moving = False on a read-only function misjudged by its name."
            )
        signature = inspect.signature(target)
        prefix = f"{key_prefix}:{target.__module__}.{_name(target)}"

        def cache_key(*args: Any, **kwargs: Any) -> str:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            text = ";".join(f"{k}={_key_part(v)}" for k, v in bound.arguments.items())
            return f"{prefix}:{hashlib.sha256(text.encode()).hexdigest()}"

        def invalidate(*args: Any, **kwargs: Any) -> None:
            caches[cache_alias].delete(cache_key(*args, **kwargs))

        wrapper: Callable[..., Any]
        if iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                key = cache_key(*args, **kwargs)
                cache = caches[cache_alias]
                cached = await cache.aget(key, _MISSING)
                if cached is not _MISSING:
                    return cached
                result = await target(*args, **kwargs)
                await cache.aset(key, result, ttl)
                return result

            wrapper = async_wrapper
        else:

            @functools.wraps(target)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                key = cache_key(*args, **kwargs)
                cache = caches[cache_alias]
                cached = cache.get(key, _MISSING)
                if cached is not _MISSING:
                    return cached
                result = target(*args, **kwargs)
                cache.set(key, result, ttl)
                return result

            wrapper = sync_wrapper
        vars(wrapper).update(cache_key=cache_key, invalidate=invalidate)
        return wrapper

    return decorate
