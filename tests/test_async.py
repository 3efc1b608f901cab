"""The async twins of the provider interface work from an event loop."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.types import PaymentRequest, ProviderStatus, RefundRequest, StatusRequest


@pytest.mark.django_db(transaction=True)
def test_sandbox_async_twins_run_inside_an_event_loop():
    provider = get_payment_provider("sandbox")
    request = PaymentRequest(
        payment_id="pay_async",
        amount=Money("12.50", "EUR"),
        idempotency_key="paydesk:pay_async:attempt-1:create",
        payment_method_token="pm_sandbox_visa",
    )

    async def flow():
        created = await provider.create_payment_async(request)
        again = await provider.create_payment_async(request)
        status = await provider.get_payment_status_async(
            StatusRequest(
                payment_id="pay_async",
                provider_payment_id=created.provider_payment_id,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
            )
        )
        refund = await provider.create_refund_async(
            RefundRequest(
                refund_id="re_async",
                payment_id="pay_async",
                provider_payment_id=created.provider_payment_id,
                amount=Money("2.50", "EUR"),
                idempotency_key="paydesk:re_async:refund",
            )
        )
        return created, again, status, refund

    try:
        created, again, status, refund = asyncio.run(flow())
    finally:
        # The ORM ran in asgiref's executor thread; close that thread's connection so the
        # test database can be dropped at the end of the run.
        asyncio.run(sync_to_async(connections.close_all)())
    assert created.status == ProviderStatus.CAPTURED
    assert again.provider_payment_id == created.provider_payment_id  # idempotent
    assert status.status == ProviderStatus.CAPTURED
    assert status.amount_captured == Money("12.50", "EUR")
    assert refund.status == "completed"
