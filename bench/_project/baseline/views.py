from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import RawDelivery


@csrf_exempt
@require_POST
def baseline(request: HttpRequest) -> HttpResponse:
    """A bare webhook endpoint: one INSERT of the raw body, then 200."""
    RawDelivery.objects.create(body=request.body.decode("utf-8", errors="replace"))
    return HttpResponse(status=200)


@require_GET
def ping(request: HttpRequest) -> HttpResponse:
    """Readiness probe for the bench runner; touches no database."""
    return HttpResponse("ok")
