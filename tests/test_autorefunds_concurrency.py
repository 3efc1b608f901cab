"""Automatic refunds run by two workers at once (PostgreSQL): every payment refunded once."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from paydesk import services
from paydesk.models import AutoRefund, Payment, Refund, SandboxCharge
from paydesk.services.autorefunds import run_auto_refunds

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_concurrent_runs_refund_each_duplicate_once():
    for _ in range(6):
        payment = services.create_payment(amount="10.00", currency="USD", reference="order-9")
        services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")

    barrier = threading.Barrier(4, timeout=60)
    reports: list[object] = []

    def worker() -> None:
        try:
            barrier.wait()
            reports.append(run_auto_refunds())
        except BaseException as exc:
            reports.append(exc)
        finally:
            connection.close()

    rules = {"RULES": ["duplicate_reference"]}
    with override_settings(PAYDESK={**settings.PAYDESK, "AUTO_REFUNDS": rules}):
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert not [r for r in reports if isinstance(r, BaseException)], reports
    assert Refund.objects.count() == 5
    assert Payment.objects.filter(status="refunded").count() == 5
    assert AutoRefund.objects.filter(status="refunded").count() == 5
    # The sandbox's remote side refunded each charge once, too.
    assert sum(len(charge.refunds) for charge in SandboxCharge.objects.all()) == 5
