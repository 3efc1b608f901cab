"""The bank-transfer provider: the contract, its options, its records, the customer's page.

Approval, rejection, expiry and refunds through the services are in ``test_eft.py``; the
double-approval race on PostgreSQL in ``test_eft_concurrency.py``; the admin in
``test_provider_bank_transfer_admin.py``. Helpers shared by those files live here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from paydesk import services
from paydesk.exceptions import ConfigurationError, ProviderError, ProviderRequestError
from paydesk.models import AuditLog, BankTransfer, Payment
from paydesk.models.eft import REFERENCE_ALPHABET, new_transfer_reference, normalize_reference
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.bank_transfer import (
    TEST_APPROVED,
    TEST_DECLINED,
    TEST_PENDING,
    BankTransferProvider,
    format_iban,
    iban_is_valid,
)
from paydesk.providers.bank_transfer.receipts import parse_receipt_types, sniff
from paydesk.types import Capability, PaymentRequest, ProviderStatus, StatusRequest

from .contract import ContractSetup, ProviderContract

D = Decimal
ALIAS = "bank_transfer"
IBAN = "DE89370400440532013000"  # the standard example IBAN (valid checksum)
BANK_OPTIONS: dict[str, Any] = {
    "ACCOUNT_HOLDER": "Paydesk Test Shop Ltd",
    "IBAN": IBAN,
    "BIC": "COBADEFFXXX",
    "BANK_NAME": "Test Bank",
    "INSTRUCTIONS": "Write the reference exactly as shown.",
}
IN_MEMORY_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16


def paydesk_with_bank(**options: Any) -> dict[str, Any]:
    return {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {
            "sandbox": {"BACKEND": "sandbox", "OPTIONS": {"WEBHOOK_DELIVERY": "off"}},
            ALIAS: {"BACKEND": ALIAS, "OPTIONS": {**BANK_OPTIONS, **options}},
        },
    }


@pytest.fixture
def bank(settings) -> BankTransferProvider:
    """The bank-transfer provider configured under ``bank_transfer``; files in memory."""
    settings.PAYDESK = paydesk_with_bank()
    settings.STORAGES = IN_MEMORY_STORAGES
    provider = get_payment_provider(ALIAS)
    assert isinstance(provider, BankTransferProvider)
    return provider


@pytest.fixture
def staff(django_user_model):
    """A staff member allowed to work the approval queue."""
    user = django_user_model.objects.create_user(
        username="carol", email="carol@example.com", password="pw", is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="paydesk", codename__endswith="_banktransfer"
        )
    )
    return user


@pytest.fixture
def second_staff(django_user_model):
    user = django_user_model.objects.create_user(
        username="dave", email="dave@example.com", password="pw", is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="paydesk", codename__endswith="_banktransfer"
        )
    )
    return user


def awaiting_payment(amount: str = "150.00", currency: str = "EUR", **kwargs: Any) -> Payment:
    """A bank-transfer payment sent to the provider: waiting for the customer's transfer."""
    payment = services.create_payment(amount=amount, currency=currency, provider=ALIAS, **kwargs)
    payment = services.process_payment(payment=payment)
    assert payment.status == "requires_action", (payment.failure_code, payment.failure_message)
    return payment


def upload(name: str, content: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def page_url(payment: Payment) -> str:
    return reverse("paydesk:bank-transfer", args=[payment.pk])


# -- the contract ----------------------------------------------------------------------------

# The contract drives the adapter directly with these paydesk payment ids; a transfer record
# belongs to a real payment (one-to-one, with a foreign key), so the rows must exist.
CONTRACT_KEYS = (
    *("ok", "idem", "declined", "action", "capfull", "cappart", "void"),
    *("status", "refunds", "bad"),
)


class TestBankTransferContract(ProviderContract):
    @pytest.fixture
    def contract(self, settings):
        # TEST_MODE: the contract needs a payment that completes without a human (the
        # "approved" token) and a refusal (the "declined" token); see the provider's docstring.
        settings.PAYDESK = paydesk_with_bank(TEST_MODE=True, CURRENCIES="USD,EUR")
        settings.STORAGES = IN_MEMORY_STORAGES
        for key in CONTRACT_KEYS:
            Payment.objects.create(
                id=f"pay_contract_{key}", amount=D("20.00"), currency="USD", provider=ALIAS
            )
        return ContractSetup(
            alias=ALIAS,
            currency="USD",
            success_token=TEST_APPROVED,
            decline_token=TEST_DECLINED,
            action_token=TEST_PENDING,
        )


# -- options ---------------------------------------------------------------------------------


def test_capabilities_are_the_documented_ones(bank):
    assert bank.capabilities == {
        Capability.CANCEL,
        Capability.REFUND,
        Capability.PARTIAL_REFUND,
        Capability.MULTIPLE_REFUNDS,
        Capability.SYNC,
        Capability.HOSTED_CHECKOUT,
    }
    assert not bank.supports(Capability.WEBHOOKS)
    assert not bank.supports(Capability.CAPTURE)
    assert bank.is_configured
    assert bank.info().display_name == "Bank transfer"


def test_defaults():
    provider = BankTransferProvider(alias="bt", options={"ACCOUNT_HOLDER": "A", "IBAN": IBAN})
    assert provider.expiry_hours == 72
    assert provider.receipt_max_size == 5 * 1024 * 1024
    assert provider.receipt_types == ("pdf", "png", "jpeg")
    assert provider.four_eyes is False
    assert provider.test_mode is False
    assert provider.reference_prefix == "PD"


def test_options_from_the_environment_are_strings():
    provider = BankTransferProvider(
        alias="bt",
        options={
            "ACCOUNT_HOLDER": "A",
            "IBAN": "de89 3704 0044 0532 0130 00",
            "SWIFT": "cobadeff",
            "EXPIRY_HOURS": "24",
            "RECEIPT_MAX_SIZE": "1048576",
            "RECEIPT_TYPES": "pdf, jpg, image/png",
            "FOUR_EYES": "true",
            "REFERENCE_PREFIX": "shop",
            "CURRENCIES": "eur, try",
        },
    )
    assert provider.iban == IBAN
    assert provider.bic == "COBADEFF"
    assert provider.expiry_hours == 24
    assert provider.receipt_max_size == 1_048_576
    assert provider.receipt_types == ("pdf", "jpeg", "png")
    assert provider.four_eyes is True
    assert provider.reference_prefix == "SHOP"
    assert provider.supports_currency("EUR")
    assert provider.supports_currency("try")
    assert not provider.supports_currency("USD")
    assert provider.bank_details()["iban"] == "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("EXPIRY_HOURS", "0"),
        ("EXPIRY_HOURS", "soon"),
        ("RECEIPT_MAX_SIZE", "-1"),
        ("RECEIPT_TYPES", "pdf,exe"),
        ("FOUR_EYES", "maybe"),
        ("REFERENCE_PREFIX", "PD-SHOP"),
        ("CURRENCIES", "EUR,XXY"),
    ],
)
def test_bad_option_values_are_configuration_errors(settings, option, value):
    settings.PAYDESK = paydesk_with_bank(**{option: value})
    with pytest.raises(ConfigurationError, match=option):
        get_payment_provider(ALIAS)


def test_configuration_problems_name_the_options():
    missing = BankTransferProvider(alias="bt", options={})
    assert "OPTIONS['ACCOUNT_HOLDER'] is not set" in missing.configuration_problems()
    assert any("IBAN" in p and "ACCOUNT_NUMBER" in p for p in missing.configuration_problems())
    wrong = BankTransferProvider(
        alias="bt", options={"ACCOUNT_HOLDER": "A", "IBAN": "DE89370400440532013001", "BIC": "X"}
    )
    problems = " ".join(wrong.configuration_problems())
    assert "IBAN checksum" in problems
    assert "BIC" in problems
    domestic = BankTransferProvider(
        alias="bt", options={"ACCOUNT_HOLDER": "A", "ACCOUNT_NUMBER": "12345678"}
    )
    assert domestic.is_configured


def test_iban_helpers():
    assert iban_is_valid(IBAN)
    assert iban_is_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_is_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_is_valid("not an iban")
    assert format_iban("gb82west12345698765432") == "GB82 WEST 1234 5698 7654 32"


@pytest.mark.django_db
def test_an_unconfigured_provider_fails_the_payment_with_a_clear_message(settings):
    settings.PAYDESK = paydesk_with_bank(IBAN="", ACCOUNT_NUMBER="")
    payment = services.create_payment(amount="10.00", currency="EUR", provider=ALIAS)
    with pytest.raises(ProviderRequestError, match="not configured"):
        services.process_payment(payment=payment)
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert BankTransfer.objects.count() == 0


# -- references --------------------------------------------------------------------------------


def test_references_are_human_friendly():
    for _ in range(200):
        reference = new_transfer_reference("PD")
        prefix, first, second = reference.split("-")
        assert prefix == "PD"
        assert len(first) == len(second) == 4
        assert set(first + second) <= set(REFERENCE_ALPHABET)
    assert not set("01ILO") & set(REFERENCE_ALPHABET)
    assert new_transfer_reference("").count("-") == 1


def test_references_are_normalized_from_what_people_type():
    assert normalize_reference("pd 7kqm x3tr") == "PD-7KQM-X3TR"
    assert normalize_reference("PD7KQMX3TR") == "PD-7KQM-X3TR"
    assert normalize_reference(" PD-7KQM-X3TR ") == "PD-7KQM-X3TR"
    assert normalize_reference("7kqmx3tr") == "7KQM-X3TR"
    assert normalize_reference("PD-1") == "PD1"


@pytest.mark.django_db
def test_a_colliding_reference_is_retried(bank, monkeypatch):
    first = awaiting_payment()
    taken = first.provider_payment_id
    fresh = iter([taken, taken, "PD-ZZZZ-ZZZZ"])
    monkeypatch.setattr("paydesk.models.eft.new_transfer_reference", lambda prefix: next(fresh))
    second = awaiting_payment()
    assert second.provider_payment_id == "PD-ZZZZ-ZZZZ"
    assert BankTransfer.objects.count() == 2


@pytest.mark.django_db
def test_references_running_out_is_a_clear_error(bank, monkeypatch):
    taken = awaiting_payment().provider_payment_id
    monkeypatch.setattr("paydesk.models.eft.new_transfer_reference", lambda prefix: taken)
    payment = services.create_payment(amount="5.00", currency="EUR", provider=ALIAS)
    with pytest.raises(ProviderError, match="unused transfer reference") as caught:
        services.process_payment(payment=payment)
    assert caught.value.provider == ALIAS
    payment.refresh_from_db()
    assert payment.status == "failed"


# -- creating transfers --------------------------------------------------------------------------


@pytest.mark.django_db
def test_processing_creates_a_transfer_and_asks_the_customer_to_pay(bank, user):
    before = timezone.now()
    payment = awaiting_payment(amount="150.00", currency="EUR", user=user)

    transfer = BankTransfer.objects.get(payment=payment)
    assert payment.provider_payment_id == transfer.reference
    assert payment.next_action == {"type": "redirect", "redirect_url": page_url(payment)}
    assert transfer.status == "awaiting_transfer"
    assert (transfer.amount, transfer.currency) == (D("150.00"), "EUR")
    assert transfer.bank_details == {
        "account_holder": "Paydesk Test Shop Ltd",
        "iban": "DE89 3704 0044 0532 0130 00",
        "bic": "COBADEFFXXX",
        "bank_name": "Test Bank",
        "account_number": "",
        "instructions": "Write the reference exactly as shown.",
    }
    expected = before + dt.timedelta(hours=72)
    assert abs(transfer.expires_at - expected) < dt.timedelta(minutes=1)
    assert list(payment.ledger.values_list("kind", flat=True)) == [
        "payment_created",
        "submitted",
        "requires_action",
    ]


@pytest.mark.django_db
def test_the_bank_details_are_a_snapshot(bank, settings):
    payment = awaiting_payment()
    settings.PAYDESK = paydesk_with_bank(
        ACCOUNT_HOLDER="Someone Else", IBAN="GB82WEST12345698765432"
    )
    transfer = BankTransfer.objects.get(payment=payment)
    assert transfer.bank_details["account_holder"] == "Paydesk Test Shop Ltd"


@pytest.mark.django_db
def test_a_token_is_refused_outside_test_mode(bank):
    payment = services.create_payment(amount="10.00", currency="EUR", provider=ALIAS)
    with pytest.raises(ProviderRequestError) as caught:
        services.process_payment(payment=payment, payment_method_token=TEST_APPROVED)
    assert caught.value.provider == ALIAS
    assert "take no payment method token" in caught.value.message
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert not BankTransfer.objects.exists()


@pytest.mark.django_db
def test_the_account_currency_is_enforced(settings):
    settings.PAYDESK = paydesk_with_bank(CURRENCIES="EUR")
    with pytest.raises(Exception, match="does not accept USD"):
        services.create_payment(amount="10.00", currency="USD", provider=ALIAS)


@pytest.mark.django_db
def test_a_payment_has_one_transfer_so_a_retry_is_refused_clearly(bank, staff):
    from paydesk.services.eft import reject_transfer

    payment = awaiting_payment()
    reject_transfer(payment=payment, user=staff, reason="Wrong amount received")
    with pytest.raises(ProviderRequestError, match="already has bank transfer"):
        services.retry_payment(payment=payment)
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.attempt == 2
    assert BankTransfer.objects.filter(payment=payment).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        ("awaiting_transfer", ProviderStatus.REQUIRES_ACTION, None),
        ("receipt_uploaded", ProviderStatus.REQUIRES_ACTION, None),
        ("approved", ProviderStatus.CAPTURED, None),
        ("rejected", ProviderStatus.FAILED, "transfer_rejected"),
        ("expired", ProviderStatus.CANCELLED, None),
        ("cancelled", ProviderStatus.CANCELLED, None),
    ],
)
def test_status_is_read_from_the_record(bank, status, expected, code):
    payment = awaiting_payment(amount="42.00")
    BankTransfer.objects.filter(payment=payment).update(status=status, reason="No money")
    result = bank.get_payment_status(
        StatusRequest(
            payment_id=payment.pk,
            provider_payment_id=payment.provider_payment_id,
            idempotency_key="ignored",
            amount=payment.money,
        )
    )
    assert result.status == expected
    assert result.provider_payment_id == payment.provider_payment_id
    if code:
        assert result.failure is not None
        assert result.failure.code == code
        assert result.failure.message == "Bank transfer rejected: No money"
    if expected == ProviderStatus.CAPTURED:
        assert result.amount_captured == Money("42.00", "EUR")
    if expected == ProviderStatus.REQUIRES_ACTION:
        assert result.next_action is not None
        assert result.next_action.redirect_url == page_url(payment)


@pytest.mark.django_db
def test_status_of_an_unknown_transfer_is_not_found(bank):
    result = bank.get_payment_status(
        StatusRequest(
            payment_id="pay_nope",
            provider_payment_id="",
            idempotency_key="paydesk:pay_nope:attempt-1:create",
            amount=Money("1.00", "EUR"),
        )
    )
    assert result.status == ProviderStatus.NOT_FOUND


@pytest.mark.django_db
def test_sync_after_an_approval_adds_nothing(bank, staff):
    from paydesk.services.eft import approve_transfer

    payment = awaiting_payment()
    approve_transfer(payment=payment, user=staff)
    before = payment.ledger.count()
    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"
    assert payment.ledger.count() == before


@pytest.mark.django_db
def test_cancel_closes_the_transfer(bank):
    payment = awaiting_payment()
    payment = services.cancel_payment(payment=payment, reason="customer changed their mind")
    assert payment.status == "cancelled"
    transfer = BankTransfer.objects.get(payment=payment)
    assert transfer.status == "cancelled"
    assert transfer.reason == "customer changed their mind"


@pytest.mark.django_db
def test_an_approved_transfer_cannot_be_cancelled_by_the_provider(bank, staff):
    from paydesk.services.eft import approve_transfer
    from paydesk.types import CancelRequest

    payment = awaiting_payment()
    approve_transfer(payment=payment, user=staff)
    with pytest.raises(ProviderRequestError, match="refund an approved one"):
        bank.cancel_payment(
            CancelRequest(
                payment_id=payment.pk,
                provider_payment_id=payment.provider_payment_id,
                idempotency_key="k",
            )
        )


@pytest.mark.django_db
def test_the_return_view_reports_the_waiting_payment(bank, client):
    payment = awaiting_payment()
    response = client.get(reverse("paydesk:payment-return", args=[payment.pk]))
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "requires_action"


@pytest.mark.django_db
def test_create_payment_directly_is_idempotent_per_key(bank):
    payment = Payment.objects.create(
        id="pay_direct", amount=D("5.00"), currency="EUR", provider=ALIAS
    )
    request = PaymentRequest(
        payment_id=payment.pk, amount=Money("5.00", "EUR"), idempotency_key="paydesk:k"
    )
    first = bank.create_payment(request)
    again = bank.create_payment(request)
    assert first.provider_payment_id == again.provider_payment_id
    assert BankTransfer.objects.count() == 1


# -- receipts: content sniffing --------------------------------------------------------------


def test_sniffing_reads_the_magic_numbers():
    assert sniff(PDF) == "pdf"
    assert sniff(PNG) == "png"
    assert sniff(JPEG) == "jpeg"
    assert sniff(b"GIF89a....") == "gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff(b"Hello, I am a PDF, honest") is None
    assert sniff(b"") is None
    assert parse_receipt_types(["PDF", ".png", "image/jpeg", "jpg"]) == ("pdf", "png", "jpeg")


# -- the customer's instructions page --------------------------------------------------------


@pytest.mark.django_db
class TestInstructionsPage:
    def test_shows_the_bank_details_and_reference(self, bank, user, client):
        payment = awaiting_payment(amount="150.00", user=user)
        client.force_login(user)
        response = client.get(page_url(payment))
        assert response.status_code == 200
        body = response.content.decode()
        assert payment.provider_payment_id in body
        assert "DE89 3704 0044 0532 0130 00" in body
        assert "COBADEFFXXX" in body
        assert "Paydesk Test Shop Ltd" in body
        assert "Test Bank" in body
        assert "Write the reference exactly as shown." in body
        assert "150.00" in body
        assert 'enctype="multipart/form-data"' in body
        assert "csrfmiddlewaretoken" in body
        assert response["Cache-Control"].startswith("max-age=0")

    @pytest.mark.parametrize(
        ("name", "content", "content_type"),
        [
            ("receipt.pdf", PDF, "application/pdf"),
            ("scan.PNG", PNG, "image/png"),
            ("photo.jpg", JPEG, "image/jpeg"),
            ("no-extension", PDF, "application/octet-stream"),
        ],
    )
    def test_a_valid_receipt_is_stored(self, bank, user, client, name, content, content_type):
        payment = awaiting_payment(user=user)
        client.force_login(user)
        response = client.post(page_url(payment), {"receipt": upload(name, content, content_type)})
        assert response.status_code == 302
        assert response["Location"] == page_url(payment) + "?uploaded=1"

        transfer = BankTransfer.objects.get(payment=payment)
        assert transfer.status == "receipt_uploaded"
        assert transfer.receipt_uploaded_by == user
        assert transfer.receipt_size == len(content)
        assert transfer.receipt.name.startswith("paydesk/receipts/")
        assert transfer.receipt.name.split("/")[-1].startswith(transfer.reference)
        assert name.lower() not in transfer.receipt.name  # the customer's file name is not kept
        with default_storage.open(transfer.receipt.name) as stored:
            assert stored.read() == content
        entry = AuditLog.objects.get(action="eft_receipt_uploaded")
        assert (entry.actor, entry.object_id) == (user, payment.pk)
        assert entry.ip_address == "127.0.0.1"
        assert payment.ledger.filter(kind="note").count() == 1

        page = client.get(response["Location"]).content.decode()
        assert "We have your receipt" in page

    def test_the_stored_extension_comes_from_the_content(self, bank, user, client):
        payment = awaiting_payment(user=user)
        client.force_login(user)
        client.post(page_url(payment), {"receipt": upload("receipt.pdf", PNG)})
        transfer = BankTransfer.objects.get(payment=payment)
        assert transfer.receipt.name.endswith(".png")
        assert transfer.receipt_content_type == "image/png"

    def test_a_text_file_named_pdf_is_refused(self, bank, user, client):
        payment = awaiting_payment(user=user)
        client.force_login(user)
        fake = upload("receipt.pdf", b"I paid, trust me.\n", "application/pdf")
        response = client.post(page_url(payment), {"receipt": fake})
        assert response.status_code == 400
        body = response.content.decode()
        assert "its content is not PDF, PNG or JPEG" in body
        transfer = BankTransfer.objects.get(payment=payment)
        assert transfer.status == "awaiting_transfer"
        assert not transfer.receipt

    def test_a_disallowed_extension_is_refused(self, bank, user, client):
        payment = awaiting_payment(user=user)
        client.force_login(user)
        response = client.post(page_url(payment), {"receipt": upload("receipt.exe", PDF)})
        assert response.status_code == 400
        assert "Receipts must be PDF, PNG or JPEG files" in response.content.decode()

    def test_a_type_not_in_receipt_types_is_refused(self, settings, user, client):
        settings.PAYDESK = paydesk_with_bank(RECEIPT_TYPES="pdf")
        settings.STORAGES = IN_MEMORY_STORAGES
        payment = awaiting_payment(user=user)
        client.force_login(user)
        response = client.post(page_url(payment), {"receipt": upload("scan", PNG)})
        assert response.status_code == 400
        assert "is a PNG file" in response.content.decode()

    def test_an_oversized_receipt_is_refused(self, settings, user, client):
        settings.PAYDESK = paydesk_with_bank(RECEIPT_MAX_SIZE=1024)
        settings.STORAGES = IN_MEMORY_STORAGES
        payment = awaiting_payment(user=user)
        client.force_login(user)
        big = upload("receipt.pdf", PDF + b"0" * 2048)
        response = client.post(page_url(payment), {"receipt": big})
        assert response.status_code == 400
        assert "files up to" in response.content.decode()
        assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

    def test_a_huge_upload_is_refused_before_it_is_read(self, settings, user, client):
        settings.PAYDESK = paydesk_with_bank(RECEIPT_MAX_SIZE=1024)
        settings.STORAGES = IN_MEMORY_STORAGES
        payment = awaiting_payment(user=user)
        client.force_login(user)
        huge = upload("receipt.pdf", PDF + b"0" * (200 * 1024))
        response = client.post(page_url(payment), {"receipt": huge})
        assert response.status_code == 413
        assert "too large" in response.content.decode()

    def test_an_empty_or_missing_file_is_refused(self, bank, user, client):
        payment = awaiting_payment(user=user)
        client.force_login(user)
        missing = client.post(page_url(payment), {})
        assert missing.status_code == 400
        assert "Choose a receipt file" in missing.content.decode()
        empty = client.post(page_url(payment), {"receipt": upload("receipt.pdf", b"")})
        assert empty.status_code == 400
        assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

    def test_csrf_is_enforced(self, bank, user):
        payment = awaiting_payment(user=user)
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        response = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert response.status_code == 403
        assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

        page = client.get(page_url(payment))
        token = page.cookies["csrftoken"].value
        ok = client.post(
            page_url(payment),
            {"receipt": upload("receipt.pdf", PDF), "csrfmiddlewaretoken": token},
        )
        assert ok.status_code == 302

    def test_another_user_is_refused(self, bank, user, other_user, client):
        payment = awaiting_payment(user=user)
        client.force_login(other_user)
        assert client.get(page_url(payment)).status_code == 403
        response = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert response.status_code == 403
        assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

    def test_an_anonymous_visitor_is_asked_to_log_in(self, bank, user, client, settings):
        settings.LOGIN_URL = "/login/"
        payment = awaiting_payment(user=user)
        response = client.get(page_url(payment))
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
        posted = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert posted.status_code == 302
        assert BankTransfer.objects.get(payment=payment).status == "awaiting_transfer"

    def test_a_guest_payment_is_open_to_whoever_has_the_link(self, bank, client):
        payment = awaiting_payment(customer_email="guest@example.com")
        assert payment.user is None
        assert client.get(page_url(payment)).status_code == 200
        response = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert response.status_code == 302
        transfer = BankTransfer.objects.get(payment=payment)
        assert transfer.status == "receipt_uploaded"
        assert transfer.receipt_uploaded_by is None
        assert AuditLog.objects.get(action="eft_receipt_uploaded").actor_label == "anonymous"

    def test_staff_with_permission_may_record_a_receipt(self, bank, user, staff, client):
        payment = awaiting_payment(user=user)
        client.force_login(staff)
        response = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert response.status_code == 302
        assert BankTransfer.objects.get(payment=payment).receipt_uploaded_by == staff

    def test_a_new_receipt_replaces_the_old_file(
        self, bank, user, client, django_capture_on_commit_callbacks
    ):
        payment = awaiting_payment(user=user)
        client.force_login(user)
        client.post(page_url(payment), {"receipt": upload("a.pdf", PDF)})
        first = BankTransfer.objects.get(payment=payment).receipt.name
        with django_capture_on_commit_callbacks(execute=True):  # deleted once committed
            client.post(page_url(payment), {"receipt": upload("b.png", PNG)})
        second = BankTransfer.objects.get(payment=payment).receipt.name
        assert first != second
        assert default_storage.exists(second)
        assert not default_storage.exists(first)

    def test_a_decided_transfer_shows_no_form_and_refuses_uploads(self, bank, user, staff, client):
        from paydesk.services.eft import approve_transfer

        payment = awaiting_payment(user=user)
        approve_transfer(payment=payment, user=staff)
        client.force_login(user)
        page = client.get(page_url(payment)).content.decode()
        assert "payment is complete" in page
        assert "<form" not in page
        response = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert response.status_code == 409
        assert "already approved" in response.content.decode()

    def test_uploads_after_the_expiry_time_are_refused(self, bank, user, client):
        payment = awaiting_payment(user=user)
        BankTransfer.objects.filter(payment=payment).update(
            expires_at=timezone.now() - dt.timedelta(minutes=1)
        )
        client.force_login(user)
        response = client.post(page_url(payment), {"receipt": upload("receipt.pdf", PDF)})
        assert response.status_code == 409
        assert "payment window" in response.content.decode()

    def test_an_unknown_payment_is_404(self, bank, client):
        assert client.get(reverse("paydesk:bank-transfer", args=["pay_nope"])).status_code == 404
        sandbox = services.create_payment(amount="5.00", currency="USD")
        assert client.get(page_url(sandbox)).status_code == 404

    def test_only_get_and_post(self, bank, client):
        payment = awaiting_payment()
        assert client.put(page_url(payment)).status_code == 405
