"""Adapters that build their own async client keep one per event loop.

Under WSGI each async view runs in a new event loop; a client whose pooled connections
belong to a closed loop would fail ("Event loop is closed") from the second request on.
"""

import asyncio

import httpx
import pytest

from paydesk.providers._http import PerLoopAsyncClients


def test_each_event_loop_gets_its_own_client_and_a_loop_reuses_it():
    clients = PerLoopAsyncClients(lambda: httpx.AsyncClient(timeout=1))

    async def twice():
        return clients.get(), clients.get()

    first_a, first_b = asyncio.run(twice())
    second_a, _ = asyncio.run(twice())
    assert first_a is first_b
    assert second_a is not first_a


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        ("paydesk.providers.nowpayments.NowPaymentsProvider", {"API_KEY": "k"}),
        ("paydesk.providers.easypay.EasyPayProvider", {"MALL_ID": "m", "SECRET_KEY": "s"}),
    ],
)
def test_http_adapters_use_a_client_per_loop(backend, options):
    from django.utils.module_loading import import_string

    provider = import_string(backend)(alias="x", options=options)

    async def client():
        return provider._async_client()

    assert asyncio.run(client()) is not asyncio.run(client())
