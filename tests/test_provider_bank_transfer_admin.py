"""The bank-transfer approval queue in the Django admin: actions go through the services."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from paydesk.models import AuditLog, BankTransfer
from paydesk.services.eft import approve_transfer, record_receipt

from . import test_provider_bank_transfer as shared
from .test_provider_bank_transfer import (
    PDF,
    awaiting_payment,
    upload,
)

bank = shared.bank
second_staff = shared.second_staff
staff = shared.staff

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:paydesk_banktransfer_changelist"


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _act(client: Client, action: str, *transfers: BankTransfer, **extra: str):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [t.pk for t in transfers], **extra},
    )


def test_changelist_and_change_page_render_read_only(bank, staff_client, staff):
    payment = awaiting_payment()
    record_receipt(transfer=payment.provider_payment_id, file=upload("r.pdf", PDF), user=staff)
    transfer = BankTransfer.objects.get(payment=payment)

    changelist = staff_client.get(reverse(CHANGELIST), {"status__exact": "receipt_uploaded"})
    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count == 1
    assert transfer.reference in changelist.content.decode()

    change = staff_client.get(reverse("admin:paydesk_banktransfer_change", args=[transfer.pk]))
    assert change.status_code == 200
    body = change.content.decode()
    assert reverse("admin:paydesk_banktransfer_receipt", args=[transfer.pk]) in body
    assert 'type="file"' not in body  # the receipt changes only through the service
    assert staff_client.get(reverse("admin:paydesk_banktransfer_add")).status_code == 403


def test_the_receipt_is_served_to_staff_only(bank, staff_client, staff, client, user):
    payment = awaiting_payment()
    record_receipt(transfer=payment.provider_payment_id, file=upload("r.pdf", PDF), user=staff)
    transfer = BankTransfer.objects.get(payment=payment)
    url = reverse("admin:paydesk_banktransfer_receipt", args=[transfer.pk])

    response = staff_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Security-Policy"] == "sandbox"
    assert b"".join(response.streaming_content) == PDF

    client.force_login(user)  # not staff
    assert client.get(url).status_code == 302  # to the admin login

    other = awaiting_payment()
    no_receipt = BankTransfer.objects.get(payment=other)
    missing = reverse("admin:paydesk_banktransfer_receipt", args=[no_receipt.pk])
    assert staff_client.get(missing).status_code == 404


def test_approve_action_goes_through_the_service(bank, staff_client, staff):
    first, second = awaiting_payment(amount="10.00"), awaiting_payment(amount="20.00")
    transfers = list(BankTransfer.objects.filter(payment__in=[first, second]))

    response = _act(staff_client, "approve", *transfers)

    assert response.status_code == 302
    assert ("success", "Approved: 2") in _messages(response)
    for payment in (first, second):
        payment.refresh_from_db()
        assert payment.status == "completed"
    assert set(BankTransfer.objects.values_list("decided_by", flat=True)) == {staff.pk}
    assert AuditLog.objects.filter(action="eft_approved", success=True).count() == 2


def test_approve_action_reports_errors_as_messages(bank, staff_client, second_staff):
    payment = awaiting_payment()
    approve_transfer(payment=payment, user=second_staff)
    transfer = BankTransfer.objects.get(payment=payment)

    response = _act(staff_client, "approve", transfer)

    messages = _messages(response)
    assert len(messages) == 1
    level, text = messages[0]
    assert level == "error"
    assert "already approved by dave" in text


def test_reject_action_asks_for_a_reason_first(bank, staff_client, staff):
    payment = awaiting_payment()
    transfer = BankTransfer.objects.get(payment=payment)

    page = _act(staff_client, "reject", transfer)
    assert page.status_code == 200
    body = page.content.decode()
    assert transfer.reference in body
    assert 'name="reason"' in body
    assert BankTransfer.objects.get(pk=transfer.pk).status == "awaiting_transfer"

    blank = _act(staff_client, "reject", transfer, apply="1", reason="  ")
    assert blank.status_code == 200
    assert "Give a reason" in blank.content.decode()
    assert BankTransfer.objects.get(pk=transfer.pk).status == "awaiting_transfer"

    done = _act(staff_client, "reject", transfer, apply="1", reason="No money arrived")
    assert done.status_code == 302
    assert ("success", "Rejected: 1") in _messages(done)
    transfer.refresh_from_db()
    assert (transfer.status, transfer.reason, transfer.decided_by) == (
        "rejected",
        "No money arrived",
        staff,
    )
    payment.refresh_from_db()
    assert payment.failure_code == "transfer_rejected"


def test_actions_need_the_change_permission(bank, django_user_model):
    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_banktransfer"))
    client = Client()
    client.force_login(viewer)
    payment = awaiting_payment()
    transfer = BankTransfer.objects.get(payment=payment)

    changelist = client.get(reverse(CHANGELIST))
    assert changelist.status_code == 200
    assert 'value="approve"' not in changelist.content.decode()
    _act(client, "approve", transfer)
    assert BankTransfer.objects.get(pk=transfer.pk).status == "awaiting_transfer"
