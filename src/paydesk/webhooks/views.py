"""The universal webhook endpoint: ``POST <prefix>/webhooks/<provider alias>/``.

This module owns one decision: how an HTTP request becomes a ``WebhookRequest`` and back.
It reads at most ``MAX_BODY_SIZE + 1`` bytes (so an oversized body is refused without being
buffered), is exempt from CSRF (providers cannot send a token; the signature is the
authentication) and from ``ATOMIC_REQUESTS`` (the pipeline commits the stored delivery
before processing it, so a processing failure can never roll the delivery back).
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .pipeline import WebhookRequest, handle, max_body_size


def _headers(request: HttpRequest) -> dict[str, str]:
    return {key: value for key, value in request.headers.items()}


@csrf_exempt
@transaction.non_atomic_requests
@require_POST
def webhook(request: HttpRequest, alias: str) -> HttpResponse:
    limit = max_body_size()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        body, truncated = b"", True
    else:
        body = request.read(limit + 1)
        truncated = len(body) > limit
    result = handle(
        WebhookRequest(
            alias=alias,
            body=body,
            headers=_headers(request),
            remote_addr=request.META.get("REMOTE_ADDR"),
            content_length=declared or None,
            truncated=truncated,
        )
    )
    response = JsonResponse(result.body, status=result.status)
    for name, value in result.headers.items():
        response[name] = value
    return response
