"""The API's one exception handler: every error body is ``{"error": {...}}``.

This module owns one decision: how any failure, paydesk's own or DRF's, is shown to an API
client. The body is always::

    {"error": {"type": "...", "code": "...", "message": "...", "param": null | "field"}}

``code`` is stable (paydesk's error tree, or one of the API's own codes below); ``type``
groups codes the way a client branches on them; ``param`` names the offending field when
there is one. Nothing here returns a 500 for bad input.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..exceptions import (
    AuthenticationRequired,
    PaydeskError,
    PaymentDeclined,
    PaymentStateError,
    PaymentValidationError,
    ProviderError,
    ProviderRequestError,
)

__all__ = [
    "APIError",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "error_body",
    "exception_handler",
]

logger = logging.getLogger("paydesk.api")

# The ``type`` field: a small, stable set a client can switch on.
INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
IDEMPOTENCY = "idempotency_error"
STATE = "state_error"
CARD = "card_error"
PROVIDER = "provider_error"
API = "api_error"


#: Validation codes the API reports as they are; DRF's own field codes become ``invalid_request``.
VALIDATION_CODES = frozenset(
    {
        "invalid_amount",
        "amount_precision",
        "unknown_currency",
        "currency_mismatch",
        "float_not_allowed",
        "unknown_field",
        "invalid_request",
    }
)


class APIError(drf_exceptions.APIException):
    """An API-level error with an explicit type, code and param."""

    error_type = INVALID_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(detail=message, code=code or self.default_code)
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.code = code or str(self.default_code)
        self.param = param


class IdempotencyKeyReused(APIError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    error_type = IDEMPOTENCY


class IdempotencyInProgress(APIError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_in_progress"
    error_type = IDEMPOTENCY


def error_body(*, type: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type, "code": code, "message": message, "param": param}}


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str, str]:
    """(param, code, message) of the first leaf in a DRF ValidationError's detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = str(key)
            if name in ("non_field_errors", "__all__"):
                name = ""
            param = f"{path}.{name}" if path and name else (name or path)
            return _first_validation_error(value, param)
        return (path or None, "invalid_request", "Invalid request.")
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                sub = f"{path}[{index}]" if path else f"[{index}]"
                return _first_validation_error(value, sub)
            return _first_validation_error(value, path)
        return (path or None, "invalid_request", "Invalid request.")
    code = getattr(detail, "code", None) or "invalid"
    message = str(detail)
    if path and not message.lower().startswith(path.lower()):
        message = f"{path}: {message}"
    return (path or None, str(code), message)


def _paydesk_type(exc: PaydeskError) -> str:
    # 402: the charge itself was refused (a decline, 3-D Secure needed, paydesk's fraud rules).
    if isinstance(exc, PaymentDeclined | AuthenticationRequired) or exc.http_status == 402:
        return CARD
    if isinstance(exc, ProviderRequestError):
        return INVALID_REQUEST
    if isinstance(exc, ProviderError):
        return PROVIDER
    if isinstance(exc, PaymentStateError):
        return STATE
    if exc.http_status < 500:
        return INVALID_REQUEST
    return API


def _drf_type(exc: drf_exceptions.APIException) -> str:
    if isinstance(exc, APIError):
        return exc.error_type
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return AUTHENTICATION
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return PERMISSION
    if isinstance(exc, drf_exceptions.NotFound):
        return NOT_FOUND
    if isinstance(exc, drf_exceptions.Throttled):
        return RATE_LIMIT
    if exc.status_code >= 500:
        return API
    return INVALID_REQUEST


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER`` for paydesk's views (set per view in ``base.py``)."""
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, PaydeskError):
        param = getattr(exc, "field", None) if isinstance(exc, PaymentValidationError) else None
        status_code = exc.http_status
        body = error_body(type=_paydesk_type(exc), code=exc.code, message=exc.message, param=param)
        if isinstance(exc, ProviderError):
            body["error"]["provider"] = exc.provider or None
            body["error"]["provider_code"] = exc.provider_code
            body["error"]["retryable"] = exc.retryable
        if status_code >= 500:
            logger.warning("paydesk API error %s: %s", exc.code, exc.message)
    elif isinstance(exc, drf_exceptions.APIException):
        status_code = exc.status_code
        if isinstance(exc, drf_exceptions.ValidationError):
            param, code, message = _first_validation_error(exc.detail)
            code = code if code in VALIDATION_CODES else "invalid_request"
            body = error_body(type=INVALID_REQUEST, code=code, message=message, param=param)
        else:
            if isinstance(exc, APIError):
                code, param = exc.code, exc.param
            else:
                code, param = _drf_code(exc), None
            body = error_body(type=_drf_type(exc), code=code, message=str(exc.detail), param=param)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait is not None:
            headers["Retry-After"] = str(int(wait))
    else:
        return None  # a real bug: let Django's 500 handling (and logging) see it

    set_rollback()
    return Response(body, status=status_code, headers=headers)


_DRF_CODES: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
}


def _drf_code(exc: drf_exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str) and codes != exc.default_code:
        return codes  # raised with an explicit code, e.g. "api_key_revoked"
    for cls in type(exc).__mro__:
        if cls in _DRF_CODES:
            return _DRF_CODES[cls]
    return codes if isinstance(codes, str) else "api_error"
