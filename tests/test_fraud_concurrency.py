"""The velocity rule under real concurrency (PostgreSQL, threads, row locks).

Twenty attempts from one user, released together on a barrier, each in its own thread
and database connection: with a limit of five, exactly five are sent and fifteen blocked,
whatever the interleaving. Without the screening locks every thread would count the same
zero earlier attempts and all twenty would pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import FraudBlocked
from paydesk.models import FraudCheck, Payment, SandboxCharge

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JOIN_TIMEOUT = 60


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
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


def velocity(by: str, limit: int) -> override_settings:
    rule = {"RULE": "velocity", "OPTIONS": {"by": by, "limit": limit, "action": "block"}}
    return override_settings(PAYDESK={**settings.PAYDESK, "FRAUD": {"RULES": [rule]}})


def test_twenty_concurrent_attempts_from_one_user_hold_the_limit_exactly(user):
    payments = [
        services.create_payment(amount="10.00", currency="USD", user=user) for _ in range(20)
    ]

    with velocity("user", 5):
        outcomes = race(
            20,
            lambda i: services.process_payment(
                payment=payments[i].pk, payment_method_token="pm_sandbox_visa"
            ),
        )

    sent = [o for o in outcomes if isinstance(o, Payment)]
    blocked = [o for o in outcomes if isinstance(o, FraudBlocked)]
    others = [o for o in outcomes if not isinstance(o, Payment | FraudBlocked)]
    assert not others, others
    assert len(sent) == 5
    assert len(blocked) == 15
    assert all(p.status == "completed" for p in sent)
    assert SandboxCharge.objects.count() == 5
    assert Payment.objects.filter(status="completed").count() == 5
    assert Payment.objects.filter(status="failed", failure_code="fraud_blocked").count() == 15
    assert FraudCheck.objects.filter(user=user).count() == 20
    # The checks were counted one after another: the n-th allowed saw n-1 before it.
    assert FraudCheck.objects.filter(decision="allow").count() == 5


def test_concurrent_attempts_from_one_ip_by_many_users_hold_the_limit(django_user_model):
    users = [
        django_user_model.objects.create_user(username=f"u{i}", email=f"u{i}@example.com")
        for i in range(12)
    ]
    payments = [services.create_payment(amount="10.00", currency="USD", user=u) for u in users]

    with velocity("ip", 3):
        outcomes = race(
            12,
            lambda i: services.process_payment(
                payment=payments[i].pk,
                payment_method_token="pm_sandbox_visa",
                fraud_context={"ip_address": "203.0.113.50"},
            ),
        )

    assert sum(isinstance(o, Payment) for o in outcomes) == 3
    assert sum(isinstance(o, FraudBlocked) for o in outcomes) == 9
