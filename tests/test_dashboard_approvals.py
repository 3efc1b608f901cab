"""The dashboard's approval queues: bank transfers (with receipts) and fraud reviews.

Every verdict goes through ``paydesk.services.eft`` / ``paydesk.services.fraud``; the tests
check the page shows what waits, that the services' refusals (a second approval, four eyes,
no reason) come back as messages rather than errors, and who may do what.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from paydesk import services
from paydesk.models import BankTransfer, FraudAssessment, Payment
from paydesk.services.eft import record_receipt

from .test_provider_bank_transfer import (
    IN_MEMORY_STORAGES,
    PDF,
    awaiting_payment,
    paydesk_with_bank,
    upload,
)

pytestmark = pytest.mark.django_db

PAGE = "paydesk_dashboard:approvals"
BIG_AMOUNTS = {"RULE": "amount_limit", "OPTIONS": {"limits": {"USD": "500.00"}, "score": 60}}


@pytest.fixture(autouse=True)
def config(settings):
    settings.PAYDESK = {**paydesk_with_bank(), "FRAUD": {"RULES": [BIG_AMOUNTS]}}
    settings.STORAGES = IN_MEMORY_STORAGES


def staff_with(django_user_model: Any, name: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def approver(django_user_model):
    return staff_with(
        django_user_model, "approver", "change_banktransfer", "change_fraudassessment"
    )


@pytest.fixture
def approver_client(client, approver):
    client.force_login(approver)
    return client


def held(amount: str = "750.00", **kwargs: Any) -> Payment:
    payment = services.create_payment(amount=amount, currency="USD", provider="sandbox", **kwargs)
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "pending"
    return payment


def with_receipt(payment: Payment, by: Any = None) -> BankTransfer:
    transfer = BankTransfer.objects.get(payment=payment)
    record_receipt(transfer=transfer, file=upload("receipt.pdf", PDF), user=by)
    return BankTransfer.objects.get(pk=transfer.pk)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def url(name: str, payment: Payment) -> str:
    return reverse(f"paydesk_dashboard:{name}", args=[payment.pk])


# -- who may see and act ------------------------------------------------------------------------


def test_anonymous_are_sent_to_log_in_and_non_staff_refused(client, user):
    payment = awaiting_payment()
    assert client.get(reverse(PAGE)).status_code == 302
    response = client.post(url("approval-transfer-approve", payment))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    client.force_login(user)
    assert client.get(reverse(PAGE)).status_code == 403
    assert client.post(url("approval-transfer-approve", payment)).status_code == 403
    assert client.get(url("approval-transfer-receipt", payment)).status_code == 403
    assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"


def test_staff_without_permissions_see_the_queues_but_cannot_decide(client, django_user_model):
    transfer_payment = awaiting_payment()
    with_receipt(transfer_payment)
    review_payment = held()
    client.force_login(staff_with(django_user_model, "viewer"))
    page = client.get(reverse(PAGE)).content.decode()
    assert f'data-transfer="{transfer_payment.pk}"' in page
    assert f'data-review="{review_payment.pk}"' in page
    assert "data-action=" not in page
    assert "data-receipt-link" not in page
    assert 'data-no-permission="transfers"' in page

    for name, payment, data in (
        ("approval-transfer-approve", transfer_payment, {}),
        ("approval-transfer-reject", transfer_payment, {"reason": "no"}),
        ("approval-review-approve", review_payment, {}),
        ("approval-review-reject", review_payment, {"reason": "no"}),
    ):
        assert client.post(url(name, payment), data).status_code == 403
    assert client.get(url("approval-transfer-receipt", transfer_payment)).status_code == 403
    assert BankTransfer.objects.get(payment=transfer_payment).status == "receipt_uploaded"
    assert FraudAssessment.objects.get(payment=review_payment).review_status == "pending"
    assert Payment.objects.get(pk=review_payment.pk).status == "pending"


def test_one_permission_does_not_grant_the_other_queue(client, django_user_model):
    review_payment = held()
    client.force_login(staff_with(django_user_model, "eft-only", "change_banktransfer"))
    assert client.post(url("approval-review-approve", review_payment)).status_code == 403
    assert Payment.objects.get(pk=review_payment.pk).status == "pending"


def test_get_on_actions_is_405_and_unknown_ids_404(approver_client):
    payment = awaiting_payment()
    for name in (
        "approval-transfer-approve",
        "approval-transfer-reject",
        "approval-review-approve",
        "approval-review-reject",
    ):
        assert approver_client.get(url(name, payment)).status_code == 405
        missing = reverse(f"paydesk_dashboard:{name}", args=["pay_unknown"])
        assert approver_client.post(missing, {"reason": "x"}).status_code == 404
    missing = reverse("paydesk_dashboard:approval-transfer-receipt", args=["pay_unknown"])
    assert approver_client.get(missing).status_code == 404
    # A transfer without a receipt has nothing to download.
    assert approver_client.get(url("approval-transfer-receipt", payment)).status_code == 404


# -- bank transfers -----------------------------------------------------------------------------


def test_the_queue_shows_amount_reference_customer_and_receipt(approver_client, user):
    payment = awaiting_payment(amount="150.00", currency="EUR", customer_email="cu@example.com")
    transfer = with_receipt(payment)
    decided = awaiting_payment()
    services.eft.reject_transfer(payment=decided, user=user, reason="never arrived")
    page = approver_client.get(reverse(PAGE)).content.decode()
    card = re.search(
        rf'<article class="card" data-transfer="{payment.pk}"(.*?)</article>', page, re.S
    )
    assert card
    body = card.group(1)
    assert transfer.reference in body
    assert "150" in body
    assert "EUR" in body or "€" in body
    assert "cu@example.com" in body
    assert url("approval-transfer-receipt", payment) in body
    assert f'data-transfer="{decided.pk}"' not in page  # decided: no longer waiting

    receipt = approver_client.get(url("approval-transfer-receipt", payment))
    assert receipt.status_code == 200
    assert b"".join(receipt.streaming_content) == PDF
    assert receipt["Content-Security-Policy"] == "sandbox"
    assert receipt["X-Content-Type-Options"] == "nosniff"
    assert transfer.reference in receipt["Content-Disposition"]  # never the customer's name


def test_approve_goes_through_the_service_and_twice_is_a_message(approver_client, approver):
    payment = awaiting_payment()
    response = approver_client.post(
        url("approval-transfer-approve", payment), {"note": "on statement"}, follow=True
    )
    assert response.status_code == 200
    assert any("approved" in m for m in messages_of(response))
    transfer = BankTransfer.objects.get(payment=payment)
    assert transfer.status == "approved"
    assert transfer.decided_by == approver
    assert transfer.note == "on statement"
    assert Payment.objects.get(pk=payment.pk).status == "completed"

    again = approver_client.post(url("approval-transfer-approve", payment), follow=True)
    assert again.status_code == 200
    assert any("already approved by approver" in m for m in messages_of(again))
    assert [m.level_tag for m in again.context["messages"]] == ["error"]


def test_reject_needs_a_reason_and_records_it(approver_client):
    payment = awaiting_payment()
    response = approver_client.post(
        url("approval-transfer-reject", payment), {"reason": " "}, follow=True
    )
    assert any("Give a reason" in m for m in messages_of(response))
    assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

    hostile = "<script>alert(1)</script> wrong amount"
    response = approver_client.post(
        url("approval-transfer-reject", payment), {"reason": hostile}, follow=True
    )
    transfer = BankTransfer.objects.get(payment=payment)
    assert transfer.status == "rejected"
    assert transfer.reason == hostile
    assert Payment.objects.get(pk=payment.pk).status == "failed"
    assert "<script>alert(1)" not in response.content.decode()


def test_four_eyes_refusal_is_shown_as_a_message(settings, approver_client, approver):
    settings.PAYDESK = {**paydesk_with_bank(FOUR_EYES=True)}
    payment = awaiting_payment()
    with_receipt(payment, by=approver)
    response = approver_client.post(url("approval-transfer-approve", payment), follow=True)
    assert any("Four-eyes" in m for m in messages_of(response))
    assert BankTransfer.objects.get(payment=payment).status == "receipt_uploaded"


# -- fraud reviews ------------------------------------------------------------------------------


def test_reviews_show_score_and_rules(approver_client):
    payment = held(customer_email="<b>bold</b>@example.com")
    page = approver_client.get(reverse(PAGE)).content.decode()
    card = re.search(
        rf'<article class="card" data-review="{payment.pk}"(.*?)</article>', page, re.S
    )
    assert card
    body = card.group(1)
    assert 'data-score="60"' in page
    assert "amount_limit" in body
    assert "750.00 USD is above the limit of 500.00 USD." in body
    assert "<b>bold</b>" not in body


def test_approve_review_sends_the_payment(approver_client, approver):
    payment = held()
    response = approver_client.post(
        url("approval-review-approve", payment), {"note": "known buyer"}, follow=True
    )
    assert any("approved and sent" in m and "completed" in m for m in messages_of(response))
    assessment = FraudAssessment.objects.get(payment=payment)
    assert assessment.review_status == "approved"
    assert assessment.reviewed_by == approver
    assert Payment.objects.get(pk=payment.pk).status == "completed"
    again = approver_client.post(url("approval-review-approve", payment), follow=True)
    assert any("not held for a fraud review" in m for m in messages_of(again))


def test_reject_review_needs_a_reason(approver_client):
    payment = held()
    response = approver_client.post(
        url("approval-review-reject", payment), {"reason": ""}, follow=True
    )
    assert any("Give a reason" in m for m in messages_of(response))
    assert Payment.objects.get(pk=payment.pk).status == "pending"
    approver_client.post(url("approval-review-reject", payment), {"reason": "stolen card"})
    assessment = FraudAssessment.objects.get(payment=payment)
    assert assessment.review_status == "rejected"
    assert assessment.review_note == "stolen card"
    assert Payment.objects.get(pk=payment.pk).status == "failed"


def test_the_customer_cannot_approve_their_own_held_payment(client, django_user_model):
    customer = staff_with(django_user_model, "self", "change_fraudassessment")
    payment = held(user=customer)
    client.force_login(customer)
    response = client.post(url("approval-review-approve", payment), follow=True)
    assert any("cannot approve it" in m for m in messages_of(response))
    assert Payment.objects.get(pk=payment.pk).status == "pending"


# -- queries ------------------------------------------------------------------------------------


def _queries(client: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse(PAGE)).status_code == 200
    return len(queries)


def test_the_page_takes_the_same_number_of_queries_for_longer_queues(
    approver_client, django_user_model
):
    uploader = django_user_model.objects.create_user("uploader", password="pw")
    with_receipt(awaiting_payment(), by=uploader)
    held(user=uploader)
    few = _queries(approver_client)
    for index in range(6):
        customer = django_user_model.objects.create_user(f"c{index}", password="pw")
        with_receipt(awaiting_payment(user=customer), by=uploader)
        awaiting_payment()
        held(user=customer)
    assert _queries(approver_client) == few


def test_long_queues_are_paginated(approver_client):
    for _ in range(3):
        awaiting_payment()
    with override_settings(PAYDESK={**paydesk_with_bank(), "DASHBOARD": {"PAGE_SIZE": 2}}):
        first = approver_client.get(reverse(PAGE)).content.decode()
        second = approver_client.get(reverse(PAGE), {"transfers_page": 2}).content.decode()
    assert len(re.findall(r'data-transfer="', first)) == 2
    assert "transfers_page=2" in first
    assert len(re.findall(r'data-transfer="', second)) == 1
