"""The universal webhook endpoint: ``POST <prefix>/webhooks/<provider alias>/``.

This module owns one decision: how an HTTP request becomes a ``WebhookRequest`` and back.
It reads at most ``MAX_BODY_SIZE + 1`` bytes (so an oversized body is refused without being
buffered), is exempt from CSRF (providers cannot send a token; the signature is the
authentication) and from ``ATOMIC_REQUESTS`` (the pipeline commits the stored delivery
before processing it, so a processing failure can never roll the delivery back).
"""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.http.request import HttpHeaders
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .pipeline import WebhookRequest, handle, max_body_size

_UNPREFIXED = frozenset(HttpHeaders.UNPREFIXED_HEADERS)


def _headers(request: HttpRequest) -> dict[str, str]:
    """The request's headers as ``request.headers.items()`` lists them (names, order).

    Built in one pass over ``META`` with ``HttpHeaders``'s own naming rule, without the
    case-insensitive mapping ``request.headers`` would build first (and nothing else reads).
    """
    headers = {}
    for key, value in request.META.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = value
        elif key in _UNPREFIXED:
            headers[key.replace("_", "-").title()] = value
    return headers


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
    # The pipeline's answers are small dicts of strings: plain json.dumps, as JsonResponse
    # would write them, without its encoder class.
    response = HttpResponse(
        json.dumps(result.body), content_type="application/json", status=result.status
    )
    for name, value in result.headers.items():
        response[name] = value
    return response
