"""The sandbox's hosted pages: card entry and the 3-D Secure challenge.

These pages play the provider's website. They change only the sandbox's simulated remote
record (through the provider instance), then send the browser back to paydesk's return view,
which asks the provider for the outcome through the services like any real provider.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from ...exceptions import ConfigurationError, ProviderRequestError
from ...models import SandboxCharge
from ...money import Money
from ..registry import providers
from . import CARD_SCENARIOS, SandboxProvider


def _sandbox() -> SandboxProvider:
    for alias in providers.aliases():
        try:
            instance = providers[alias]
        except ConfigurationError:
            continue
        if isinstance(instance, SandboxProvider):
            return instance
    raise Http404("No sandbox provider is configured.")


def _charge(charge_id: str) -> SandboxCharge:
    try:
        return SandboxCharge.objects.get(pk=charge_id)
    except SandboxCharge.DoesNotExist:
        raise Http404("No such sandbox payment.") from None


def _test_cards() -> list[dict[str, str]]:
    return [
        {
            "number": " ".join(n[i : i + 4] for i in range(0, 16, 4)),
            "name": s.name,
            "outcome": s.outcome,
        }
        for n, s in CARD_SCENARIOS.items()
    ]


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest, charge_id: str) -> HttpResponse:
    charge = _charge(charge_id)
    error = ""
    if request.method == "POST" and charge.status == "requires_action":
        try:
            status = _sandbox().complete_checkout(
                provider_payment_id=charge.id, card_number=request.POST.get("card_number", "")
            )
        except ProviderRequestError as exc:
            error = exc.message
        else:
            charge.refresh_from_db()
            if status == "requires_action":  # a 3-D Secure card: on to the challenge
                return HttpResponseRedirect(_sandbox()._action_url(charge))
            return HttpResponseRedirect(charge.return_url)
    elif charge.status != "requires_action":
        return HttpResponseRedirect(charge.return_url)
    return render(
        request,
        "paydesk/sandbox/checkout.html",
        {
            "charge": charge,
            "amount": Money(charge.amount, charge.currency),
            "cards": _test_cards(),
            "error": error,
        },
        status=400 if error else 200,
    )


@require_http_methods(["GET", "POST"])
def challenge(request: HttpRequest, charge_id: str) -> HttpResponse:
    charge = _charge(charge_id)
    if charge.status != "requires_action" or charge.scenario != "3ds":
        return HttpResponseRedirect(charge.return_url)
    if request.method == "POST":
        _sandbox().complete_challenge(
            provider_payment_id=charge.id, passed=request.POST.get("outcome") == "pass"
        )
        return HttpResponseRedirect(charge.return_url)
    return render(
        request,
        "paydesk/sandbox/challenge.html",
        {"charge": charge, "amount": Money(charge.amount, charge.currency)},
    )
