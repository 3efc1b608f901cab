"""The customer's bank-transfer page: account details, the reference, a receipt upload.

This module owns one decision: who may see a transfer's instructions and upload its receipt.

* A payment made by a signed-in user is shown only to that user (anyone else signed in gets
  403; an anonymous visitor is sent to log in), and to staff holding the
  ``paydesk.change_banktransfer`` permission, who may record a receipt the customer emailed.
* A payment without a user (a guest checkout) is shown to whoever has its link: the payment
  id in the URL is 128 random bits, the same secret the guest's return link relies on.

The upload is a normal CSRF-protected POST. The request's declared size is checked before
Django reads the body, then ``paydesk.services.eft.record_receipt`` validates the file (type
by content sniffing, size) and stores it; its errors are shown on the page with status 400
(409 when the transfer is no longer open).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from ...exceptions import ConfigurationError, PaydeskError, PaymentStateError
from ...money import Money
from ...security.audit import audit_request_ip
from ...services.eft import record_receipt
from ..registry import get_payment_provider
from . import DEFAULT_RECEIPT_MAX_SIZE, BankTransferProvider
from .receipts import DEFAULT_RECEIPT_TYPES, RECEIPT_KINDS, describe, megabytes

# Room for the multipart envelope around the file when checking CONTENT_LENGTH.
_MULTIPART_OVERHEAD = 64 * 1024


def _transfer(payment_id: str) -> Any:
    from ...models.eft import BankTransfer

    transfer = BankTransfer.objects.select_related("payment").filter(payment_id=payment_id).first()
    if transfer is None:
        raise Http404("No bank transfer for this payment.")
    return transfer


def _provider(payment: Any) -> BankTransferProvider | None:
    try:
        provider = get_payment_provider(payment.provider)
    except ConfigurationError:
        return None
    return provider if isinstance(provider, BankTransferProvider) else None


def _may_act_as_customer(request: HttpRequest, payment: Any) -> bool | None:
    """True: allowed; False: signed in as someone else; None: must sign in first."""
    if payment.user_id is None:
        return True
    user = request.user
    if not user.is_authenticated:
        return None
    if user.pk == payment.user_id:
        return True
    return bool(user.is_staff and user.has_perm("paydesk.change_banktransfer"))


def receipt_response(transfer: Any) -> FileResponse:
    """A transfer's receipt file as a download that the browser never runs or sniffs.

    For staff views (the admin, the dashboard) that have already checked who may see it;
    ``Http404`` when the transfer has no receipt.
    """
    if not transfer.receipt:
        raise Http404("No receipt.")
    response = FileResponse(
        transfer.receipt.open("rb"),
        content_type=transfer.receipt_content_type or "application/octet-stream",
        filename=transfer.receipt.name.rsplit("/", 1)[-1],
    )
    response["Content-Security-Policy"] = "sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def instructions(request: HttpRequest, payment_id: str) -> HttpResponse:
    transfer = _transfer(payment_id)
    payment = transfer.payment
    allowed = _may_act_as_customer(request, payment)
    if allowed is None:
        return redirect_to_login(request.get_full_path())
    if not allowed:
        return render(
            request,
            "paydesk/bank_transfer/forbidden.html",
            {"message": "This payment belongs to another account. Sign in as its owner."},
            status=403,
        )

    provider = _provider(payment)
    types = provider.receipt_types if provider else DEFAULT_RECEIPT_TYPES
    max_size = provider.receipt_max_size if provider else DEFAULT_RECEIPT_MAX_SIZE
    error = ""
    status = 200
    if request.method == "POST":
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > max_size + _MULTIPART_OVERHEAD:
            error = f"The upload is too large; receipts up to {megabytes(max_size)} are accepted."
            status = 413
        else:
            try:
                record_receipt(
                    transfer=transfer,
                    file=request.FILES.get("receipt"),
                    user=request.user,
                    ip_address=audit_request_ip(request),
                )
            except PaydeskError as exc:
                error = exc.message
                status = 409 if isinstance(exc, PaymentStateError) else 400
                transfer.refresh_from_db()
            else:
                url = reverse("paydesk:bank-transfer", args=[payment.pk])
                return HttpResponseRedirect(f"{url}?uploaded=1")

    return render(
        request,
        "paydesk/bank_transfer/instructions.html",
        {
            "transfer": transfer,
            "payment": payment,
            "amount": Money(transfer.amount, transfer.currency),
            "details": transfer.bank_details,
            "error": error,
            "uploaded": request.GET.get("uploaded") == "1" and not error,
            "accepted_types": describe(types),
            "accept_attr": ",".join(
                sorted({f".{ext}" for name in types for ext in RECEIPT_KINDS[name].extensions})
            ),
            "max_size": megabytes(max_size),
            "return_url": reverse("paydesk:payment-return", args=[payment.pk]),
        },
        status=status,
    )
