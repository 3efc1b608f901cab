"""Async twins of the payment and refund services, for Django async views.

This module owns one decision: how a service runs inside an event loop without blocking it
and without changing what it does. Each twin runs the very same step functions as its sync
service (``payments.prepare_*``, ``record_outcome``, ``refunds.prepare_refund``...), so the
three-step rule and the idempotency keys are shared, not copied:

1. the database step (lock, check, record the intent, take the lease; commit) runs in
   asgiref's thread-sensitive executor (``sync_to_async``), as Django's ORM requires;
2. the provider call is the provider's own ``*_async`` method, awaited on the event loop
   (``httpx.AsyncClient`` or the Stripe SDK's async client for the HTTP providers, see
   ``get_async_payment_provider``); no thread is held while the provider answers;
3. the outcome is recorded by the database step again.

Django cancels an async view when its client disconnects. An operation that has started is
therefore *shielded*: if the awaiting code is cancelled, the operation still runs to the end
(the provider call, then the recording of its outcome) in a background task, and the caller
sees ``CancelledError`` as usual. A payment is never left with a recorded intent whose
answer was thrown away. (A process that dies mid-call is covered as in the sync services:
the lease expires and ``sync_payment`` settles the outcome.)

Names follow Django's async ORM (``aget``, ``asave``): ``acreate_payment``,
``aprocess_payment``... ``sync_payment``'s twin is ``async_sync_payment``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async

from .. import metrics
from ..exceptions import ProviderError
from ..models import Payment, PaymentMethod, Refund
from ..money import Money
from ..providers.registry import get_async_payment_provider
from ..types import PaymentResult, RefundResult
from . import payments, refunds

__all__ = [
    "acancel_payment",
    "acapture_payment",
    "aconfirm_payment",
    "acreate_payment",
    "acreate_refund",
    "aprocess_payment",
    "aprocess_refund",
    "aretry_payment",
    "async_sync_payment",
]

logger = logging.getLogger("paydesk.services")

P = ParamSpec("P")
T = TypeVar("T")

# Operations whose caller was cancelled, still running to the end (see the module docstring).
_orphans: set[asyncio.Task[Any]] = set()


def _db(func: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``func`` (a database step) run in asgiref's thread-sensitive executor."""
    return sync_to_async(func, thread_sensitive=True)


def _orphan_done(task: asyncio.Task[Any]) -> None:
    _orphans.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "paydesk: an operation whose caller went away failed after it started",
            exc_info=task.exception(),
        )


async def _to_the_end(operation: Coroutine[Any, Any, T]) -> T:
    """Await ``operation``; if the caller is cancelled, let it finish in the background."""
    task = asyncio.ensure_future(operation)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            _orphans.add(task)
            task.add_done_callback(_orphan_done)
        raise


async def wait_for_orphans() -> None:
    """Wait until operations whose callers were cancelled have finished (tests, shutdown)."""
    while _orphans:
        await asyncio.gather(*list(_orphans), return_exceptions=True)
        await asyncio.sleep(0)  # let their done callbacks run


# -- payments ----------------------------------------------------------------------------


async def _run_step(step: payments.ProviderStep | Payment) -> Payment:
    """Steps 2 and 3 for a prepared step (or the payment, when there was nothing to send)."""
    if isinstance(step, Payment):
        return step
    provider = get_async_payment_provider(step.alias)
    call: Callable[[Any], Awaitable[PaymentResult]] = getattr(provider, f"{step.method}_async")
    try:
        with metrics.observe_provider_call(step.alias, step.method):
            result = await call(step.request)
    except ProviderError as exc:
        return await _db(payments.record_failure)(step, exc)
    if step.source == "sync":
        return await _db(payments.record_sync)(step, result)
    return await _db(payments.record_outcome)(step, result)


def _db_service(func: Callable[P, T], name: str) -> Callable[P, Coroutine[Any, Any, T]]:
    """An async twin of a service that only touches the database."""

    @functools.wraps(func)
    async def service(*args: P.args, **kwargs: P.kwargs) -> T:
        return await _db(func)(*args, **kwargs)

    service.__name__ = service.__qualname__ = name
    service.__doc__ = (
        f"``{func.__name__}`` from async code (database only: nothing is sent to the "
        f"provider).\n\n{func.__doc__ or ''}"
    )
    return service


acreate_payment = _db_service(payments.create_payment, "acreate_payment")


async def aprocess_payment(
    *,
    payment: Payment | str,
    payment_method_token: str | None = None,
    return_url: str | None = None,
    fraud_context: Mapping[str, Any] | None = None,
) -> Payment:
    """``process_payment`` with the provider's native async call."""

    async def run() -> Payment:
        step = await _db(payments.prepare_process)(
            payment=payment,
            payment_method_token=payment_method_token,
            return_url=return_url,
            fraud_context=fraud_context,
        )
        return await _run_step(step)

    return await _to_the_end(run())


async def aconfirm_payment(
    *, payment: Payment | str, params: Mapping[str, str] | None = None
) -> Payment:
    """``confirm_payment`` with the provider's native async call."""

    async def run() -> Payment:
        return await _run_step(await _db(payments.prepare_confirm)(payment=payment, params=params))

    return await _to_the_end(run())


async def acapture_payment(
    *, payment: Payment | str, amount: Money | Decimal | str | None = None
) -> Payment:
    """``capture_payment`` with the provider's native async call."""

    async def run() -> Payment:
        return await _run_step(await _db(payments.prepare_capture)(payment=payment, amount=amount))

    return await _to_the_end(run())


async def acancel_payment(*, payment: Payment | str, reason: str = "") -> Payment:
    """``cancel_payment`` with the provider's native async call."""

    async def run() -> Payment:
        return await _run_step(await _db(payments.prepare_cancel)(payment=payment, reason=reason))

    return await _to_the_end(run())


async def aretry_payment(
    *,
    payment: Payment | str,
    payment_method: PaymentMethod | None = None,
    payment_method_token: str | None = None,
    process: bool = True,
) -> Payment:
    """``retry_payment``: a new attempt, then (by default) ``aprocess_payment``."""
    started = await _db(payments.start_attempt)(
        payment=payment, payment_method=payment_method, payment_method_token=payment_method_token
    )
    if process:
        return await aprocess_payment(payment=started)
    return started


async def async_sync_payment(*, payment: Payment | str) -> Payment:
    """``sync_payment``: the provider's status through its native async call, recorded."""

    async def run() -> Payment:
        return await _run_step(await _db(payments.prepare_sync)(payment=payment))

    return await _to_the_end(run())


# -- refunds -----------------------------------------------------------------------------


async def aprocess_refund(*, refund: Refund | str) -> Refund:
    """``process_refund`` with the provider's native async call (same idempotency key)."""

    async def run() -> Refund:
        step = await _db(refunds.prepare_refund)(refund=refund)
        provider = get_async_payment_provider(step.alias)
        try:
            result: RefundResult = await provider.create_refund_async(step.request)
        except ProviderError as exc:
            return await _db(refunds.record_refund_error)(step, exc)
        return await _db(refunds.record_refund_result)(refund=step.refund_id, result=result)

    return await _to_the_end(run())


async def acreate_refund(
    *,
    payment: Payment | str,
    amount: Money | Decimal | str | None = None,
    reason: str = "",
    user: Any | None = None,
    process: bool = True,
) -> Refund:
    """``create_refund``: reserve the amount, then (by default) ``aprocess_refund``."""
    refund = await _db(refunds.reserve_refund)(
        payment=payment, amount=amount, reason=reason, user=user
    )
    if process:
        return await aprocess_refund(refund=refund)
    return refund
