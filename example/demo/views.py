"""The demo's landing page: where everything is, and what is waiting for staff."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from paydesk.models import BankTransfer, FraudAssessment, Payment, ReviewStatus
from paydesk.models.eft import OPEN_STATUSES
from paydesk.states import PaymentStatus

#: Where the host project mounts paydesk's staff dashboard (``paydesk.dashboard.urls``).
DASHBOARD_PATH = "/dashboard/"


def _mounted(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _reverse(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def home(request: HttpRequest) -> HttpResponse:
    context = {
        "dashboard_url": DASHBOARD_PATH if _mounted(DASHBOARD_PATH) else "",
        "dashboard_path": DASHBOARD_PATH,
        "swagger_url": _reverse("paydesk:api:docs"),
        "redoc_url": _reverse("paydesk:api:redoc"),
        "schema_url": _reverse("paydesk:api:schema"),
        "payments": Payment.objects.count(),
        "held": FraudAssessment.objects.filter(
            review_status=ReviewStatus.PENDING, payment__status=PaymentStatus.PENDING
        ).count(),
        "transfers": BankTransfer.objects.filter(status__in=OPEN_STATUSES).count(),
    }
    return render(request, "demo/home.html", context)
