"""iyzico's error codes, in paydesk's taxonomy.

This module owns one decision: which ``paydesk.exceptions`` code an iyzico failure becomes.
iyzico answers a refused call with ``status: "failure"`` plus ``errorCode``, ``errorGroup``
and ``errorMessage`` (docs.iyzico.com/en/add-ons/error-codes), usually with HTTP 200:

* general codes ``1``/``2`` are "System error occurred": the outcome is unknown, retryable;
* ``1000`` is an invalid ``IYZWSv2`` signature (answered with HTTP 200 on ``/payment/*``, seen
  in third-party integrations) and ``1001`` an unknown API key (unverified): both are
  ``provider_authentication``;
* ``6000``/``6001`` are iyzico's fraud engine and blacklist (docs: fraud notifications):
  ``card_declined``, with the code kept as ``provider_code``;
* bank codes start at ``10000``; the common ones map by ``errorGroup`` (``NOT_SUFFICIENT_FUNDS``
  -> ``insufficient_funds`` ...), every other bank code is ``card_declined``;
* anything else is a request iyzico refused: ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...exceptions import (
    DECLINE_CODES,
    ProviderError,
    ProviderProcessingError,
    SignatureVerificationError,
    error_for_code,
)
from ...types import ProviderFailure

__all__ = [
    "AUTH_ERROR_CODES",
    "FRAUD_ERROR_CODES",
    "SYSTEM_ERROR_CODES",
    "ResponseMismatchError",
    "ResponseSignatureError",
    "error_from_failure",
    "failure_from",
    "is_decline",
    "taxonomy_code",
]

SYSTEM_ERROR_CODES = frozenset({"1", "2"})
AUTH_ERROR_CODES = frozenset({"1000", "1001"})
FRAUD_ERROR_CODES = frozenset({"6000", "6001"})

# errorGroup -> taxonomy (docs.iyzico.com error codes, bank group).
_GROUPS: dict[str, str] = {
    "NOT_SUFFICIENT_FUNDS": "insufficient_funds",
    "EXPIRED_CARD": "expired_card",
    "INVALID_CVC2": "incorrect_cvc",
    "INVALID_CVC2_LENGTH": "incorrect_cvc",
    "LOST_CARD": "lost_card",
    "PICKUP_CARD": "lost_card",
    "STOLEN_CARD": "stolen_card",
    "FRAUD_SUSPECT": "fraudulent",
    "INVALID_CARD_NUMBER": "incorrect_number",
    "INVALID_CARD": "incorrect_number",
    "COMMUNICATION_OR_SYSTEM_ERROR": "processing_error",
    "THREEDS_REQUIRED": "authentication_required",
}
# errorCode -> taxonomy, for answers that carry no errorGroup.
_CODES: dict[str, str] = {
    "10051": "insufficient_funds",
    "10054": "expired_card",
    "10084": "incorrect_cvc",
    "10206": "incorrect_cvc",
    "10041": "lost_card",
    "10043": "stolen_card",
    "10034": "fraudulent",
    "10215": "incorrect_number",
    "10214": "processing_error",
    # "Debit cards can only be used with 3-D Secure": the checkout form handles that.
    "10217": "authentication_required",
}

_HINTS: dict[str, str] = {
    "provider_authentication": (
        " Check OPTIONS API_KEY and SECRET_KEY of this provider (sandbox and live keys "
        "differ, and MODE must match them)."
    ),
    "provider_unavailable": " The outcome is unknown; sync the payment or retry later.",
    "invalid_request": " Retrying the same request will fail again.",
}


class ResponseSignatureError(ProviderProcessingError, SignatureVerificationError):
    """An iyzico answer whose ``signature`` does not match: nothing in it is trusted.

    It is a ``ProviderError`` (so the payment services record it and release their lease)
    and a ``SignatureVerificationError``. Retryable: the outcome is unknown, and
    ``sync_payment`` asks again.
    """

    default_code = "invalid_signature"
    http_status = 502
    default_retryable: ClassVar[bool] = True


class ResponseMismatchError(ProviderProcessingError):
    """A signed iyzico answer about another payment, amount or currency than asked for."""

    default_retryable: ClassVar[bool] = True


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def taxonomy_code(error_code: Any, error_group: Any = None) -> str:
    code, group = _text(error_code), _text(error_group).upper()
    if code in AUTH_ERROR_CODES:
        return "provider_authentication"
    if code in SYSTEM_ERROR_CODES:
        return "provider_unavailable"
    if code in FRAUD_ERROR_CODES:
        return "card_declined"
    if group in _GROUPS:
        return _GROUPS[group]
    if code in _CODES:
        return _CODES[code]
    if code.isdigit() and 10000 <= int(code) < 11000:
        return "card_declined"
    return "invalid_request"


def is_decline(data: Mapping[str, Any]) -> bool:
    """Whether a failure is about the customer's card (an outcome, not an error)."""
    code = taxonomy_code(data.get("errorCode"), data.get("errorGroup"))
    return code in DECLINE_CODES or code == "authentication_required"


def _message(data: Mapping[str, Any], operation: str) -> str:
    code, group = _text(data.get("errorCode")), _text(data.get("errorGroup"))
    said = _text(data.get("errorMessage")) or "no message"
    detail = ", ".join(part for part in (f"errorCode {code}" if code else "", group) if part)
    return f"iyzico refused to {operation}: {said}" + (f" ({detail})." if detail else ".")


def error_from_failure(
    data: Mapping[str, Any], *, alias: str, operation: str, outcome_unknown: bool = False
) -> ProviderError:
    """The ``ProviderError`` for an iyzico ``status: failure`` answer.

    ``outcome_unknown=True`` (reads of a payment's outcome) makes credential errors
    retryable too: failing to *read* the outcome must not fail a payment the customer may
    have paid.
    """
    code = taxonomy_code(data.get("errorCode"), data.get("errorGroup"))
    retryable: bool | None = None
    if code == "provider_unavailable" or (outcome_unknown and code == "provider_authentication"):
        retryable = True
    return error_for_code(
        code,
        _message(data, operation) + _HINTS.get(code, ""),
        provider=alias,
        provider_code=_text(data.get("errorCode")) or _text(data.get("errorGroup")) or None,
        request_id=_text(data.get("conversationId")) or None,
        retryable=retryable,
    )


def failure_from(
    data: Mapping[str, Any], *, operation: str = "take the payment"
) -> ProviderFailure:
    """A ``ProviderFailure`` for a declined payment (shown to the customer)."""
    code = taxonomy_code(data.get("errorCode"), data.get("errorGroup"))
    if code not in DECLINE_CODES and code != "authentication_required":
        code = "card_declined" if _text(data.get("errorCode")) else "processing_error"
    return ProviderFailure(
        code=code,
        message=_message(data, operation),
        provider_code=_text(data.get("errorCode")) or _text(data.get("errorGroup")),
    )
