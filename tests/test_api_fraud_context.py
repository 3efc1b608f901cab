"""The API passes the client's address to the fraud rules, so IP rules fire for API payments."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from paydesk.conf import paydesk_settings
from paydesk.models import BlocklistEntry, Payment


@pytest.mark.django_db
def test_an_ip_blocklist_entry_blocks_a_payment_processed_through_the_api(user):
    BlocklistEntry.objects.create(kind="ip_network", value="203.0.113.0/24", reason="test")
    config = {**paydesk_settings.user_settings, "FRAUD": {"RULES": ["blocklist"]}}
    client = APIClient(REMOTE_ADDR="203.0.113.7")
    client.force_authenticate(user)
    with override_settings(PAYDESK=config):
        created = client.post(
            "/paydesk/api/v1/payments/",
            {"amount": "10.00", "currency": "USD"},
            format="json",
        )
        assert created.status_code == 201, created.content
        pid = created.json()["id"]
        answer = client.post(
            f"/paydesk/api/v1/payments/{pid}/process/",
            {"payment_method_token": "pm_sandbox_visa"},
            format="json",
        )
    assert answer.status_code == 402, answer.content
    assert answer.json()["error"]["code"] == "fraud_blocked"
    assert Payment.objects.get(pk=pid).status == "failed"
