"""Django admin for paydesk: read-mostly views, with actions that go through the services.

This module owns one decision: what staff can do to payment state from the admin. Nothing
here writes a payment, refund or ledger row directly; the actions (capture, cancel, sync,
refund the remainder, retry a pending refund, approve or reject a bank transfer) call
``paydesk.services`` and report each success or error as a message. Ledger rows cannot be
added, changed or deleted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import services
from .exceptions import PaydeskError
from .models import (
    APIKey,
    APIKeyScope,
    BankTransfer,
    ExchangeRate,
    Payment,
    PaymentMethod,
    Refund,
    SandboxCharge,
    TransactionLog,
)
from .providers.bank_transfer.views import receipt_response
from .rates import RateQuote, RatesSourceError
from .services import eft


def _run_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    verb: str,
    action: Callable[[Any], Any],
) -> None:
    done = 0
    for obj in queryset:
        try:
            action(obj)
        except PaydeskError as exc:
            modeladmin.message_user(request, f"{obj.pk}: {exc.message}", level=messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb}: {done}", level=messages.SUCCESS)


class TransactionLogInline(admin.TabularInline):
    model = TransactionLog
    fk_name = "payment"
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "kind",
        "amount",
        "currency",
        "attempt",
        "ref",
        "idempotency_key",
        "message",
    )
    readonly_fields = fields
    ordering = ("id",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ("id", "amount", "currency", "status", "reason", "provider_refund_id", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "status",
        "amount",
        "currency",
        "provider",
        "reference",
        "user",
        "refunded_amount",
    )
    list_filter = ("status", "provider", "currency", "capture_method", "created_at")
    search_fields = ("id", "reference", "provider_payment_id", "customer_email", "user__email")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    inlines = (RefundInline, TransactionLogInline)
    actions = ("capture", "cancel", "sync", "refund_remaining")
    readonly_fields = [
        f.name for f in Payment._meta.get_fields() if f.concrete and not f.many_to_many
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # payments are created by checkouts, through the services

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Capture authorized payments"))
    def capture(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        _run_each(
            self, request, queryset, "Captured", lambda p: services.capture_payment(payment=p)
        )

    @admin.action(description=_("Cancel payments"))
    def cancel(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        _run_each(
            self,
            request,
            queryset,
            "Cancelled",
            lambda p: services.cancel_payment(payment=p, reason=f"admin: {request.user}"),
        )

    @admin.action(description=_("Sync status from provider"))
    def sync(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        _run_each(self, request, queryset, "Synced", lambda p: services.sync_payment(payment=p))

    @admin.action(description=_("Refund what remains of each payment"))
    def refund_remaining(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        _run_each(
            self,
            request,
            queryset,
            "Refunded",
            lambda p: services.create_refund(payment=p, reason="admin", user=request.user),
        )


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "payment", "amount", "currency", "status", "reason")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "payment__id", "provider_refund_id", "reason")
    list_select_related = ("payment",)
    actions = ("process",)
    readonly_fields = [
        f.name for f in Refund._meta.get_fields() if f.concrete and not f.many_to_many
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Send pending refunds to the provider"))
    def process(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        _run_each(self, request, queryset, "Sent", lambda r: services.process_refund(refund=r))


@admin.register(TransactionLog)
class TransactionLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "payment",
        "kind",
        "amount",
        "currency",
        "attempt",
        "idempotency_key",
    )
    list_filter = ("kind", "currency", "created_at")
    search_fields = ("payment__id", "idempotency_key", "ref", "message")
    list_select_related = ("payment",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "type", "provider", "brand", "last4", "is_default", "is_active")
    list_filter = ("type", "provider", "is_active", "is_default")
    search_fields = ("id", "user__email", "user__username", "fingerprint", "last4")
    list_select_related = ("user",)
    actions = ("make_default", "deactivate")
    # Defaults and activation change through the services (one default per user).
    readonly_fields = [
        f.name for f in PaymentMethod._meta.get_fields() if f.concrete and f.name != "metadata"
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # past payments keep pointing at their method; deactivate instead

    @admin.action(description=_("Make default for its user"))
    def make_default(self, request: HttpRequest, queryset: QuerySet[PaymentMethod]) -> None:
        _run_each(
            self,
            request,
            queryset,
            "Made default",
            lambda m: services.set_default_payment_method(method=m),
        )

    @admin.action(description=_("Deactivate payment methods"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[PaymentMethod]) -> None:
        _run_each(
            self,
            request,
            queryset,
            "Deactivated",
            lambda m: services.deactivate_payment_method(method=m),
        )


@admin.register(SandboxCharge)
class SandboxChargeAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "amount", "currency", "status", "scenario")
    list_filter = ("status", "scenario")
    readonly_fields = [f.name for f in SandboxCharge._meta.get_fields() if f.concrete]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(BankTransfer)
class BankTransferAdmin(admin.ModelAdmin):
    """The approval queue: filter by status "Receipt uploaded" / "Awaiting transfer", compare
    with the bank statement, then approve or reject through ``paydesk.services.eft``."""

    list_display = (
        "reference",
        "created_at",
        "payment",
        "amount",
        "currency",
        "status",
        "expires_at",
        "receipt_link",
        "decided_by",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = (
        "reference",
        "payment__id",
        "payment__reference",
        "payment__customer_email",
    )
    date_hierarchy = "created_at"
    list_select_related = ("payment", "decided_by")
    actions = ("approve", "reject")
    exclude = ("receipt",)  # replaced only through services.eft.record_receipt
    # The receipt is shown through receipt_link (served to staff only), not the storage URL.
    readonly_fields = [
        f.name
        for f in BankTransfer._meta.get_fields()
        if f.concrete and not f.many_to_many and f.name != "receipt"
    ] + ["receipt_link"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by the provider when a payment is processed

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        receipt = path(
            "<path:object_id>/receipt/",
            self.admin_site.admin_view(self.receipt_view),
            name="paydesk_banktransfer_receipt",
        )
        return [receipt, *super().get_urls()]

    def receipt_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        """The receipt file, to staff who may view the transfer; never run by the browser."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404("No receipt.")
        return receipt_response(obj)

    @admin.display(description=_("Receipt"))
    def receipt_link(self, obj: BankTransfer) -> str:
        if not obj.receipt:
            return "-"
        url = reverse("admin:paydesk_banktransfer_receipt", args=[obj.pk])
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, _("view"))

    @admin.action(description=_("Approve: the money arrived"), permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[BankTransfer]) -> None:
        _run_each(
            self,
            request,
            queryset,
            "Approved",
            lambda t: eft.approve_transfer(transfer=t, user=request.user),
        )

    @admin.action(description=_("Reject (asks for a reason)"), permissions=["change"])
    def reject(
        self, request: HttpRequest, queryset: QuerySet[BankTransfer]
    ) -> TemplateResponse | None:
        reason = request.POST.get("reason", "").strip()
        error = ""
        if "apply" in request.POST:
            if reason:
                _run_each(
                    self,
                    request,
                    queryset,
                    "Rejected",
                    lambda t: eft.reject_transfer(transfer=t, user=request.user, reason=reason),
                )
                return None
            error = str(_("Give a reason: the customer is shown it."))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Reject bank transfers"),
            "opts": self.model._meta,
            "transfers": list(queryset),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "reason": reason,
            "error": error,
        }
        return TemplateResponse(
            request, "admin/paydesk/banktransfer/reject_confirmation.html", context
        )


class ExchangeRateForm(forms.ModelForm):
    """A rate typed by staff: checked like a fetched one, stored with ``source="manual"``."""

    class Meta:
        model = ExchangeRate
        fields = ("base", "quote", "rate", "date")
        help_texts = {
            "base": _("ISO 4217 code, e.g. EUR"),
            "quote": _("ISO 4217 code, e.g. USD"),
            "rate": _("How many units of the quote currency one unit of the base buys"),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        base, quote, rate, date = (data.get(k) for k in ("base", "quote", "rate", "date"))
        if base and quote and rate is not None and date:
            try:
                checked = RateQuote(base=base, quote=quote, rate=rate, date=date)
            except RatesSourceError as exc:
                raise forms.ValidationError(exc.message) from None
            data.update(base=checked.base, quote=checked.quote, rate=checked.rate)
            clash = ExchangeRate.objects.filter(
                base=checked.base, quote=checked.quote, date=date, source="manual"
            ).exclude(pk=self.instance.pk)
            if clash.exists():
                raise forms.ValidationError(
                    _("A manual %(base)s/%(quote)s rate for %(date)s exists; change that one.")
                    % {"base": checked.base, "quote": checked.quote, "date": date}
                )
        return data


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    """The manual rates source (``paydesk.rates.ManualRatesSource``): staff enter rates here.

    Fetched rates (ECB, ...) are shown read-only: the next ``update_exchange_rates`` would
    overwrite an edit. To correct one, add a manual rate for the same pair and date; on the
    same date a manual rate wins.
    """

    form = ExchangeRateForm
    list_display = ("date", "base", "quote", "rate", "source", "created_at")
    list_filter = ("source", "base", "quote")
    search_fields = ("base", "quote")
    date_hierarchy = "date"
    ordering = ("-date", "base", "quote")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.source != "manual":
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.source = "manual"
        super().save_model(request, obj, form, change)


class APIKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=APIKeyScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[APIKeyScope.READ],
        help_text=_("write and refund include read."),
    )

    class Meta:
        model = APIKey
        fields = ("name", "owner", "scopes", "expires_at")

    def clean_expires_at(self) -> Any:
        from django.utils import timezone

        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(_("Choose a time in the future, or leave it empty."))
        return value


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """API keys: created here or by ``manage.py create_api_key``; the full key shows once."""

    list_display = (
        "name",
        "masked_key",
        "owner",
        "scopes",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
    )
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    actions = ("revoke",)
    _details = ("prefix", "owner", "scopes", "created_at", "expires_at", "last_used_at")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = APIKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("name", "owner", "scopes", "expires_at")
        return ("name", *self._details, "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Only the name changes after creation; scopes and expiry are fixed (revoke and
        # create a new key instead), and the hash is never shown.
        return (*self._details, "revoked_at") if obj is not None else ()

    @admin.display(description=_("key"))
    def masked_key(self, obj: APIKey) -> str:
        return f"pdk_{obj.prefix}_…"

    @admin.display(description=_("state"))
    def state(self, obj: APIKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        return "active" if obj.is_active else "expired"

    def save_model(self, request: HttpRequest, obj: APIKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        from .api.keys import create_api_key

        key, full_key = create_api_key(
            owner=obj.owner,
            name=obj.name,
            scopes=form.cleaned_data["scopes"],
            expires_at=obj.expires_at,
        )
        # The admin goes on with ``obj`` (log entry, redirect): make it the saved key.
        for name in ("pk", "prefix", "hashed_key", "scopes", "created_at"):
            setattr(obj, name, getattr(key, name))
        obj._state.adding = False
        obj._state.db = key._state.db
        self.message_user(
            request,
            f"The new API key is {full_key} — copy it now and store it safely: it is shown "
            "only this once and cannot be recovered (revoke it and create another if lost).",
            level=messages.WARNING,
        )

    @admin.action(description=_("Revoke selected API keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[APIKey]) -> None:
        from .api.keys import revoke_api_key

        revoked = sum(1 for key in queryset if revoke_api_key(key))
        self.message_user(request, f"Revoked: {revoked}", level=messages.SUCCESS)


# -- fraud screening and automatic refunds ------------------------------------------------
# The blocklist is plain data staff edit here; held payments are approved or rejected
# through paydesk.services.fraud; checks and automatic refunds are read-only records.

from .models import (  # noqa: E402 - this section is self-contained
    AutoRefund,
    BlocklistEntry,
    FraudAssessment,
    FraudCheck,
    FraudRuleHit,
    ReviewStatus,
)
from .services import fraud as fraud_services  # noqa: E402


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "reason", "is_active", "expires_at", "created_by")
    list_filter = ("kind", "is_active")
    search_fields = ("value", "reason")
    readonly_fields = ("created_by", "created_at")
    actions = ["activate", "deactivate"]

    def save_model(
        self, request: HttpRequest, obj: BlocklistEntry, form: Any, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Activate selected entries"))
    def activate(self, request: HttpRequest, queryset: QuerySet[BlocklistEntry]) -> None:
        self.message_user(request, f"Activated: {queryset.update(is_active=True)}")

    @admin.action(description=_("Deactivate selected entries"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[BlocklistEntry]) -> None:
        self.message_user(request, f"Deactivated: {queryset.update(is_active=False)}")


class ReviewActionForm(helpers.ActionForm):
    note = forms.CharField(
        required=False,
        label=_("Note / reason"),
        help_text=_("Required to reject; staff only, never shown to the customer"),
    )


class HeldFilter(admin.SimpleListFilter):
    title = _("review queue")
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", str(_("Waiting for a decision")))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(
                review_status=ReviewStatus.PENDING, payment__status="pending"
            ).order_by("held_at")
        return queryset


@admin.register(FraudAssessment)
class FraudAssessmentAdmin(admin.ModelAdmin):
    list_display = (
        "payment",
        "decision",
        "score",
        "review_status",
        "held_at",
        "provider_flagged",
        "reviewed_by",
    )
    list_filter = (HeldFilter, "decision", "review_status", "provider_flagged")
    search_fields = ("payment__id", "payment__reference", "payment__customer_email")
    list_select_related = ("payment", "reviewed_by")
    action_form = ReviewActionForm
    actions = ["approve", "reject"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    @admin.action(description=_("Approve held payments and send them"))
    def approve(self, request: HttpRequest, queryset: QuerySet[FraudAssessment]) -> None:
        note = request.POST.get("note", "")
        _run_each(
            self,
            request,
            queryset,
            "Approved",
            lambda a: fraud_services.approve_review(
                payment=a.payment_id, user=request.user, note=note
            ),
        )

    @admin.action(description=_("Reject held payments (give a reason)"))
    def reject(self, request: HttpRequest, queryset: QuerySet[FraudAssessment]) -> None:
        reason = request.POST.get("note", "")
        if not reason.strip():
            self.message_user(
                request, "Give a reason in the note field to reject.", level=messages.ERROR
            )
            return
        _run_each(
            self,
            request,
            queryset,
            "Rejected",
            lambda a: fraud_services.reject_review(
                payment=a.payment_id, user=request.user, reason=reason
            ),
        )


class FraudRuleHitInline(admin.TabularInline):
    model = FraudRuleHit
    extra = 0
    can_delete = False
    readonly_fields = ("rule", "score", "reason")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FraudCheck)
class FraudCheckAdmin(_ReadOnlyAdmin):
    list_display = ("payment", "attempt", "decision", "score", "email", "ip_address", "created_at")
    list_filter = ("decision",)
    search_fields = ("payment__id", "email", "ip_address", "card_fingerprint")
    date_hierarchy = "created_at"
    inlines = [FraudRuleHitInline]


@admin.register(AutoRefund)
class AutoRefundAdmin(_ReadOnlyAdmin):
    list_display = ("payment", "rule", "status", "refund", "created_at")
    list_filter = ("rule", "status")
    search_fields = ("payment__id", "payment__reference")
