"""Dashboard area: payments — the filterable list, one payment's story, and staff actions.

This module owns one decision: what staff can see of a payment and which actions the page
offers. Every action (refund, capture, cancel, sync, send a pending refund again) is a POST
with CSRF and a Django permission, calls the same ``paydesk.services`` function as the REST
API and the admin, and records one audit entry (``paydesk.security.audit.AuditLogger``),
since those services do not audit themselves. An action is offered only when the payment's
status and its provider's capabilities allow it (the same sets the services check under the
row lock: ``states.REFUNDABLE``, ``CAPTURABLE``, ``CANCELLABLE``); the service still has the
last word, and any ``PaydeskError`` comes back as an error message, never a 500.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from ... import services
from ...exceptions import ConfigurationError, MoneyError, PaydeskError
from ...models import AuditLog, FraudAssessment, Payment, Refund
from ...money import Money
from ...providers.registry import get_payment_provider
from ...security.audit import AuditLogger, audit_request_ip
from ...services.payments import MAX_AMOUNT
from ...services.webhooks import webhook_model
from ...states import (
    ACTIVE_REFUND_STATUSES,
    CANCELLABLE,
    CAPTURABLE,
    REFUNDABLE,
    LedgerKind,
    PaymentStatus,
    RefundStatus,
)
from ...templatetags.paydesk_dashboard import money as format_money
from ...types import Capability
from ..access import require_perm, staff_view
from .common import page_of, render_page

__all__ = [
    "PaymentFilterForm",
    "available_actions",
    "payment_cancel",
    "payment_capture",
    "payment_detail",
    "payment_list",
    "payment_refund",
    "payment_sync",
    "refund_process",
    "urlpatterns",
]

SEARCH_MAX = 200
#: The detail page shows at most this many audit entries (newest first).
AUDIT_LIMIT = 100


# -- list -----------------------------------------------------------------------------------


class PaymentFilterForm(forms.Form):
    """The list's GET filters; an invalid value is reported and ignored, never a 500."""

    q = forms.CharField(
        required=False,
        max_length=SEARCH_MAX,
        label=gettext_lazy("Search"),
        widget=forms.TextInput(attrs={"type": "search", "aria-describedby": "id_q-help"}),
        help_text=gettext_lazy(
            "Payment id, provider payment id, order reference, customer email or name"
        ),
    )
    status = forms.ChoiceField(required=False, label=gettext_lazy("Status"))
    provider = forms.ChoiceField(required=False, label=gettext_lazy("Provider"))
    currency = forms.ChoiceField(required=False, label=gettext_lazy("Currency"))
    created_from = forms.DateField(
        required=False,
        label=gettext_lazy("Created from"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    created_to = forms.DateField(
        required=False,
        label=gettext_lazy("Created to"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args: Any, providers: list[str], currencies: list[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        any_label = gettext_lazy("Any")
        status_field: Any = self.fields["status"]
        status_field.choices = [("", any_label), *((s.value, s.value) for s in PaymentStatus)]
        provider_field: Any = self.fields["provider"]
        provider_field.choices = [("", any_label), *((p, p) for p in providers)]
        currency_field: Any = self.fields["currency"]
        currency_field.choices = [("", any_label), *((c, c) for c in currencies)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", _("The end date must not be before the start date."))
        return data


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _user_fields() -> set[str]:
    names = set()
    for name in ("email", "first_name", "last_name", get_user_model().USERNAME_FIELD):
        try:
            get_user_model()._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        names.add(name)
    return names


def search_payments(queryset: QuerySet[Payment], term: str) -> QuerySet[Payment]:
    """Payments matching ``term``: an exact id or provider id, or part of the reference,
    the customer's email, the description, or the paying user's email, username or name
    (every word of a name must match the first or last name)."""
    term = term.strip()
    if not term:
        return queryset
    condition = (
        Q(pk=term)
        | Q(provider_payment_id=term)
        | Q(reference__icontains=term)
        | Q(customer_email__icontains=term)
        | Q(description__icontains=term)
    )
    fields = _user_fields()
    username = get_user_model().USERNAME_FIELD
    if "email" in fields:
        condition |= Q(user__email__icontains=term)
    if username in fields:
        condition |= Q(**{f"user__{username}__iexact": term})
    if {"first_name", "last_name"} <= fields:
        words = term.split()[:4]
        name = Q()
        for word in words:
            name &= Q(user__first_name__icontains=word) | Q(user__last_name__icontains=word)
        condition |= name
    return queryset.filter(condition)


def filtered_payments(form: PaymentFilterForm) -> QuerySet[Payment]:
    """The payments the valid filters of ``form`` select, newest first."""
    queryset = Payment.objects.select_related("user").order_by("-created_at", "-id")
    data = form.cleaned_data if form.is_bound else {}
    for name in ("status", "provider", "currency"):
        if data.get(name):
            queryset = queryset.filter(**{name: data[name]})
    if data.get("created_from"):
        queryset = queryset.filter(created_at__gte=_day_start(data["created_from"]))
    if data.get("created_to"):
        end = _day_start(data["created_to"] + dt.timedelta(days=1))
        queryset = queryset.filter(created_at__lt=end)
    if data.get("q"):
        queryset = search_payments(queryset, data["q"])
    return queryset


def _distinct(field: str) -> list[str]:
    return sorted(
        value
        for value in Payment.objects.order_by().values_list(field, flat=True).distinct()
        if value
    )


def _configured_providers() -> list[str]:
    from ...providers.registry import providers

    return list(providers.aliases())


@staff_view
def payment_list(request: HttpRequest) -> HttpResponse:
    form = PaymentFilterForm(
        request.GET or None,
        providers=sorted({*_configured_providers(), *_distinct("provider")}),
        currencies=_distinct("currency"),
    )
    if form.is_bound:
        form.is_valid()  # fills cleaned_data with the valid fields only
    page = page_of(request, filtered_payments(form))
    return render_page(
        request,
        "paydesk/dashboard/payments.html",
        {"form": form, "page": page, "filtered": form.is_bound},
        section="payments",
    )


# -- detail ---------------------------------------------------------------------------------


def available_actions(payment: Payment) -> dict[str, Any]:
    """Which actions the page offers for ``payment`` (the services decide in the end).

    Mirrors the checks of ``services.refunds.reserve_refund``, ``payments.prepare_capture``,
    ``prepare_cancel`` and ``prepare_sync``: the status sets of ``paydesk.states`` and the
    provider's declared capabilities.
    """
    actions: dict[str, Any] = {
        "refund": False,
        "partial_refund": False,
        "refundable": Money(max(payment.refundable_amount, Decimal(0)), payment.currency),
        "capture": False,
        "partial_capture": False,
        "capturable": Money(
            max(payment.authorized_amount - payment.captured_amount, Decimal(0)),
            payment.currency,
        ),
        "cancel": False,
        "sync": False,
        "resend_refund": False,
        "provider_error": "",
    }
    try:
        provider = get_payment_provider(payment.provider)
    except ConfigurationError as exc:
        actions["provider_error"] = exc.message
        return actions
    already = payment.refunded_amount + payment.refund_reserved_amount
    actions["refund"] = (
        payment.status in REFUNDABLE
        and provider.supports(Capability.REFUND)
        and payment.refundable_amount > 0
        and (already <= 0 or provider.supports(Capability.MULTIPLE_REFUNDS))
    )
    actions["partial_refund"] = provider.supports(Capability.PARTIAL_REFUND)
    actions["capture"] = (
        payment.status in CAPTURABLE
        and provider.supports(Capability.CAPTURE)
        and actions["capturable"].amount > 0
    )
    actions["partial_capture"] = provider.supports(Capability.PARTIAL_CAPTURE)
    actions["cancel"] = payment.status in CANCELLABLE and (
        not payment.provider_payment_id or provider.supports(Capability.CANCEL)
    )
    actions["sync"] = provider.supports(Capability.SYNC) and payment.status != PaymentStatus.PENDING
    actions["resend_refund"] = provider.supports(Capability.REFUND)
    actions["refund_instructions"] = str(getattr(provider, "refund_instructions", "") or "")
    return actions


def _fraud(payment: Payment) -> FraudAssessment | None:
    try:
        return payment.fraud_assessment
    except ObjectDoesNotExist:
        return None


def _webhook_deliveries(payment: Payment, ledger: list[Any]) -> list[Any]:
    """The deliveries that concerned ``payment``: those the webhook service noted in its
    ledger (``services.webhooks._note_delivery`` appends ``webhook_received`` with
    ``provider_data["delivery"]``), plus those whose ``payment_id`` names it."""
    noted = [
        entry.provider_data.get("delivery")
        for entry in ledger
        if entry.kind == LedgerKind.WEBHOOK_RECEIVED and isinstance(entry.provider_data, dict)
    ]
    pks = [pk for pk in noted if isinstance(pk, int | str) and str(pk).isdigit()]
    model = webhook_model()
    return list(
        model.objects.filter(Q(pk__in=pks) | Q(payment_id=payment.pk)).order_by(
            "-created_at", "-pk"
        )
    )


def _audit_entries(payment: Payment, refunds: list[Refund]) -> list[AuditLog]:
    ids = [payment.pk, *(refund.pk for refund in refunds)]
    return list(
        AuditLog.objects.select_related("actor")
        .filter(object_id__in=ids)
        .order_by("-created_at", "-id")[:AUDIT_LIMIT]
    )


@staff_view
def payment_detail(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = get_object_or_404(
        Payment.objects.select_related("user", "payment_method", "fraud_assessment"),
        pk=payment_id,
    )
    ledger = list(payment.ledger.order_by("created_at", "id"))
    refunds = list(payment.refunds.select_related("processed_by").order_by("-created_at", "-id"))
    user = request.user
    return render_page(
        request,
        "paydesk/dashboard/payment_detail.html",
        {
            "payment": payment,
            "ledger": ledger,
            "refunds": refunds,
            "active_refund_statuses": [str(s) for s in ACTIVE_REFUND_STATUSES],
            "deliveries": _webhook_deliveries(payment, ledger),
            "audit_entries": _audit_entries(payment, refunds),
            "audit_limit": AUDIT_LIMIT,
            "fraud": _fraud(payment),
            "actions": available_actions(payment),
            "can_refund": user.has_perm("paydesk.add_refund"),
            "can_change": user.has_perm("paydesk.change_payment"),
        },
        section="payments",
    )


# -- actions --------------------------------------------------------------------------------


class RefundForm(forms.Form):
    amount = forms.CharField(max_length=40, label=gettext_lazy("Amount"))
    reason = forms.CharField(max_length=255, required=False, label=gettext_lazy("Reason"))


class CaptureForm(forms.Form):
    amount = forms.CharField(max_length=40, required=False, label=gettext_lazy("Amount"))


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=255, required=False, label=gettext_lazy("Reason"))


def _amount(raw: str, currency: str) -> Money:
    """``raw`` as exact money in ``currency``: refuses junk, excess precision, zero and
    negatives with the money module's own message."""
    try:
        money = Money(raw.strip(), currency)
    except (MoneyError, TypeError, ValueError) as exc:
        message = exc.message if isinstance(exc, PaydeskError) else str(exc)
        raise forms.ValidationError(message) from exc
    if money.amount <= 0:
        raise forms.ValidationError(_("The amount must be greater than zero."))
    if money.amount >= MAX_AMOUNT:
        # Beyond the amount columns: no payment holds that much, and the audit entry of a
        # refused attempt could not record it.
        raise forms.ValidationError(
            _("The amount must be less than %(max)s.") % {"max": Money(MAX_AMOUNT, currency)}
        )
    return money


def _back(payment_id: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("paydesk_dashboard:payment-detail", args=[payment_id]))


def _form_errors(request: HttpRequest, form: forms.Form) -> None:
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else str(error))


def _audit(
    request: HttpRequest,
    *,
    action: str,
    payment: Payment,
    success: bool,
    error: PaydeskError | None = None,
    amount: Money | None = None,
    **details: Any,
) -> None:
    details["source"] = "dashboard"
    if error is not None:
        details.update(error=type(error).__name__, code=error.code, message=error.message[:500])
    AuditLogger().log_payment(
        payment=payment,
        action=action,
        actor=request.user,
        success=success,
        amount=amount,
        currency=amount.currency if amount is not None else "",
        ip_address=audit_request_ip(request),
        **details,
    )


@require_perm("paydesk.add_refund")
@require_POST
def payment_refund(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = get_object_or_404(Payment, pk=payment_id)
    form = RefundForm(request.POST)
    money: Money | None = None
    if form.is_valid():
        try:
            money = _amount(form.cleaned_data["amount"], payment.currency)
        except forms.ValidationError as exc:
            form.add_error("amount", exc)
    if money is None or not form.is_valid():
        _form_errors(request, form)
        return _back(payment.pk)
    reason = form.cleaned_data["reason"]
    audit = AuditLogger()
    ip = audit_request_ip(request)
    try:
        refund = services.create_refund(
            payment=payment, amount=money, reason=reason, user=request.user
        )
    except PaydeskError as exc:
        audit.log_refund(
            payment=payment,
            actor=request.user,
            success=False,
            amount=money,
            ip_address=ip,
            source="dashboard",
            reason=reason,
            error=type(exc).__name__,
            code=exc.code,
            message=exc.message[:500],
        )
        messages.error(request, exc.message)
        return _back(payment.pk)
    audit.log_refund(
        refund=refund,
        payment=payment,
        actor=request.user,
        success=refund.status != RefundStatus.FAILED,
        ip_address=ip,
        source="dashboard",
        reason=reason,
        status=str(refund.status),
    )
    shown = format_money(Money(refund.amount, refund.currency))
    if refund.status == RefundStatus.COMPLETED:
        messages.success(request, _("Refunded %(amount)s.") % {"amount": shown})
    elif refund.status == RefundStatus.FAILED:
        messages.error(
            request,
            _("The provider refused the refund of %(amount)s: %(message)s")
            % {"amount": shown, "message": refund.failure_message},
        )
    else:
        messages.warning(
            request,
            _("The refund of %(amount)s was sent; the provider has not confirmed it yet.")
            % {"amount": shown},
        )
    return _back(payment.pk)


@require_perm("paydesk.add_refund")
@require_POST
def refund_process(request: HttpRequest, payment_id: str, refund_id: str) -> HttpResponse:
    """Send a pending refund again (after a timeout), with its original idempotency key."""
    refund = get_object_or_404(
        Refund.objects.select_related("payment"), pk=refund_id, payment_id=payment_id
    )
    try:
        refund = services.process_refund(refund=refund)
    except PaydeskError as exc:
        AuditLogger().log_refund(
            refund=refund,
            actor=request.user,
            success=False,
            ip_address=audit_request_ip(request),
            source="dashboard",
            operation="process",
            error=type(exc).__name__,
            code=exc.code,
            message=exc.message[:500],
        )
        messages.error(request, exc.message)
        return _back(payment_id)
    AuditLogger().log_refund(
        refund=refund,
        actor=request.user,
        success=refund.status != RefundStatus.FAILED,
        ip_address=audit_request_ip(request),
        source="dashboard",
        operation="process",
        status=str(refund.status),
    )
    if refund.status == RefundStatus.FAILED:
        messages.error(request, refund.failure_message)
    else:
        messages.success(
            request,
            _("Refund %(id)s is now %(status)s.") % {"id": refund.pk, "status": refund.status},
        )
    return _back(payment_id)


@require_perm("paydesk.change_payment")
@require_POST
def payment_capture(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = get_object_or_404(Payment, pk=payment_id)
    form = CaptureForm(request.POST)
    money: Money | None = None
    if form.is_valid() and form.cleaned_data["amount"].strip():
        try:
            money = _amount(form.cleaned_data["amount"], payment.currency)
        except forms.ValidationError as exc:
            form.add_error("amount", exc)
    if not form.is_valid():
        _form_errors(request, form)
        return _back(payment.pk)
    updated = _act(
        request,
        payment,
        action="payment.capture",
        call=lambda: services.capture_payment(payment=payment, amount=money),
        succeeded=lambda done: done.status != PaymentStatus.FAILED,
        amount=money,
    )
    if updated is None:
        return _back(payment.pk)
    _outcome(request, updated, _("Captured: the payment is now %(status)s."))
    return _back(payment.pk)


@require_perm("paydesk.change_payment")
@require_POST
def payment_cancel(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = get_object_or_404(Payment, pk=payment_id)
    form = CancelForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return _back(payment.pk)
    reason = form.cleaned_data["reason"]
    updated = _act(
        request,
        payment,
        action="payment.cancel",
        call=lambda: services.cancel_payment(payment=payment, reason=reason),
        succeeded=lambda done: done.status == PaymentStatus.CANCELLED,
        reason=reason,
    )
    if updated is None:
        return _back(payment.pk)
    _outcome(request, updated, _("Cancelled: the payment is now %(status)s."))
    return _back(payment.pk)


@require_perm("paydesk.change_payment")
@require_POST
def payment_sync(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = get_object_or_404(Payment, pk=payment_id)
    updated = _act(
        request,
        payment,
        action="payment.sync",
        call=lambda: services.sync_payment(payment=payment),
        succeeded=lambda done: True,
        on_success={"previous_status": str(payment.status)},
    )
    if updated is None:
        return _back(payment.pk)
    messages.success(
        request,
        _("Synced with %(provider)s: the payment is %(status)s.")
        % {"provider": updated.provider, "status": updated.status},
    )
    return _back(payment.pk)


def _act(
    request: HttpRequest,
    payment: Payment,
    *,
    action: str,
    call: Callable[[], Payment],
    succeeded: Callable[[Payment], bool],
    amount: Money | None = None,
    on_success: dict[str, Any] | None = None,
    **details: Any,
) -> Payment | None:
    """Run one payment action from the dashboard and audit it either way.

    A refusal (``PaydeskError``) is audited as failed with the error, shown as a message,
    and ``None`` is returned; otherwise the updated payment is audited with its new status
    (``succeeded`` decides the entry's success, ``on_success`` adds details) and returned.
    """
    try:
        updated = call()
    except PaydeskError as exc:
        _audit(
            request,
            action=action,
            payment=payment,
            success=False,
            error=exc,
            amount=amount,
            **details,
        )
        messages.error(request, exc.message)
        return None
    _audit(
        request,
        action=action,
        payment=updated,
        success=succeeded(updated),
        amount=amount,
        **details,
        **(on_success or {}),
        status=str(updated.status),
    )
    return updated


def _outcome(request: HttpRequest, payment: Payment, success: str) -> None:
    if payment.status == PaymentStatus.FAILED:
        messages.error(
            request,
            _("The provider refused: %(message)s")
            % {"message": payment.failure_message or payment.failure_code},
        )
    else:
        messages.success(request, success % {"status": payment.status})


urlpatterns = [
    path("payments/", payment_list, name="payments"),
    path("payments/<str:payment_id>/", payment_detail, name="payment-detail"),
    path("payments/<str:payment_id>/refund/", payment_refund, name="payment-refund"),
    path("payments/<str:payment_id>/capture/", payment_capture, name="payment-capture"),
    path("payments/<str:payment_id>/cancel/", payment_cancel, name="payment-cancel"),
    path("payments/<str:payment_id>/sync/", payment_sync, name="payment-sync"),
    path(
        "payments/<str:payment_id>/refunds/<str:refund_id>/send/",
        refund_process,
        name="payment-refund-process",
    ),
]
