"""The page KICC's payment window sends the customer back to (``returnUrl``).

This module owns one decision: how KICC's return reaches ``services.confirm_payment``. KICC
POSTs a form (``resCd``, ``resMsg``, ``shopOrderNo``, ``authorizationId``, ``shopValue1..7``)
from its own site, so the view is exempt from CSRF (KICC cannot send Django's token); that is
safe because nothing here is trusted: the ``authorizationId`` is only a handle that paydesk
redeems with KICC server to server (with its own ``mallId``), for the order registered for
this very payment, and the approved amount is checked against the payment. The generic
return view (``paydesk.views.payment_return``) reads only the query string, hence this one.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ...exceptions import PaydeskError
from ...models import Payment

#: The fields KICC posts back; anything else in the request is ignored.
RETURN_FIELDS = (
    "resCd",
    "resMsg",
    "shopOrderNo",
    "authorizationId",
    *(f"shopValue{n}" for n in range(1, 8)),
)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def payment_return(request: HttpRequest, payment_id: str) -> HttpResponse:
    from ...services import confirm_payment

    try:
        payment = Payment.objects.get(pk=payment_id)
    except Payment.DoesNotExist:
        raise Http404("No such payment.") from None
    data = request.POST if request.method == "POST" else request.GET
    params = {name: str(data.get(name, "")) for name in RETURN_FIELDS if name in data}
    error = ""
    try:
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
