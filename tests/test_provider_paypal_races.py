"""The return view, the approval webhook and redeliveries racing for one PayPal order.

Threads start together on a barrier and use real transactions (SQLite serialises writers
with its busy timeout; PostgreSQL takes row locks). Whatever the interleaving, PayPal sees one
capture (the completion ``PayPal-Request-Id`` is derived from the order id) and paydesk's
ledger records one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import PaymentInProgress
from paydesk.models import TransactionLog, WebhookEvent
from paydesk.providers import get_payment_provider
from paydesk.states import LedgerKind
from paydesk.webhooks.pipeline import WebhookRequest, handle

from .fakes.paypal_api import REDIRECT, FakePayPal, PayPalWebhookKit, paydesk_settings

pytestmark = pytest.mark.django_db(transaction=True)

JOIN_TIMEOUT = 60


def race(fns: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(fns), timeout=JOIN_TIMEOUT)
    outcomes: list[Any] = [None] * len(fns)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            outcomes[i] = fns[i]()
        except BaseException as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(fns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    return outcomes


def test_return_view_and_webhooks_race_for_one_capture() -> None:
    fake = FakePayPal()
    kit = PayPalWebhookKit(fake=fake)
    fake.slow(0.01)
    with override_settings(PAYDESK=paydesk_settings(fake, kit)):
        get_payment_provider("paypal")
        payment = services.create_payment(amount="30.00", currency="EUR", provider="paypal")
        payment = services.process_payment(payment=payment, payment_method_token=REDIRECT)
        order_id = payment.provider_payment_id
        fake.approve(order_id)
        approved = json.dumps(kit.event("CHECKOUT.ORDER.APPROVED", fake.order(order_id))).encode()
        headers = kit.sign(approved)

        def deliver() -> int:
            return handle(
                WebhookRequest(
                    alias="paypal", body=approved, headers=headers, remote_addr="1.2.3.4"
                )
            ).status

        def confirm() -> str:
            return services.confirm_payment(payment=payment.pk).status

        outcomes = race([confirm, confirm, deliver, deliver, deliver])
        unexpected = [
            o
            for o in outcomes
            if isinstance(o, BaseException) and not isinstance(o, PaymentInProgress)
        ]
        assert not unexpected, unexpected
        payment.refresh_from_db()
        if payment.status != "completed":  # every confirm lost the lease race and the
            payment = services.confirm_payment(payment=payment)  # webhook is still failing
        assert payment.status == "completed"
        assert fake.count("capture") == 1
        captures = TransactionLog.objects.filter(payment=payment, kind=LedgerKind.CAPTURE)
        assert captures.count() == 1
        assert WebhookEvent.objects.filter(provider="paypal").count() == 1
