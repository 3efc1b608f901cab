"""What every network adapter does the same way: its clients, one call's trip, and driving.

This module owns three decisions, so that each adapter makes them once and alike:

* **Which client a call uses.** An injected ``httpx.Client`` / ``httpx.AsyncClient`` is the
  caller's business and is used as given. Otherwise the sync client is built on first use,
  and the async one once *per running event loop* (:class:`PerLoop`): an
  ``httpx.AsyncClient``'s pooled connections belong to the loop that opened them and fail
  from another one ("Event loop is closed"), and under WSGI Django runs each async view in
  a loop of its own.
* **How an operation runs.** An adapter writes each operation once, as a generator that
  yields the calls it needs and receives their answers (:data:`Operation`). :func:`drive`
  runs it with a sync ``send``, :func:`adrive` with an async one, so the async twins are
  natively async with no second copy of the logic. A failure of the kind the adapter names
  (``throws``, by default any ``ProviderError``) is thrown *into* the generator at its
  ``yield``, because what a failed call means is the operation's decision (KICC's rules for
  a timed-out approval, PayPal's "already captured"); anything else propagates as raised.
* **How one HTTP call crosses the network** (:class:`HttpTransport`): the adapter builds the
  ``httpx.Request`` and reads the response; a transport failure (timeout, connection error,
  any ``httpx.HTTPError``) becomes the adapter's own ``ProviderError`` (always a retryable
  "the outcome is unknown"), chained to its cause, and never reaches the operation as httpx's.

What the answer *means* (status codes, error bodies, retries) stays with each adapter: it is
the part where providers really differ.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from ..exceptions import ProviderError

__all__ = [
    "HttpTransport",
    "JsonReply",
    "Operation",
    "PerLoop",
    "PerLoopAsyncClients",
    "adrive",
    "drive",
]

C = TypeVar("C")  # what an operation yields: one call, in the adapter's own terms
R = TypeVar("R")  # what it receives back for it
T = TypeVar("T")
V = TypeVar("V")

#: An operation: yields calls ``C``, receives their answers ``R``, returns ``T``.
Operation = Generator[C, R, T]
Throws = type[BaseException] | tuple[type[BaseException], ...]


# -- clients ------------------------------------------------------------------------------


class PerLoop(Generic[V]):
    """One value per running event loop, made on first use there and forgotten with the loop."""

    def __init__(self, factory: Callable[[], V]) -> None:
        self._factory = factory
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, V]
        self._values = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> V:
        loop = asyncio.get_running_loop()
        with self._lock:
            value = self._values.get(loop)
            if value is None:
                value = self._factory()
                self._values[loop] = value
            return value

    def pop(self) -> V | None:
        """Forget the running loop's value and return it (``None`` if it had none)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._values.pop(loop, None)


class PerLoopAsyncClients(PerLoop[httpx.AsyncClient]):
    """The ``httpx.AsyncClient`` an adapter built for each running event loop."""


# -- driving an operation -----------------------------------------------------------------


def drive(
    operation: Operation[C, R, T], send: Callable[[C], R], *, throws: Throws = ProviderError
) -> T:
    """Run ``operation`` to its return value, sending each call it yields with ``send``."""
    answer: Any = None
    failure: BaseException | None = None
    while True:
        # Thrown outside the ``except`` that caught it: an error the operation raises in
        # its place is then not reported as raised "during handling" of the first one.
        try:
            call = operation.send(answer) if failure is None else operation.throw(failure)
        except StopIteration as stop:
            return stop.value
        answer, failure = None, None
        try:
            answer = send(call)
        except throws as exc:
            failure = exc


async def adrive(
    operation: Operation[C, R, T],
    send: Callable[[C], Awaitable[R]],
    *,
    throws: Throws = ProviderError,
) -> T:
    """:func:`drive` with an async ``send``."""
    answer: Any = None
    failure: BaseException | None = None
    while True:
        try:
            call = operation.send(answer) if failure is None else operation.throw(failure)
        except StopIteration as stop:
            return stop.value
        answer, failure = None, None
        try:
            answer = await send(call)
        except throws as exc:
            failure = exc


# -- one HTTP call --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonReply:
    """An HTTP answer whatever its status: the parsed JSON (``None`` if it is not JSON)."""

    status: int
    data: Any
    text: str  # the first 500 characters, for error messages

    @classmethod
    def read(
        cls, response: httpx.Response, loads: Callable[[bytes], Any] = json.loads
    ) -> JsonReply:
        try:
            data = loads(response.content) if response.content else None
        except ValueError:
            data = None
        return cls(status=response.status_code, data=data, text=response.text[:500])


class HttpTransport(Generic[C, R]):
    """Sends an adapter's calls over its clients and drives its operations.

    A subclass says how a call ``C`` becomes an ``httpx.Request`` (:meth:`build`), what an
    answer is in the adapter's terms (:meth:`read`, which may raise a ``ProviderError``) and
    what a transport failure is called (:meth:`transport_error`).
    """

    def __init__(
        self,
        *,
        timeout: float,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.timeout = timeout
        self._client = client
        self._async_client = async_client  # injected: the caller's to manage
        self._owned_async = PerLoopAsyncClients(lambda: httpx.AsyncClient(timeout=self.timeout))
        self._lock = threading.Lock()

    # -- what each adapter says ----------------------------------------------------------

    def build(self, call: C) -> httpx.Request:
        raise NotImplementedError

    def read(self, call: C, response: httpx.Response) -> R:
        raise NotImplementedError

    def transport_error(self, call: C, exc: httpx.HTTPError) -> ProviderError:
        raise NotImplementedError

    # -- clients -------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self.timeout)
        return self._client

    @property
    def async_client(self) -> httpx.AsyncClient:
        if self._async_client is not None:
            return self._async_client
        return self._owned_async.get()

    # -- sending and driving -------------------------------------------------------------

    def send(self, call: C) -> R:
        request = self.build(call)
        try:
            response = self.client.send(request)
        except httpx.HTTPError as exc:
            raise self.transport_error(call, exc) from exc
        return self.read(call, response)

    async def asend(self, call: C) -> R:
        request = self.build(call)
        try:
            response = await self.async_client.send(request)
        except httpx.HTTPError as exc:
            raise self.transport_error(call, exc) from exc
        return self.read(call, response)

    def run(self, operation: Operation[C, R, T]) -> T:
        return drive(operation, self.send)

    async def arun(self, operation: Operation[C, R, T]) -> T:
        return await adrive(operation, self.asend)
