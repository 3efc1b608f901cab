"""Browser-facing views shared by every provider: the return page after a next action.

This module owns one decision: what happens when a customer comes back from a provider's
page (hosted checkout, 3-D Secure, PayPal approval). The provider is asked for the outcome
through ``confirm_payment``; the browser then goes to the host project's ``return_url`` for
the payment, or to a small status page when the project set none.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from .exceptions import PaydeskError
from .models import Payment
from .providers.registry import get_payment_provider
from .services import confirm_payment


def payment_return(request: HttpRequest, payment_id: str) -> HttpResponse:
    try:
        payment = Payment.objects.get(pk=payment_id)
    except Payment.DoesNotExist:
        raise Http404("No such payment.") from None
    error = ""
    try:
        allowed = get_payment_provider(payment.provider).return_params
        params = {key: request.GET[key] for key in allowed if key in request.GET}
        payment = confirm_payment(payment=payment, params=params)
    except PaydeskError as exc:
        error = exc.message
        payment.refresh_from_db()
    target = payment.return_url
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return render(request, "paydesk/payment_status.html", {"payment": payment, "error": error})
