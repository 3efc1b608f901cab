"""End to end: the sandbox signs and delivers its events through the real pipeline."""

import pytest
from django.test import override_settings

from paydesk import services
from paydesk.models import TransactionLog, WebhookEvent

SANDBOX_ON = {
    "DEFAULT_PROVIDER": "sandbox",
    "PROVIDERS": {
        "sandbox": {
            "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
            "OPTIONS": {"WEBHOOK_DELIVERY": "inprocess", "WEBHOOK_SECRET": "whsec_test"},
        }
    },
    "WEBHOOKS": {"PROCESS": "inline"},
}


@pytest.mark.django_db
@override_settings(PAYDESK=SANDBOX_ON)
def test_sandbox_delivers_a_signed_event_that_the_pipeline_applies_once(
    django_capture_on_commit_callbacks, recorder
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="10.00", currency="USD")
        payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "completed"
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "processed"
    assert delivery.event_type == "payment.succeeded"
    assert delivery.payment_id == payment.pk
    kinds = list(TransactionLog.objects.filter(payment=payment).values_list("kind", flat=True))
    assert kinds.count("capture") == 1
    assert "webhook_received" in kinds
    assert recorder.names.count("payment_confirmed") == 1
