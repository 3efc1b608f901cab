"""Against Stripe's real test-mode API, only when PAYDESK_STRIPE_SECRET_KEY is set.

Run with ``PAYDESK_STRIPE_SECRET_KEY=sk_test_... pytest -m live``. Only test-mode keys are
accepted; nothing here can move real money.
"""

from __future__ import annotations

import os
import secrets

import pytest

from paydesk.money import Money
from paydesk.providers.stripe import StripeProvider
from paydesk.types import PaymentRequest, ProviderStatus, RefundRequest

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("PAYDESK_STRIPE_SECRET_KEY"),
        reason="set PAYDESK_STRIPE_SECRET_KEY (an sk_test_... key) to run against Stripe test mode",
    ),
]


def test_live_charge_decline_and_refund_in_test_mode():
    secret = os.environ["PAYDESK_STRIPE_SECRET_KEY"]
    assert secret.startswith(("sk_test_", "rk_test_")), "live tests only ever use test-mode keys"
    provider = StripeProvider(alias="stripe_live", options={"SECRET_KEY": secret})
    health = provider.health_check()
    assert health.ok, health.detail
    run = secrets.token_hex(8)

    def request(name: str, token: str) -> PaymentRequest:
        return PaymentRequest(
            payment_id=f"live_{run}_{name}",
            amount=Money("19.99", "USD"),
            idempotency_key=f"paydesk:live_{run}_{name}:attempt-1:create",
            payment_method_token=token,
            return_url="https://example.com/return/",
        )

    paid = provider.create_payment(request("ok", "pm_card_visa"))
    assert paid.status == ProviderStatus.CAPTURED
    assert paid.amount_captured == Money("19.99", "USD")
    assert provider.create_payment(request("ok", "pm_card_visa")).provider_payment_id == (
        paid.provider_payment_id
    )
    declined = provider.create_payment(request("declined", "pm_card_chargeDeclined"))
    assert (declined.status, declined.failure.code) == (ProviderStatus.FAILED, "card_declined")
    action = provider.create_payment(request("3ds", "pm_card_threeDSecure2Required"))
    assert action.status == ProviderStatus.REQUIRES_ACTION
    assert action.next_action.client_secret
    refund = provider.create_refund(
        RefundRequest(
            refund_id=f"live_{run}_refund",
            payment_id=f"live_{run}_ok",
            provider_payment_id=paid.provider_payment_id,
            amount=Money("5.00", "USD"),
            idempotency_key=f"paydesk:live_{run}_refund:refund",
            reason="requested_by_customer",
        )
    )
    assert refund.status in ("completed", "pending")
