"""N+1 guards: every list endpoint runs the same number of queries for 5 rows as for 25."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from paydesk import services
from tests.test_api_support import (
    build_world,
    completed_payment,
    make_key,
    saved_method,
    url,
)

pytestmark = pytest.mark.django_db


def _fill(owner: Any) -> None:
    for i in range(26):
        payment = completed_payment(owner, "10.00")
        services.create_refund(payment=payment, amount="1.00", process=i % 2 == 0)
        saved_method(owner, f"pm_many_{i}")


def _count(client: Any, path: str, **params: Any) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(path), params)
    assert response.status_code == 200, response.content
    return len(queries), response.json()


def _rows(body: Any) -> int:
    return len(body["results"]) if isinstance(body, dict) else len(body)


@pytest.mark.parametrize("path", ["payments/", "refunds/", "payment-methods/"])
@pytest.mark.parametrize("principal", ["owner", "staff", "key_read"])
def test_list_queries_do_not_grow_with_the_page(
    path: str, principal: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    world = build_world()
    _fill(world.owner)
    client = world.client(principal)
    client.get(url("config/"))  # an API key's first use records last_used_at; not counted
    small, small_body = _count(client, path, page_size=5)
    large, large_body = _count(client, path, page_size=25)
    assert (_rows(small_body), _rows(large_body)) == (5, 25)
    assert small == large, (small, large)
    # Authentication (session: 2, key: 1) + COUNT + SELECT, and nothing per row.
    with django_assert_num_queries(large):
        client.get(url(path), {"page_size": 25})
    assert large <= 4


def test_the_ledger_does_not_grow_with_its_entries(
    django_assert_num_queries: Callable[..., Any],
) -> None:
    world = build_world()
    short = completed_payment(world.owner, "50.00")
    long = completed_payment(world.owner, "50.00")
    for _ in range(8):
        services.create_refund(payment=long, amount="1.00")
    client = world.client("owner")
    few, few_body = _count(client, f"payments/{short.pk}/ledger/")
    many, many_body = _count(client, f"payments/{long.pk}/ledger/")
    assert _rows(many_body) > _rows(few_body) + 10
    assert few == many


def test_key_owner_is_loaded_with_the_key() -> None:
    world = build_world()
    _key, secret = make_key(world.owner, ["read"])
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    client.get(url("config/"))
    count, _ = _count(client, "payments/", page_size=5)
    assert count == 3  # key+owner, COUNT, SELECT
