"""Bank transfers (EFT / wire) waiting for a staff member to confirm the money arrived.

This module owns one decision: what paydesk remembers about a manual bank transfer. One
``BankTransfer`` row per payment holds the unique reference the customer must quote, a
snapshot of the bank details they were shown, the receipt they uploaded (if any), and the
staff decision. The bank-transfer provider creates the row; ``paydesk.services.eft`` is the
only code that changes it afterwards (receipts, approvals, rejections, expiry). The payment's
own status still comes from its ledger: an approval appends a capture, a rejection a failure.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .fields import AmountField, CurrencyField

__all__ = [
    "REFERENCE_ALPHABET",
    "BankTransfer",
    "BankTransferStatus",
    "new_transfer_reference",
    "normalize_reference",
    "receipt_upload_to",
]

#: Digits and capitals without the look-alikes 0/O, 1/I/L, so a reference read over the
#: phone or typed from a printout comes out right.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_transfer_reference(prefix: str = "PD") -> str:
    """A fresh reference such as ``PD-7KQM-X3TR`` (8 random symbols, about 40 bits)."""
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    head = f"{prefix}-" if prefix else ""
    return f"{head}{body[:4]}-{body[4:]}"


def normalize_reference(value: str) -> str:
    """What a customer or a bank statement wrote, in the canonical ``PD-XXXX-XXXX`` form.

    Case, spaces and hyphens are forgiven: ``"pd 7kqm x3tr"`` and ``"PD7KQMX3TR"`` both give
    ``"PD-7KQM-X3TR"``. Anything too short to be a reference comes back compacted, and
    simply matches nothing.
    """
    compact = "".join(ch for ch in value.upper() if ch.isalnum())
    if len(compact) < 8:
        return compact
    prefix, body = compact[:-8], compact[-8:]
    return f"{prefix}-{body[:4]}-{body[4:]}" if prefix else f"{body[:4]}-{body[4:]}"


class BankTransferStatus(models.TextChoices):
    AWAITING_TRANSFER = "awaiting_transfer", _("Awaiting transfer")
    RECEIPT_UPLOADED = "receipt_uploaded", _("Receipt uploaded")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


#: A staff member may still decide on these.
OPEN_STATUSES = frozenset(
    {BankTransferStatus.AWAITING_TRANSFER, BankTransferStatus.RECEIPT_UPLOADED}
)


def receipt_upload_to(instance: BankTransfer, filename: str) -> str:
    """``paydesk/receipts/<year>/<month>/<reference>-<random>.<ext>``.

    The customer's file name is never used: it may hold personal data or odd characters, and
    a random part keeps receipt paths unguessable even where media files are served publicly.
    ``filename`` is only read for its extension, which the upload service has already set
    from the file's sniffed content.
    """
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    stamp = timezone.now()
    return (
        f"paydesk/receipts/{stamp:%Y}/{stamp:%m}/"
        f"{instance.reference}-{secrets.token_urlsafe(12)}.{extension}"
    )


class BankTransfer(models.Model):
    """One manual bank transfer: what the customer was asked to send, and what staff decided."""

    payment = models.OneToOneField(
        "paydesk.Payment", on_delete=models.PROTECT, related_name="bank_transfer"
    )
    reference = models.CharField(
        max_length=32,
        unique=True,
        help_text=_("What the customer must write in the transfer's description"),
    )
    idempotency_key = models.CharField(max_length=255, unique=True, editable=False)
    amount = AmountField()
    currency = CurrencyField()
    bank_details = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("The account details shown to the customer, as they were at checkout"),
    )
    status = models.CharField(
        max_length=20,
        choices=BankTransferStatus.choices,
        default=BankTransferStatus.AWAITING_TRANSFER,
    )
    expires_at = models.DateTimeField()

    receipt = models.FileField(upload_to=receipt_upload_to, blank=True, max_length=255)
    receipt_content_type = models.CharField(max_length=100, blank=True)
    receipt_size = models.PositiveIntegerField(null=True, blank=True)
    receipt_uploaded_at = models.DateTimeField(null=True, blank=True)
    receipt_uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Empty when the customer uploaded it without an account"),
    )

    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(
        blank=True, help_text=_("Why it was rejected (shown to the customer), or why it expired")
    )
    note = models.TextField(blank=True, help_text=_("The approver's note (staff only)"))
    #: Manual refunds recorded against this transfer, keyed by paydesk's refund idempotency
    #: key: ``{"id", "refund_id", "amount", "currency", "refunded_by", "created_at"}``.
    refunds = models.JSONField(default=dict, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        verbose_name = _("bank transfer")
        indexes = [
            models.Index(fields=["status", "expires_at"], name="paydesk_bt_status_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.amount} {self.currency} ({self.status})"

    @property
    def is_open(self) -> bool:
        """Still waiting for a decision (no approval, rejection, expiry or cancellation)."""
        return self.status in OPEN_STATUSES

    def expired_by(self, now: Any = None) -> bool:
        return (now or timezone.now()) >= self.expires_at
