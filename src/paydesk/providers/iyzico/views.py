"""The checkout form's callback: where iyzico sends the customer's browser back.

iyzico POSTs the form's ``token`` to the ``callbackUrl`` given at initialize, which paydesk
builds as ``<PUBLIC_BASE_URL>/<prefix>/iyzico/callback/<alias>/<payment id>/``. The view
checks that the token is the one this payment's checkout form was given (so nobody can
point another token at someone else's payment), asks iyzico for the result through
``paydesk.services.confirm_payment`` (which verifies iyzico's signed answer), then sends the
browser on exactly as the shared return view does: to the payment's ``return_url`` when it
is on this site, or to a small status page.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ...exceptions import PaydeskError
from ...models import Payment
from ...services import confirm_payment


@csrf_exempt  # a cross-site POST from iyzico's page; the token is checked instead
@require_http_methods(["POST"])
def callback(request: HttpRequest, alias: str, payment_id: str) -> HttpResponse:
    try:
        payment = Payment.objects.get(pk=payment_id, provider=alias)
    except Payment.DoesNotExist:
        raise Http404("No such payment.") from None
    token = request.POST.get("token", "")
    error = ""
    if not token or not constant_time_compare(token, payment.provider_payment_id):
        error = "This iyzico callback does not belong to this payment."
        return render(
            request,
            "paydesk/payment_status.html",
            {"payment": payment, "error": error},
            status=400,
        )
    try:
        payment = confirm_payment(payment=payment, params={"token": token})
    except PaydeskError as exc:
        error = exc.message
        payment.refresh_from_db()
    target = payment.return_url
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return render(request, "paydesk/payment_status.html", {"payment": payment, "error": error})
