"""Idempotency keys: one INSERT decides, expired claims are reclaimed, the decorator runs once.

The behaviour tests run on SQLite and PostgreSQL; the races (real threads, real
transactions) are PostgreSQL-only.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from paydesk.exceptions import ConfigurationError, PaymentInProgress
from paydesk.models import IdempotencyRecord
from paydesk.security.idempotency import IdempotencyManager, idempotent

db = pytest.mark.django_db


# --- keys ------------------------------------------------------------------------------------


def test_keys_are_scoped_and_long_keys_hashed():
    manager = IdempotencyManager(scope="refunds")
    assert manager.scoped_key("re_123") == "refunds:re_123"
    long_key = "k" * 400
    scoped = manager.scoped_key(long_key)
    assert scoped.startswith("refunds:sha256:")
    assert len(scoped) <= 255
    assert scoped != manager.scoped_key("k" * 401)
    assert len(manager.scoped_key("k" * (255 - len("refunds:")))) == 255  # fits: kept as is
    with pytest.raises(ValueError, match="non-empty"):
        manager.scoped_key("")


@pytest.mark.parametrize("scope", ["", "a:b", "s" * 101])
def test_invalid_scopes(scope):
    with pytest.raises(ConfigurationError):
        IdempotencyManager(scope=scope)


def test_invalid_ttls():
    with pytest.raises(ConfigurationError):
        IdempotencyManager(ttl=0)
    with pytest.raises(ConfigurationError):
        IdempotencyManager(claim_ttl=timedelta(seconds=-1))


# --- manager ---------------------------------------------------------------------------------


@db
def test_start_claims_once_and_release_frees_the_claim():
    manager = IdempotencyManager(scope="webhooks")
    assert not manager.check("evt_1")
    assert manager.start("evt_1") is True
    assert manager.check("evt_1")
    assert manager.start("evt_1") is False
    assert manager.get_response("evt_1") is None  # started, not done
    assert manager.release("evt_1") is True
    assert not manager.check("evt_1")
    assert manager.start("evt_1") is True
    record = IdempotencyRecord.objects.get(key="webhooks:evt_1")
    assert (record.scope, record.status, record.expires_at) == ("webhooks", "started", None)


@db
def test_mark_processed_stores_a_json_response_and_is_never_released():
    manager = IdempotencyManager()
    manager.start("op")
    manager.mark_processed("op", {"refund": "re_1", "amount": Decimal("5.00")})
    assert manager.get_response("op") == {"refund": "re_1", "amount": "5.00"}
    assert manager.is_done("op")
    assert manager.release("op") is False
    assert manager.check("op")
    # Without a prior claim too (recording an outcome learned elsewhere).
    manager.mark_processed("other")
    assert manager.check("other")
    assert manager.get_response("other") is None
    with pytest.raises(TypeError):
        manager.mark_processed("bad", object())


@db
def test_scopes_do_not_collide():
    a, b = IdempotencyManager(scope="a"), IdempotencyManager(scope="b")
    assert a.start("k")
    assert b.start("k")
    a.mark_processed("k", 1)
    assert b.get_response("k") is None


@db
def test_ttl_and_claim_ttl_set_expiry():
    manager = IdempotencyManager(scope="t", ttl=3600, claim_ttl=timedelta(seconds=60))
    before = timezone.now()
    manager.start("k")
    claim = IdempotencyRecord.objects.get(key="t:k")
    assert (
        before + timedelta(seconds=59) < claim.expires_at <= timezone.now() + timedelta(seconds=60)
    )
    manager.mark_processed("k", "ok")
    done = IdempotencyRecord.objects.get(key="t:k")
    assert done.expires_at > timezone.now() + timedelta(seconds=3500)


@db
def test_expired_records_are_absent_and_reclaimed():
    manager = IdempotencyManager(scope="x")
    past = timezone.now() - timedelta(seconds=1)
    IdempotencyRecord.objects.create(
        key="x:old", scope="x", status="done", response=1, expires_at=past
    )
    assert not manager.check("old")
    assert manager.get_response("old") is None
    assert manager.record("old") is None
    assert manager.start("old") is True
    record = IdempotencyRecord.objects.get(key="x:old")
    assert (record.status, record.response) == ("started", None)
    assert manager.start("old") is False
    # A live record with a future expiry is not reclaimed.
    future = timezone.now() + timedelta(hours=1)
    IdempotencyRecord.objects.create(key="x:live", scope="x", status="started", expires_at=future)
    assert manager.start("live") is False


@db
def test_an_abandoned_claim_expires_after_claim_ttl():
    manager = IdempotencyManager(scope="c", claim_ttl=1)
    assert manager.start("k")
    assert not manager.start("k")
    IdempotencyRecord.objects.filter(key="c:k").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert manager.start("k")


@db
def test_start_inside_an_outer_transaction_uses_a_savepoint():
    manager = IdempotencyManager()
    with transaction.atomic():
        assert manager.start("k")
        assert not manager.start("k")  # the IntegrityError did not break the transaction
        IdempotencyRecord.objects.count()
    assert manager.check("k")


# --- decorator -------------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def bump(self) -> int:
        with self.lock:
            self.calls += 1
            return self.calls


@db
def test_decorated_function_runs_once_per_key():
    counter = Counter()

    @idempotent(lambda order_id, **_: f"charge:{order_id}", scope="charges")
    def charge(order_id: str, *, amount: Decimal) -> dict[str, Any]:
        counter.bump()
        return {"order": order_id, "amount": amount}

    first = charge("o1", amount=Decimal("9.99"))
    assert first == {"order": "o1", "amount": Decimal("9.99")}  # the caller's own value
    again = charge("o1", amount=Decimal("9.99"))
    assert again == {"order": "o1", "amount": "9.99"}  # the stored JSON form
    assert counter.calls == 1
    charge("o2", amount=Decimal(1))
    assert counter.calls == 2
    assert charge.__name__ == "charge"


@db
def test_an_exception_releases_the_claim_so_a_retry_runs():
    attempts = Counter()

    @idempotent(lambda: "flaky", scope="retry")
    def flaky() -> str:
        if attempts.bump() == 1:
            raise RuntimeError("provider timed out")
        return "ok"

    with pytest.raises(RuntimeError):
        flaky()
    assert not IdempotencyManager(scope="retry").check("flaky")
    assert flaky() == "ok"
    assert flaky() == "ok"
    assert attempts.calls == 2


@db
def test_a_call_while_another_is_running_gets_payment_in_progress():
    manager = IdempotencyManager(scope="busy")
    manager.start("k")  # another worker is on it

    @idempotent(lambda: "k", manager=manager)
    def work() -> str:
        raise AssertionError("must not run")

    with pytest.raises(PaymentInProgress, match="already in progress") as err:
        work()
    assert err.value.http_status == 409


@db
def test_a_result_that_is_not_json_marks_the_key_done_and_raises():
    counter = Counter()

    @idempotent(lambda: "k", scope="nojson")
    def work() -> object:
        counter.bump()
        return object()

    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        work()
    assert work() is None  # done, never re-run
    assert counter.calls == 1


@db(transaction=True)
def test_a_database_error_inside_an_outer_transaction_rolls_the_claim_back():
    @idempotent(lambda: "k", scope="atomic")
    def work() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError), transaction.atomic():
        work()
    assert not IdempotencyManager(scope="atomic").check("k")


# --- races (PostgreSQL) ----------------------------------------------------------------------

JOIN_TIMEOUT = 60


def race(n: int, fn) -> list[Any]:
    barrier = threading.Barrier(n, timeout=JOIN_TIMEOUT)
    outcomes: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            outcomes[i] = fn(i)
        except BaseException as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_run_a_decorated_function_exactly_once():
    counter = Counter()

    @idempotent(lambda: "same-key", scope="race")
    def work() -> dict[str, int]:
        calls = counter.bump()
        time.sleep(0.2)  # long enough for every other thread to arrive while it runs
        return {"calls": calls}

    outcomes = race(20, lambda i: work())

    assert counter.calls == 1
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(isinstance(e, PaymentInProgress) for e in errors), errors
    assert results, "the thread that ran must get its result"
    assert all(r == {"calls": 1} for r in results)
    # Once done, everyone gets the stored result.
    assert work() == {"calls": 1}
    assert IdempotencyRecord.objects.get(key="race:same-key").status == "done"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_reclaiming_an_expired_key_one_wins():
    past = timezone.now() - timedelta(minutes=5)
    IdempotencyRecord.objects.create(key="race:old", scope="race", status="done", expires_at=past)
    manager = IdempotencyManager(scope="race")

    outcomes = race(20, lambda i: manager.start("old"))

    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert outcomes.count(True) == 1
    assert IdempotencyRecord.objects.get(key="race:old").status == "started"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_claiming_a_fresh_key_one_wins():
    manager = IdempotencyManager(scope="race")

    outcomes = race(20, lambda i: manager.start("fresh"))

    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert outcomes.count(True) == 1
