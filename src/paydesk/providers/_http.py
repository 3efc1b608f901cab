"""One ``httpx.AsyncClient`` per event loop, for adapters that build their own.

This module owns one decision: how an adapter that was not handed an async client makes one.
An ``httpx.AsyncClient``'s pooled connections belong to the event loop that opened them;
reused from another loop they fail ("Event loop is closed"). Under WSGI, Django runs each
async view in a loop of its own, so a single client per adapter instance breaks from the
second request on. Keeping one client per running loop (forgotten with the loop) avoids it.
An injected client is the caller's business and is used as given.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable

import httpx

__all__ = ["PerLoopAsyncClients"]


class PerLoopAsyncClients:
    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._factory()
                self._clients[loop] = client
            return client
