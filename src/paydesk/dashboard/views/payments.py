"""Dashboard area: payments (placeholder until its page is written)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from ..access import staff_view
from .common import render_page


@staff_view
def index(request: HttpRequest) -> HttpResponse:
    return render_page(request, "paydesk/dashboard/base.html", {}, section="payments")


urlpatterns = [path("payments/", index, name="payments")]
