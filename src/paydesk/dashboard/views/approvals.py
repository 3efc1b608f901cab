"""Dashboard area: the approval queues — bank transfers to confirm and payments held for review.

This module owns one decision: which waiting items staff see and how their verdict reaches
the services. Bank transfers still open (``models.eft.OPEN_STATUSES``) whose payment waits for
the customer, with the uploaded receipt (served by ``receipt_response``, the admin's download:
a sandboxed attachment, never rendered by the browser); and fraud reviews
(``services.fraud.review_queue``) with the assessment's score and rule hits.

Verdicts are POSTs with CSRF that call ``services.eft.approve_transfer`` /
``reject_transfer`` and ``services.fraud.approve_review`` / ``reject_review`` with the signed-in
user. Those services demand only a person to record the decision against (``_require_user``,
``_require_reviewer``) and leave permission to the caller, so the dashboard maps them onto the
model permissions the admin's actions use: ``paydesk.change_banktransfer`` for transfers,
``paydesk.change_fraudassessment`` for reviews (the receipt needs the transfer's view or change
permission, as in the admin). The services enforce the rest (four-eyes, a decision only once,
a reason to reject) under row locks and audit every decision; their refusals come back as
error messages, never a 500.

Items are addressed by their payment's id (128 random bits), never a sequential key.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ...conf import paydesk_settings
from ...exceptions import PaydeskError
from ...models import BankTransfer, FraudAssessment
from ...models.eft import OPEN_STATUSES
from ...providers.bank_transfer.views import receipt_response
from ...services import eft
from ...services import fraud as fraud_services
from ...states import PaymentStatus
from ..access import require_perm, staff_view
from .common import render_page

__all__ = [
    "REASON_MAX",
    "approvals",
    "open_transfers",
    "review_approve",
    "review_reject",
    "transfer_approve",
    "transfer_receipt",
    "transfer_reject",
    "urlpatterns",
]

#: The longest note or reason accepted from the form (the services store text fields).
REASON_MAX = 2000
TRANSFER_PERM = "paydesk.change_banktransfer"
REVIEW_PERM = "paydesk.change_fraudassessment"


def open_transfers() -> QuerySet[BankTransfer]:
    """Transfers a staff member may still decide on: receipts first, then oldest first."""
    return (
        BankTransfer.objects.filter(
            status__in=OPEN_STATUSES, payment__status=PaymentStatus.REQUIRES_ACTION
        )
        .select_related("payment", "payment__user", "receipt_uploaded_by")
        .order_by("-receipt_uploaded_at", "created_at", "pk")
    )


def _page(request: HttpRequest, queryset: QuerySet[Any], param: str) -> Page:
    size = int(paydesk_settings.DASHBOARD.get("PAGE_SIZE") or 50)
    return Paginator(queryset, size).get_page(request.GET.get(param))


def _may(request: HttpRequest, *perms: str) -> bool:
    return any(request.user.has_perm(perm) for perm in perms)


@staff_view
def approvals(request: HttpRequest) -> HttpResponse:
    transfers = _page(request, open_transfers(), "transfers_page")
    reviews = _page(
        request,
        fraud_services.review_queue().select_related("payment__user"),
        "reviews_page",
    )
    return render_page(
        request,
        "paydesk/dashboard/approvals.html",
        {
            "transfers": transfers,
            "reviews": reviews,
            "can_decide_transfers": _may(request, TRANSFER_PERM),
            "can_see_receipts": _may(request, TRANSFER_PERM, "paydesk.view_banktransfer"),
            "can_decide_reviews": _may(request, REVIEW_PERM),
            "reason_max": REASON_MAX,
        },
        section="approvals",
    )


@staff_view
def transfer_receipt(request: HttpRequest, payment_id: str) -> HttpResponse:
    if not _may(request, TRANSFER_PERM, "paydesk.view_banktransfer"):
        return render(
            request,
            "paydesk/dashboard/forbidden.html",
            {"message": _("You need the permission to view bank transfers to see receipts.")},
            status=403,
        )
    transfer = get_object_or_404(BankTransfer, payment_id=payment_id)
    # A streamed FileResponse; the dashboard's decorators are typed for HttpResponse.
    return cast(HttpResponse, receipt_response(transfer))


def _text(request: HttpRequest, name: str) -> str:
    return request.POST.get(name, "").strip()[:REASON_MAX]


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("paydesk_dashboard:approvals"))


def _decide(request: HttpRequest, action: Any, success: str) -> HttpResponseRedirect:
    """Run one service call; its result or its refusal becomes a message."""
    try:
        action()
    except PaydeskError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return _back()


@require_POST
@require_perm(TRANSFER_PERM)
def transfer_approve(request: HttpRequest, payment_id: str) -> HttpResponse:
    transfer = get_object_or_404(BankTransfer, payment_id=payment_id)
    note = _text(request, "note")
    return _decide(
        request,
        lambda: eft.approve_transfer(transfer=transfer, user=request.user, note=note),
        _("Bank transfer %(reference)s approved: the payment is completed.")
        % {"reference": transfer.reference},
    )


@require_POST
@require_perm(TRANSFER_PERM)
def transfer_reject(request: HttpRequest, payment_id: str) -> HttpResponse:
    transfer = get_object_or_404(BankTransfer, payment_id=payment_id)
    reason = _text(request, "reason")
    return _decide(
        request,
        lambda: eft.reject_transfer(transfer=transfer, user=request.user, reason=reason),
        _("Bank transfer %(reference)s rejected.") % {"reference": transfer.reference},
    )


@require_POST
@require_perm(REVIEW_PERM)
def review_approve(request: HttpRequest, payment_id: str) -> HttpResponse:
    assessment = get_object_or_404(FraudAssessment, payment_id=payment_id)
    note = _text(request, "note")
    try:
        payment = fraud_services.approve_review(
            payment=assessment.payment_id, user=request.user, note=note
        )
    except PaydeskError as exc:
        messages.error(request, exc.message)
    else:
        # Approved, then sent: the provider's answer decides what the payment became.
        messages.success(
            request,
            _("Payment %(id)s approved and sent to %(provider)s; it is now %(status)s.")
            % {"id": payment.pk, "provider": payment.provider, "status": payment.status},
        )
    return _back()


@require_POST
@require_perm(REVIEW_PERM)
def review_reject(request: HttpRequest, payment_id: str) -> HttpResponse:
    assessment = get_object_or_404(FraudAssessment, payment_id=payment_id)
    reason = _text(request, "reason")
    return _decide(
        request,
        lambda: fraud_services.reject_review(
            payment=assessment.payment_id, user=request.user, reason=reason
        ),
        _("Payment %(id)s rejected.") % {"id": assessment.payment_id},
    )


urlpatterns = [
    path("approvals/", approvals, name="approvals"),
    path(
        "approvals/transfers/<str:payment_id>/receipt/",
        transfer_receipt,
        name="approval-transfer-receipt",
    ),
    path(
        "approvals/transfers/<str:payment_id>/approve/",
        transfer_approve,
        name="approval-transfer-approve",
    ),
    path(
        "approvals/transfers/<str:payment_id>/reject/",
        transfer_reject,
        name="approval-transfer-reject",
    ),
    path(
        "approvals/reviews/<str:payment_id>/approve/",
        review_approve,
        name="approval-review-approve",
    ),
    path(
        "approvals/reviews/<str:payment_id>/reject/",
        review_reject,
        name="approval-review-reject",
    ),
]
