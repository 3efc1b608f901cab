"""Against PayPal's real sandbox: skipped unless credentials are in the environment.

Run with::

    PAYDESK_PAYPAL_CLIENT_ID=... PAYDESK_PAYPAL_CLIENT_SECRET=... \\
        pytest tests/test_provider_paypal_live.py -m live

Nothing here needs a buyer: it checks the credentials, creates an order and reads it back.
"""

from __future__ import annotations

import os
import uuid

import pytest

from paydesk.money import Money
from paydesk.providers.paypal import PayPalProvider
from paydesk.types import PaymentRequest, ProviderStatus, StatusRequest

CLIENT_ID = os.environ.get("PAYDESK_PAYPAL_CLIENT_ID", "")
CLIENT_SECRET = os.environ.get("PAYDESK_PAYPAL_CLIENT_SECRET", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (CLIENT_ID and CLIENT_SECRET),
        reason="set PAYDESK_PAYPAL_CLIENT_ID and PAYDESK_PAYPAL_CLIENT_SECRET (sandbox app)",
    ),
]


@pytest.fixture
def provider() -> PayPalProvider:
    return PayPalProvider(
        alias="paypal",
        options={
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": CLIENT_SECRET,
            "MODE": os.environ.get("PAYDESK_PAYPAL_MODE", "sandbox"),
            "PUBLIC_BASE_URL": "https://example.com",
        },
    )


def test_live_health_check(provider: PayPalProvider) -> None:
    health = provider.health_check()
    assert health.ok, health.detail


def test_live_order_needs_the_buyer(provider: PayPalProvider) -> None:
    payment_id = f"pay_live_{uuid.uuid4().hex[:12]}"
    request = PaymentRequest(
        payment_id=payment_id,
        amount=Money("1.00", "USD"),
        idempotency_key=f"paydesk:{payment_id}:attempt-1:create",
        payment_method_token="paypal",
        description="paydesk live test",
        return_url="https://example.com/done/",
    )
    created = provider.create_payment(request)
    assert created.status == ProviderStatus.REQUIRES_ACTION
    assert created.next_action is not None
    assert "paypal.com" in created.next_action.redirect_url
    again = provider.create_payment(request)  # same PayPal-Request-Id: the same order
    assert again.provider_payment_id == created.provider_payment_id
    status = provider.get_payment_status(
        StatusRequest(
            payment_id=payment_id,
            provider_payment_id=created.provider_payment_id,
            idempotency_key=request.idempotency_key,
            amount=request.amount,
        )
    )
    assert status.status == ProviderStatus.REQUIRES_ACTION
