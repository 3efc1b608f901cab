"""The admin pages for fraud screening: the blocklist, the review queue, checks, auto refunds."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from paydesk import services
from paydesk.models import AutoRefund, BlocklistEntry, FraudAssessment, FraudCheck

pytestmark = pytest.mark.django_db

HOLD_BIG = {
    "FRAUD": {
        "RULES": [{"RULE": "amount_limit", "OPTIONS": {"limits": {"USD": "100"}, "score": 60}}]
    }
}


def url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:paydesk_{model}_{view}", args=args)


@pytest.fixture
def held(user):
    with override_settings(PAYDESK={**settings.PAYDESK, **HOLD_BIG}):
        payments = []
        for amount in ("150.00", "250.00"):
            payment = services.create_payment(amount=amount, currency="USD", user=user)
            payments.append(
                services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
            )
    assert all(p.status == "pending" for p in payments)
    return payments


def test_blocklist_entries_are_added_normalized_and_attributed(admin_client, admin_user):
    response = admin_client.post(
        url("blocklistentry", "add"),
        {"kind": "ip_network", "value": "203.0.113.9/24", "reason": "botnet", "is_active": "on"},
    )
    assert response.status_code == 302
    entry = BlocklistEntry.objects.get()
    assert entry.value == "203.0.113.0/24"
    assert entry.created_by == admin_user

    bad = admin_client.post(
        url("blocklistentry", "add"), {"kind": "ip_network", "value": "not-an-ip"}
    )
    assert bad.status_code == 200
    assert "is not an IP address or network" in bad.content.decode()

    admin_client.post(
        url("blocklistentry", "changelist"),
        {"action": "deactivate", "_selected_action": [entry.pk]},
    )
    entry.refresh_from_db()
    assert entry.is_active is False


def test_the_review_queue_lists_held_payments(admin_client, held):
    page = admin_client.get(url("fraudassessment", "changelist"), {"held": "yes"})
    assert page.status_code == 200
    body = page.content.decode()
    assert held[0].pk in body
    assert held[1].pk in body
    detail = admin_client.get(url("fraudassessment", "change", FraudAssessment.objects.first().pk))
    assert detail.status_code == 200


def test_staff_approve_and_reject_from_the_admin(admin_client, admin_user, held):
    first, second = (FraudAssessment.objects.get(payment=p) for p in held)
    admin_client.post(
        url("fraudassessment", "changelist"),
        {"action": "approve", "_selected_action": [first.pk], "note": "regular customer"},
    )
    # Rejecting needs a reason: nothing happens without one.
    admin_client.post(
        url("fraudassessment", "changelist"),
        {"action": "reject", "_selected_action": [second.pk], "note": ""},
    )
    second.refresh_from_db()
    assert second.review_status == "pending"
    admin_client.post(
        url("fraudassessment", "changelist"),
        {"action": "reject", "_selected_action": [second.pk], "note": "mismatched address"},
    )

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.review_status, first.reviewed_by, first.review_note) == (
        "approved",
        admin_user,
        "regular customer",
    )
    assert first.payment.status == "completed"
    assert second.review_status == "rejected"
    assert second.payment.status == "failed"


def test_checks_and_auto_refunds_are_read_only(admin_client, held):
    check = FraudCheck.objects.first()
    assert admin_client.get(url("fraudcheck", "changelist")).status_code == 200
    page = admin_client.get(url("fraudcheck", "change", check.pk))
    assert page.status_code == 200
    assert "amount_limit" in page.content.decode()
    assert admin_client.get(url("fraudcheck", "add")).status_code == 403
    assert admin_client.get(url("autorefund", "changelist")).status_code == 200
    assert admin_client.get(url("fraudassessment", "add")).status_code == 403
    assert not AutoRefund.objects.exists()
