"""Retrying calls that failed for a passing reason, with exponential backoff.

This module owns one decision: which failures are worth another try, how long to wait before
it, and how a retry of a money-moving call stays a retry of the *same* call. It is built on
tenacity; the pieces here only fix paydesk's policy:

* **What is retried.** A ``ProviderError`` only when its ``retryable`` flag says so (timeouts,
  connection errors, 429, 5xx: ``ProviderUnavailable``), never a ``PaymentDeclined`` whatever
  its flag; httpx timeouts and connection errors, and an ``httpx.HTTPStatusError`` for a 429
  or a 5xx; and any other exception class listed in ``retry_on``. Everything else (declines,
  invalid requests, bad credentials, state errors) is raised at once.
* **How long to wait.** ``initial_delay`` before the first retry, multiplied by
  ``exponential_base`` per retry, at most ``max_delay``; with ``jitter`` each wait is drawn
  between half and all of that ("equal jitter"), so many workers that failed together do
  not come back together. Defaults come from ``PAYDESK["RETRY"]`` (``ATTEMPTS`` 3, ``DELAY``
  1.0 s, ``MAX_DELAY`` 60 s), read when a call starts, never at import time.
* **The same call.** Retrying is only safe when the retried call carries the same idempotency
  key. paydesk's request dataclasses carry it and every adapter honours it, so the safe places
  to retry are *inside* the adapter (:class:`RetryingProviderMixin` re-sends the very same
  request object) and *after* an unknown outcome, by asking the provider under the same key
  (:func:`settle_payment`, :func:`process_payment_with_retry`). Wrapping
  ``services.process_payment`` itself in a retry does not re-send anything: after a
  retryable error the payment is ``processing`` and a second ``process_payment`` raises
  ``PaymentInProgress``, which is not retried. See ``docs/operations.md#retries``.

::

    @retry_with_backoff(max_attempts=5)
    def fetch_balance(client): ...

    for attempt in RetryableOperation(max_attempts=3):
        with attempt:
            status = provider.get_payment_status(request)

    @async_retry_with_backoff()
    async def fetch_status(): ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

import httpx
from tenacity import (
    AsyncRetrying,
    AttemptManager,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from .conf import paydesk_settings
from .exceptions import (
    PaymentDeclined,
    ProviderError,
    ProviderUnavailable,
)
from .logging import get_logger
from .providers.base import PaymentProvider
from .types import (
    CancelRequest,
    CaptureRequest,
    ConfirmRequest,
    PaymentRequest,
    PaymentResult,
    RefundRequest,
    RefundResult,
    StatusRequest,
)

if TYPE_CHECKING:
    from .models import Payment

__all__ = [
    "RetryableOperation",
    "RetryingProviderMixin",
    "async_retry_with_backoff",
    "is_retryable",
    "process_payment_with_retry",
    "retry_with_backoff",
    "settle_payment",
]

# A PaymentLogger: its records carry the request id, and its logger has the redaction filter
# even when this module is imported after start-up.
logger = get_logger("paydesk.retry")

P = ParamSpec("P")
R = TypeVar("R")

#: httpx failures where the request may not have arrived or its answer was lost.
RETRYABLE_HTTPX_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)

Sleep = Callable[[float], Any]
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | None


def is_retryable(exc: BaseException, retry_on: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether ``exc`` may be retried under paydesk's policy (see the module docstring)."""
    if isinstance(exc, PaymentDeclined):
        return False  # a decline is an answer, not a fault: asking again is a new charge attempt
    if isinstance(exc, ProviderError):
        return bool(exc.retryable)
    if isinstance(exc, RETRYABLE_HTTPX_ERRORS):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    return bool(retry_on) and isinstance(exc, retry_on)


def _settings(
    max_attempts: int | None, initial_delay: float | None, max_delay: float | None
) -> tuple[int, float, float]:
    configured = paydesk_settings.RETRY
    attempts = int(configured["ATTEMPTS"] if max_attempts is None else max_attempts)
    delay = float(configured["DELAY"] if initial_delay is None else initial_delay)
    ceiling = float(configured.get("MAX_DELAY", 60.0) if max_delay is None else max_delay)
    if attempts < 1:
        raise ValueError(f"max_attempts must be at least 1 (the first call), not {attempts}.")
    if delay < 0 or ceiling < 0:
        raise ValueError("initial_delay and max_delay must not be negative.")
    return attempts, delay, ceiling


def _wait(delay: float, exponential_base: float, max_delay: float, jitter: bool) -> wait_base:
    if exponential_base < 1:
        raise ValueError(f"exponential_base must be at least 1, not {exponential_base}.")
    if not jitter:
        return wait_exponential(multiplier=delay, exp_base=exponential_base, max=max_delay)
    # Equal jitter: half the exponential delay for sure, plus up to the other half at random.
    half, half_max = delay / 2, max_delay / 2
    return wait_exponential(
        multiplier=half, exp_base=exponential_base, max=half_max
    ) + wait_random_exponential(multiplier=half, exp_base=exponential_base, max=half_max)


def _before_sleep(name: str, attempts: int) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s failed (%s: %s); retry %d of %d in %.2fs",
            name,
            type(exc).__name__,
            exc,
            state.attempt_number,
            attempts - 1,
            wait,
            extra={
                "paydesk": {
                    "event": "retry",
                    "operation": name,
                    "attempt": state.attempt_number,
                    "max_attempts": attempts,
                    "wait_seconds": round(wait, 3),
                    "error_code": getattr(exc, "code", type(exc).__name__),
                }
            },
        )

    return log


def _async_sleep(sleep: Sleep | None) -> Callable[[float], Awaitable[None]] | None:
    if sleep is None or inspect.iscoroutinefunction(sleep):
        return sleep

    async def call(seconds: float) -> None:
        sleep(seconds)

    return call


def _build(
    cls: type[Retrying] | type[AsyncRetrying],
    *,
    max_attempts: int | None,
    initial_delay: float | None,
    exponential_base: float,
    max_delay: float | None,
    jitter: bool,
    retry_on: tuple[type[BaseException], ...],
    sleep: Sleep | None,
    name: str,
) -> Any:
    attempts, delay, ceiling = _settings(max_attempts, initial_delay, max_delay)
    kwargs: dict[str, Any] = {
        "stop": stop_after_attempt(attempts),
        "wait": _wait(delay, exponential_base, ceiling, jitter),
        "retry": retry_if_exception(lambda exc: is_retryable(exc, retry_on)),
        "before_sleep": _before_sleep(name, attempts),
        "reraise": True,  # the caller sees the real error, not tenacity's RetryError
    }
    if cls is AsyncRetrying:
        if sleep is not None:
            kwargs["sleep"] = _async_sleep(sleep)
    elif sleep is not None:
        kwargs["sleep"] = sleep
    return cls(**kwargs)


def _retry_on(retry_on: RetryOn) -> tuple[type[BaseException], ...]:
    if retry_on is None:
        return ()
    return retry_on if isinstance(retry_on, tuple) else (retry_on,)


class RetryableOperation:
    """A retry loop for a block of code: tenacity's attempt iterator with paydesk's policy.

    ::

        for attempt in RetryableOperation(max_attempts=4, initial_delay=0.5):
            with attempt:
                result = provider.get_payment_status(request)

    Also ``async for attempt in RetryableOperation(...)`` inside a coroutine, and
    ``RetryableOperation(...).call(fn, *args, **kwargs)``. When every attempt fails, the last
    error is raised as it is. ``sleep`` replaces ``time.sleep`` (``asyncio.sleep`` when
    iterated with ``async for``), for tests. ``PAYDESK["RETRY"]`` is read when each loop
    starts; bad values are refused when the object is made.
    """

    def __init__(
        self,
        max_attempts: int | None = None,
        initial_delay: float | None = None,
        exponential_base: float = 2,
        max_delay: float | None = None,
        jitter: bool = True,
        retry_on: RetryOn = (ProviderUnavailable,),
        *,
        sleep: Sleep | None = None,
        name: str = "operation",
    ) -> None:
        self._options: dict[str, Any] = {
            "max_attempts": max_attempts,
            "initial_delay": initial_delay,
            "exponential_base": exponential_base,
            "max_delay": max_delay,
            "jitter": jitter,
            "retry_on": _retry_on(retry_on),
            "sleep": sleep,
            "name": name,
        }
        # Validate (and read the settings) now, so a bad value fails where it was written.
        self.max_attempts, self.initial_delay, self.max_delay = _settings(
            max_attempts, initial_delay, max_delay
        )
        self._current: Any = None

    def retrying(self) -> Retrying:
        """A fresh tenacity ``Retrying`` with these options."""
        return cast(Retrying, _build(Retrying, **self._options))

    def async_retrying(self) -> AsyncRetrying:
        """A fresh tenacity ``AsyncRetrying`` with these options."""
        return cast(AsyncRetrying, _build(AsyncRetrying, **self._options))

    def __iter__(self) -> Iterator[AttemptManager]:
        self._current = self.retrying()
        yield from self._current

    def __aiter__(self) -> AsyncIterator[AttemptManager]:
        self._current = self.async_retrying()
        return cast(AsyncIterator[AttemptManager], self._current.__aiter__())

    @property
    def attempt_number(self) -> int:
        """Attempts made by the running (or last) loop; 0 before the first."""
        if self._current is None:
            return 0
        return int(self._current.statistics.get("attempt_number", 0))

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``fn(*args, **kwargs)``, retried."""
        self._current = self.retrying()
        return cast(R, self._current(fn, *args, **kwargs))

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """``await fn(*args, **kwargs)``, retried."""
        self._current = self.async_retrying()
        return cast(R, await self._current(fn, *args, **kwargs))


@overload
def retry_with_backoff(max_attempts: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def retry_with_backoff(
    max_attempts: int | None = None,
    initial_delay: float | None = None,
    exponential_base: float = 2,
    max_delay: float | None = None,
    jitter: bool = True,
    retry_on: RetryOn = ...,
    *,
    sleep: Sleep | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def retry_with_backoff(
    max_attempts: Any = None,
    initial_delay: float | None = None,
    exponential_base: float = 2,
    max_delay: float | None = None,
    jitter: bool = True,
    retry_on: RetryOn = (ProviderUnavailable,),
    *,
    sleep: Sleep | None = None,
) -> Any:
    """Decorator: retry the function on retryable errors, waiting longer each time.

    ``max_attempts`` counts every call, the first included (default ``PAYDESK["RETRY"]
    ["ATTEMPTS"]``); ``initial_delay`` is the wait before the first retry in seconds (default
    ``["DELAY"]``); ``max_delay`` caps any wait (default ``["MAX_DELAY"]``, 60). Usable bare
    (``@retry_with_backoff``) or called. A coroutine function gets an async wrapper (as
    :func:`async_retry_with_backoff`). The signature and metadata of the function are kept.
    """
    if callable(max_attempts):
        return retry_with_backoff()(max_attempts)
    options: dict[str, Any] = {
        "max_attempts": max_attempts,
        "initial_delay": initial_delay,
        "exponential_base": exponential_base,
        "max_delay": max_delay,
        "jitter": jitter,
        "retry_on": _retry_on(retry_on),
        "sleep": sleep,
    }
    # Fail at decoration time on a bad value (without reading settings: they may not be
    # configured yet when a module is imported).
    if max_attempts is not None and int(max_attempts) < 1:
        raise ValueError(f"max_attempts must be at least 1 (the first call), not {max_attempts}.")
    if exponential_base < 1:
        raise ValueError(f"exponential_base must be at least 1, not {exponential_base}.")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        name = getattr(func, "__qualname__", repr(func))
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                retrying = _build(AsyncRetrying, name=name, **options)
                return await retrying(func, *args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            retrying = _build(Retrying, name=name, **options)
            return retrying(func, *args, **kwargs)

        return wrapper

    return decorate


@overload
def async_retry_with_backoff(
    max_attempts: Callable[P, Awaitable[R]], /
) -> Callable[P, Awaitable[R]]: ...


@overload
def async_retry_with_backoff(
    max_attempts: int | None = None,
    initial_delay: float | None = None,
    exponential_base: float = 2,
    max_delay: float | None = None,
    jitter: bool = True,
    retry_on: RetryOn = ...,
    *,
    sleep: Sleep | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def async_retry_with_backoff(
    max_attempts: Any = None,
    initial_delay: float | None = None,
    exponential_base: float = 2,
    max_delay: float | None = None,
    jitter: bool = True,
    retry_on: RetryOn = (ProviderUnavailable,),
    *,
    sleep: Sleep | None = None,
) -> Any:
    """:func:`retry_with_backoff` for coroutine functions, on tenacity's ``AsyncRetrying``.

    Waits with ``asyncio.sleep`` (or ``sleep``, sync or async), so the event loop keeps
    serving other requests between attempts.
    """
    if callable(max_attempts):
        return async_retry_with_backoff()(max_attempts)
    decorator = retry_with_backoff(
        max_attempts,
        initial_delay,
        exponential_base,
        max_delay,
        jitter,
        retry_on,
        sleep=sleep,
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"async_retry_with_backoff needs a coroutine function (async def); "
                f"{getattr(func, '__qualname__', func)!r} is not one: use retry_with_backoff."
            )
        return decorator(func)

    return decorate


# -- provider calls: re-send the same request ------------------------------------------------


class RetryingProviderMixin(PaymentProvider):
    """Retry a provider's calls inside the adapter, re-sending the *same* request.

    Put it first in the bases of your own backend class and name that class in
    ``PAYDESK["PROVIDERS"][alias]["BACKEND"]``::

        class RetryingIyzico(RetryingProviderMixin, IyzicoProvider):
            pass

    Each operation (``create_payment``, ``confirm_payment``, ``capture_payment``,
    ``cancel_payment``, ``get_payment_status``, ``create_refund`` and their native async
    twins) is retried on retryable errors with the very same request object, so the same
    idempotency key: the provider answers a repeat with its first answer and cannot charge
    twice. The services see one call that either succeeded or failed for good. Options:
    ``OPTIONS["RETRY"]`` (``ATTEMPTS``, ``DELAY``, ``MAX_DELAY``) over ``PAYDESK["RETRY"]``.

    Keep attempts x the provider's timeout + the waits well under the services' operation
    lease (two minutes): past it another request may take the payment over. The Stripe and
    PayPal adapters already retry their own network calls (``MAX_NETWORK_RETRIES``,
    ``MAX_RETRIES``); do not stack this on them.
    """

    #: ``time.sleep`` replacement (``asyncio.sleep`` for the async twins), e.g. in tests;
    #: set it on the instance (``provider.retry_sleep = fake``).
    retry_sleep: Sleep | None = None

    def _retry(self, operation: str) -> RetryableOperation:
        own = dict(self.options.get("RETRY") or {})
        return RetryableOperation(
            max_attempts=own.get("ATTEMPTS"),
            initial_delay=own.get("DELAY"),
            max_delay=own.get("MAX_DELAY"),
            retry_on=(),
            sleep=self.retry_sleep,
            name=f"{self.alias}.{operation}",
        )

    def _call(self, operation: str, request: Any) -> Any:
        implementation = getattr(super(), operation)
        return self._retry(operation).call(implementation, request)

    async def _acall(self, operation: str, request: Any) -> Any:
        implementation = getattr(super(), operation)
        mro = type(self).__mro__
        after = mro[mro.index(RetryingProviderMixin) + 1 :]
        owner = next((c for c in after if operation in vars(c)), PaymentProvider)
        if owner is PaymentProvider:
            # The default twin runs the sync method in a thread, and that one retries already.
            return await implementation(request)
        return await self._retry(operation).acall(implementation, request)

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return cast(PaymentResult, self._call("create_payment", request))

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        return cast(PaymentResult, self._call("confirm_payment", request))

    def capture_payment(self, request: CaptureRequest) -> PaymentResult:
        return cast(PaymentResult, self._call("capture_payment", request))

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        return cast(PaymentResult, self._call("cancel_payment", request))

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        return cast(PaymentResult, self._call("get_payment_status", request))

    def create_refund(self, request: RefundRequest) -> RefundResult:
        return cast(RefundResult, self._call("create_refund", request))

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        return cast(PaymentResult, await self._acall("create_payment_async", request))

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return cast(PaymentResult, await self._acall("confirm_payment_async", request))

    async def capture_payment_async(self, request: CaptureRequest) -> PaymentResult:
        return cast(PaymentResult, await self._acall("capture_payment_async", request))

    async def cancel_payment_async(self, request: CancelRequest) -> PaymentResult:
        return cast(PaymentResult, await self._acall("cancel_payment_async", request))

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        return cast(PaymentResult, await self._acall("get_payment_status_async", request))

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        return cast(RefundResult, await self._acall("create_refund_async", request))


# -- services: settle an unknown outcome under the same key ----------------------------------


class _OutcomeUnknown(ProviderUnavailable):
    """The provider has not settled the payment yet; ask again."""


def settle_payment(
    *,
    payment: Payment | str,
    max_attempts: int | None = None,
    initial_delay: float | None = None,
    max_delay: float | None = None,
    sleep: Sleep | None = None,
) -> Payment:
    """Ask the provider about a ``processing`` payment until it answers, with backoff.

    Each attempt is ``services.sync_payment``, which asks under the idempotency key the
    submission used and records what the provider knows. Returns the payment as soon as it
    is no longer ``processing``; after the last attempt, returns it as it is (still
    ``processing``: reconciliation, or a webhook, settles it later). It never sends the
    payment again: if the provider says it never received it, the payment is recorded as
    failed (``provider_unavailable``) and a new attempt (``services.retry_payment``, a new
    key) is the caller's decision.
    """
    from .services import sync_payment
    from .states import PaymentStatus

    current: Payment | str = payment
    loop = RetryableOperation(
        max_attempts=max_attempts,
        initial_delay=initial_delay,
        max_delay=max_delay,
        retry_on=(),
        sleep=sleep,
        name="settle_payment",
    )
    try:
        for attempt in loop:
            with attempt:
                current = sync_payment(payment=current)
                if current.status == PaymentStatus.PROCESSING:
                    raise _OutcomeUnknown(
                        f"Payment {current.pk} is still processing at the provider.",
                        provider=current.provider,
                    )
    except _OutcomeUnknown:
        pass
    from .services.ledger import get_payment

    return get_payment(current)


def process_payment_with_retry(
    *,
    payment: Payment | str,
    payment_method_token: str | None = None,
    return_url: str | None = None,
    max_attempts: int | None = None,
    initial_delay: float | None = None,
    max_delay: float | None = None,
    sleep: Sleep | None = None,
) -> Payment:
    """``services.process_payment``, settling a lost answer instead of raising it.

    A retryable provider error leaves the outcome unknown (the provider may have charged).
    Rather than submitting again, this asks the provider under the same idempotency key
    (:func:`settle_payment`) until it answers. If it still cannot tell after the last
    attempt, the original error is raised and the payment stays ``processing``. A decline,
    or any other error, is returned or raised exactly as ``process_payment`` does.
    """
    from .services import process_payment
    from .states import PaymentStatus
    from .types import Capability

    try:
        return process_payment(
            payment=payment, payment_method_token=payment_method_token, return_url=return_url
        )
    except ProviderError as exc:
        if not is_retryable(exc):
            raise
        from .providers.registry import get_payment_provider
        from .services.ledger import get_payment

        current = get_payment(payment)
        if not get_payment_provider(current.provider).supports(Capability.SYNC):
            raise
        try:
            settled = settle_payment(
                payment=current,
                max_attempts=max_attempts,
                initial_delay=initial_delay,
                max_delay=max_delay,
                sleep=sleep,
            )
        except ProviderError as sync_error:
            if not is_retryable(sync_error):
                raise
            raise exc from sync_error  # still unknown: the submission's error is the news
        if settled.status == PaymentStatus.PROCESSING:
            raise
        return settled
