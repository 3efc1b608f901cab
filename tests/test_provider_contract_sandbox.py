"""The sandbox provider honours the provider contract."""

from __future__ import annotations

import pytest
from django.test import override_settings

from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.sandbox import webhooks as sandbox_webhooks
from paydesk.security.signatures import SandboxWebhookVerifier

from .contract import ContractSetup, ProviderContract, WebhookSigner

SECRET = "whsec_contract_sandbox"
PAYDESK = {
    "DEFAULT_PROVIDER": "sandbox",
    "PROVIDERS": {
        "sandbox": {
            "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
            "OPTIONS": {"WEBHOOK_DELIVERY": "off", "WEBHOOK_SECRET": SECRET},
        }
    },
}
HEADER = "Paydesk-Sandbox-Signature"


def _sign(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    return {HEADER: SandboxWebhookVerifier([SECRET]).sign(body, timestamp=timestamp)}


def _success_event(provider_payment_id: str, payment_id: str, amount: Money) -> dict:
    return sandbox_webhooks.build_event(
        "payment.succeeded",
        {
            "id": provider_payment_id,
            "payment_id": payment_id,
            "amount": str(amount.amount),
            "currency": amount.currency,
            "status": "captured",
            "captured_amount": str(amount.amount),
        },
    )


class TestSandboxContract(ProviderContract):
    @pytest.fixture
    def contract(self):
        with override_settings(PAYDESK=PAYDESK):
            assert get_payment_provider("sandbox").alias == "sandbox"
            yield ContractSetup(
                alias="sandbox",
                success_token="pm_sandbox_visa",
                decline_token="pm_sandbox_declined",
                action_token="pm_sandbox_3ds",
                signer=WebhookSigner(
                    sign=_sign,
                    sign_with_wrong_secret=lambda body: {
                        HEADER: SandboxWebhookVerifier(["whsec_wrong"]).sign(body)
                    },
                    success_event=_success_event,
                    unknown_event=lambda: sandbox_webhooks.build_event(
                        "customer.created", {"id": "cus_1", "currency": "USD"}
                    ),
                ),
            )
