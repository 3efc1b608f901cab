"""Idempotency-Key on API POSTs: replay, mismatch, in flight, expiry, scoping, 5xx not kept."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from paydesk.api import idempotency
from paydesk.exceptions import ProviderUnavailable
from paydesk.models import APIIdempotencyKey, Payment
from paydesk.services import create_payment, process_payment
from tests.test_api_support import (
    World,
    build_world,
    error_of,
    url,
)


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


BODY = {"amount": "15.00", "currency": "USD", "reference": "order-7"}


def _post(client: Any, path: str, body: Any, key: str | None = "key-1") -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(url(path), body, format="json", **headers)


@pytest.mark.django_db
def test_same_key_same_body_replays(world: World) -> None:
    client = world.client("key_write")
    first = _post(client, "payments/", BODY)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    second = _post(client, "payments/", dict(reversed(list(BODY.items()))))  # key order irrelevant
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Payment.objects.filter(reference="order-7").count() == 1


@pytest.mark.django_db
def test_same_key_different_body_is_refused(world: World) -> None:
    client = world.client("owner")
    assert _post(client, "payments/", BODY).status_code == 201
    response = _post(client, "payments/", {**BODY, "amount": "16.00"})
    assert response.status_code == 422
    error = error_of(response)
    assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_key_reused")
    assert error["param"] == "Idempotency-Key"
    # ...and so is the same key on another endpoint.
    pending = world.objects["pending"]
    other_path = _post(client, f"payments/{pending.pk}/cancel/", BODY)
    assert other_path.status_code == 422
    assert Payment.objects.filter(reference="order-7").count() == 1


@pytest.mark.django_db
def test_keys_are_scoped_per_principal(world: World) -> None:
    # The same key from the owner's session, the owner's API key and another user: three
    # principals, three payments.
    for principal in ("owner", "key_write", "other"):
        response = _post(world.client(principal), "payments/", BODY, key="shared")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response
    assert Payment.objects.filter(reference="order-7").count() == 3


@pytest.mark.django_db
def test_a_request_still_in_flight_gets_409(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from paydesk.api import views

    client = world.client("owner")
    seen: list[Any] = []
    real = views.services.create_payment

    def create_and_retry(**kwargs: Any) -> Payment:
        # While the first request runs, the client retries with the same key.
        seen.append(_post(world.client("owner"), "payments/", BODY))
        return real(**kwargs)

    monkeypatch.setattr(views.services, "create_payment", create_and_retry)
    first = _post(client, "payments/", BODY)
    assert first.status_code == 201
    (retry,) = seen
    assert retry.status_code == 409
    error = error_of(retry)
    assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_in_progress")
    monkeypatch.setattr(views.services, "create_payment", real)
    assert _post(client, "payments/", BODY)["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_keys_expire(world: World, settings) -> None:
    settings.PAYDESK = {**settings.PAYDESK, "API": {"IDEMPOTENCY_TTL_HOURS": 1}}
    client = world.client("owner")
    first = _post(client, "payments/", BODY)
    APIIdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))
    second = _post(client, "payments/", BODY)
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert second.json()["id"] != first.json()["id"]
    assert APIIdempotencyKey.objects.count() == 1
    APIIdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))
    assert idempotency.purge_expired() == 1


@pytest.mark.django_db
def test_an_abandoned_claim_is_taken_over(world: World) -> None:
    client = world.client("owner")
    assert _post(client, "payments/", BODY).status_code == 201
    # As if the process had died mid-request: no stored response, claimed long ago.
    APIIdempotencyKey.objects.update(
        response_status=None,
        response_body=None,
        created_at=timezone.now() - dt.timedelta(minutes=10),
    )
    response = _post(client, "payments/", BODY)
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response


@pytest.mark.django_db
def test_client_errors_are_replayed_too(world: World) -> None:
    client = world.client("owner")
    first = _post(client, "payments/", {"amount": "1.001"})
    assert first.status_code == 400
    second = _post(client, "payments/", {"amount": "1.001"})
    assert second.status_code == 400
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()


@pytest.mark.django_db
def test_server_errors_are_not_stored_so_a_retry_runs(world: World, mock) -> None:
    payment = process_payment(
        payment=create_payment(
            amount="5.00", currency="USD", provider="mock", user=world.owner, capture=False
        )
    )
    mock.set_exception(ProviderUnavailable("Timed out.", provider="mock"))
    client = world.client("owner")
    failed = _post(client, f"payments/{payment.pk}/capture/", {})
    assert failed.status_code == 503
    assert not APIIdempotencyKey.objects.exists()
    retried = _post(client, f"payments/{payment.pk}/capture/", {})
    assert retried.status_code == 200, retried.content
    assert "Idempotent-Replayed" not in retried
    assert retried.json()["status"] == "completed"
    assert mock.get_call_count("capture_payment") == 2


@pytest.mark.django_db
def test_conflicts_are_not_stored(world: World) -> None:
    client = world.client("owner")
    pending = world.objects["pending"]
    conflict = _post(client, f"payments/{pending.pk}/capture/", {})
    assert conflict.status_code == 409
    assert not APIIdempotencyKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_invalid_keys(world: World, key: str) -> None:
    response = _post(world.client("owner"), "payments/", BODY, key=key)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"]) == ("invalid_idempotency_key", "Idempotency-Key")
    assert not Payment.objects.filter(reference="order-7").exists()


@pytest.mark.django_db
def test_without_a_key_every_post_acts(world: World) -> None:
    client = world.client("owner")
    for _ in range(2):
        assert _post(client, "payments/", BODY, key=None).status_code == 201
    assert Payment.objects.filter(reference="order-7").count() == 2
    assert not APIIdempotencyKey.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_payment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paydesk.api import views

    world = build_world()
    real = views.services.create_payment

    def slow_create(**kwargs: Any) -> Payment:
        time.sleep(0.3)  # keep the first request in flight while the others arrive
        return real(**kwargs)

    monkeypatch.setattr(views.services, "create_payment", slow_create)
    start = threading.Barrier(6)
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = world.client("key_write")
            start.wait()
            response = _post(client, "payments/", BODY, key="race")
            with lock:
                results.append(response)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Payment.objects.filter(reference="order-7").count() == 1
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) >= 1, statuses
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(409) >= 1, statuses
    created = {r.json()["id"] for r in results if r.status_code == 201}
    assert len(created) == 1
    # Once it finished, the same key replays the one payment.
    replay = _post(world.client("key_write"), "payments/", BODY, key="race")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] in created
