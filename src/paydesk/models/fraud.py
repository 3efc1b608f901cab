"""What paydesk remembers about fraud screening and automatic refunds.

This module owns one decision: where each fraud fact lives.

* ``FraudCheck``: one row per screened payment attempt, with the identifiers the rules
  looked at (user, email, IP, card fingerprint, countries). Velocity rules count these rows,
  so they are the history the rules need; analytics count them too.
* ``FraudRuleHit``: one row per rule that fired on a check (decisions by rule, in SQL).
* ``FraudAssessment``: one row per payment (``payment.fraud_assessment``): the latest
  decision, the staff review of a held payment, and the fraud signals providers reported
  (iyzico's ``fraudStatus``, Stripe's ``outcome``), so everything about a payment's risk is
  in one place.
* ``BlocklistEntry``: emails, email domains, IP networks and card fingerprints that are
  refused, managed in the admin.
* ``FraudLock``: a fixed set of lock rows; screening locks the rows its velocity keys hash
  to, so concurrent attempts from one user are counted one after another.
* ``AutoRefund``: one row per payment and automatic-refund rule, so a rule that runs twice
  refunds once.

Only ``paydesk.services.fraud`` and ``paydesk.services.autorefunds`` write these rows
(blocklist entries are edited in the admin as plain data).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .fields import AmountField, CurrencyField

__all__ = [
    "AutoRefund",
    "AutoRefundStatus",
    "BlocklistEntry",
    "BlocklistKind",
    "FraudAssessment",
    "FraudCheck",
    "FraudDecision",
    "FraudLock",
    "FraudRuleHit",
    "ReviewStatus",
]


class FraudDecision(models.TextChoices):
    ALLOW = "allow", _("Allow")
    REVIEW = "review", _("Hold for review")
    BLOCK = "block", _("Block")


class ReviewStatus(models.TextChoices):
    NONE = "", _("Not held")
    PENDING = "pending", _("Waiting for a staff decision")
    APPROVED = "approved", _("Approved by staff")
    REJECTED = "rejected", _("Rejected by staff")


class FraudCheck(models.Model):
    """The rules' verdict on one payment attempt, and what they looked at."""

    payment = models.ForeignKey(
        "paydesk.Payment", on_delete=models.CASCADE, related_name="fraud_checks"
    )
    attempt = models.PositiveIntegerField(default=1)
    decision = models.CharField(max_length=10, choices=FraudDecision.choices)
    score = models.IntegerField(default=0)
    amount = AmountField()
    currency = CurrencyField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    email = models.CharField(max_length=254, blank=True, help_text=_("Lower-cased"))
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    card_fingerprint = models.CharField(max_length=128, blank=True)
    card_country = models.CharField(max_length=2, blank=True)
    ip_country = models.CharField(max_length=2, blank=True)
    billing_country = models.CharField(max_length=2, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["payment", "attempt"], name="paydesk_fraudcheck_attempt"
            ),
        ]
        indexes = [
            # One per velocity key: "attempts by this X since T" is an index range scan.
            models.Index(fields=["user", "created_at"], name="paydesk_fc_user"),
            models.Index(fields=["email", "created_at"], name="paydesk_fc_email"),
            models.Index(fields=["ip_address", "created_at"], name="paydesk_fc_ip"),
            models.Index(fields=["card_fingerprint", "created_at"], name="paydesk_fc_card"),
            models.Index(fields=["created_at", "decision"], name="paydesk_fc_created"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_id} attempt {self.attempt}: {self.decision} ({self.score})"


class FraudRuleHit(models.Model):
    """One rule that fired on a check: its score and the reason it gave."""

    fraud_check = models.ForeignKey(FraudCheck, on_delete=models.CASCADE, related_name="hits")
    rule = models.CharField(max_length=100, db_index=True)
    score = models.IntegerField(default=0)
    reason = models.TextField(blank=True)

    class Meta:
        app_label = "paydesk"

    def __str__(self) -> str:
        return f"{self.rule} +{self.score}"


class FraudAssessment(models.Model):
    """A payment's current risk picture: the latest decision, its review, provider signals."""

    payment = models.OneToOneField(
        "paydesk.Payment", on_delete=models.CASCADE, related_name="fraud_assessment"
    )
    attempt = models.PositiveIntegerField(default=1, help_text=_("The attempt last screened"))
    decision = models.CharField(
        max_length=10,
        choices=FraudDecision.choices,
        blank=True,
        help_text=_("Empty when only a provider's signals are known"),
    )
    score = models.IntegerField(default=0)
    reasons = models.JSONField(
        default=list, blank=True, help_text=_("[{rule, score, reason}, ...] of the last check")
    )
    review_status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, blank=True, default=ReviewStatus.NONE
    )
    held_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    provider_signals = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("What providers said about the payment's risk, by provider alias"),
    )
    provider_flagged = models.BooleanField(
        default=False, help_text=_("A provider held, flagged or refused it for fraud")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        indexes = [
            # The review queue: held payments, oldest first.
            models.Index(fields=["review_status", "held_at"], name="paydesk_fa_review"),
        ]

    def __str__(self) -> str:
        label = self.decision or "provider signals only"
        return f"{self.payment_id}: {label} ({self.score})"

    @property
    def is_held(self) -> bool:
        return self.review_status == ReviewStatus.PENDING


class BlocklistKind(models.TextChoices):
    EMAIL = "email", _("Email address")
    EMAIL_DOMAIN = "email_domain", _("Email domain")
    IP_NETWORK = "ip_network", _("IP address or network")
    CARD_FINGERPRINT = "card_fingerprint", _("Card fingerprint")


def normalize_blocklist_value(kind: str, value: str) -> str:
    """The canonical form matching compares: lower-cased emails and domains, CIDR networks.

    Raises ``ValidationError`` for an IP network that does not parse.
    """
    value = (value or "").strip()
    if kind == BlocklistKind.EMAIL:
        return value.lower()
    if kind == BlocklistKind.EMAIL_DOMAIN:
        return value.lower().lstrip("@")
    if kind == BlocklistKind.IP_NETWORK:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValidationError(
                _("%(value)s is not an IP address or network (e.g. 203.0.113.0/24)."),
                params={"value": value},
                code="invalid",
            ) from None
    return value


class BlocklistEntry(models.Model):
    kind = models.CharField(max_length=20, choices=BlocklistKind.choices)
    value = models.CharField(
        max_length=255,
        help_text=_("An email, a domain (example.com), an IP or CIDR network, a fingerprint"),
    )
    reason = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: until removed or deactivated")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["kind", "value"]
        verbose_name = _("blocklist entry")
        verbose_name_plural = _("blocklist")
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="paydesk_blocklist_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"

    def clean(self) -> None:
        self.value = normalize_blocklist_value(self.kind, self.value)
        if not self.value:
            raise ValidationError({"value": _("Give a value to block.")})


class FraudLock(models.Model):
    """One of a fixed number of rows that screening locks (see ``paydesk.services.fraud``)."""

    stripe = models.PositiveIntegerField(primary_key=True)

    class Meta:
        app_label = "paydesk"

    def __str__(self) -> str:
        return f"fraud lock {self.stripe}"


class AutoRefundStatus(models.TextChoices):
    PENDING = "pending", _("Refund reserved, not yet sent")
    REFUNDED = "refunded", _("Refunded")
    SKIPPED = "skipped", _("Nothing left to refund")
    FAILED = "failed", _("The refund failed")


class AutoRefund(models.Model):
    """An automatic refund rule's claim on a payment: at most one per payment and rule."""

    payment = models.ForeignKey(
        "paydesk.Payment", on_delete=models.PROTECT, related_name="auto_refunds"
    )
    rule = models.CharField(max_length=100)
    refund = models.ForeignKey(
        "paydesk.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=AutoRefundStatus.choices, default=AutoRefundStatus.PENDING
    )
    reason = models.CharField(max_length=255, blank=True)
    detail = models.TextField(blank=True, help_text=_("Why it was skipped or failed"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "paydesk"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "rule"], name="paydesk_autorefund_once"),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.payment_id} ({self.status})"
