"""paydesk's one exception tree.

This module owns one decision: how every failure paydesk can report is named, which HTTP
status and stable ``code`` it maps to, and what its message tells the caller to do next.
Catch the broadest class you can act on; never match on message text, use ``code``.

::

    PaydeskError                              500  paydesk_error
    ├── ConfigurationError                    500  configuration_error
    ├── MoneyError (also ValueError)          400  invalid_amount
    │   ├── UnknownCurrency                   400  unknown_currency
    │   ├── CurrencyMismatch                  400  currency_mismatch
    │   └── AmountPrecisionError              400  amount_precision
    ├── PaymentValidationError (ValueError)   400  invalid_request
    │   └── PaymentMethodNotUsable            400  payment_method_not_usable
    ├── ProviderError                         502  provider_error
    │   ├── PaymentDeclined                   402  card_declined, insufficient_funds, ...
    │   ├── AuthenticationRequired            402  authentication_required
    │   ├── ProviderUnavailable               503  provider_unavailable / rate_limited   (retryable)
    │   ├── ProviderProcessingError           502  processing_error
    │   ├── ProviderRequestError              400  invalid_request
    │   └── ProviderAuthenticationError       500  provider_authentication
    ├── WebhookError                          400  webhook_error
    │   └── SignatureVerificationError        400  invalid_signature
    └── PaymentStateError                     409  invalid_state
        ├── InvalidTransition                 409  invalid_transition
        ├── PaymentInProgress                 409  payment_in_progress
        ├── RefundExceedsCaptured             409  refund_exceeds_captured
        ├── RefundNotAllowed                  409  refund_not_allowed
        ├── NotSupported                      409  not_supported
        ├── FraudBlocked                      402  fraud_blocked
        └── PaymentUnderReview                409  payment_under_review

``ProviderError`` carries ``provider`` (alias), ``code`` (paydesk's taxonomy, the same for
every provider), ``provider_code`` (the provider's own code, for support tickets),
``request_id`` and ``retryable``. Only errors with ``retryable=True`` may be retried, and a
retry must reuse the same idempotency key.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AmountPrecisionError",
    "AuthenticationRequired",
    "ConfigurationError",
    "CurrencyMismatch",
    "FraudBlocked",
    "InvalidTransition",
    "MoneyError",
    "NotSupported",
    "PaydeskError",
    "PaymentDeclined",
    "PaymentInProgress",
    "PaymentMethodNotUsable",
    "PaymentStateError",
    "PaymentUnderReview",
    "PaymentValidationError",
    "ProviderAuthenticationError",
    "ProviderError",
    "ProviderProcessingError",
    "ProviderRequestError",
    "ProviderUnavailable",
    "RefundExceedsCaptured",
    "RefundNotAllowed",
    "SignatureVerificationError",
    "UnknownCurrency",
    "WebhookError",
    "error_for_code",
]


class PaydeskError(Exception):
    """Base of every error paydesk raises on purpose."""

    default_code: ClassVar[str] = "paydesk_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def as_dict(self) -> dict[str, Any]:
        """The body the REST API returns for this error."""
        return {"code": self.code, "message": self.message}


class ConfigurationError(PaydeskError):
    """paydesk or a provider is set up wrongly; ``manage.py check`` names the setting."""

    default_code = "configuration_error"


class MoneyError(PaydeskError, ValueError):
    """An amount or currency that paydesk refuses rather than guesses about."""

    default_code = "invalid_amount"
    http_status = 400


class UnknownCurrency(MoneyError):
    default_code = "unknown_currency"


class CurrencyMismatch(MoneyError):
    default_code = "currency_mismatch"


class AmountPrecisionError(MoneyError):
    default_code = "amount_precision"


class PaymentValidationError(PaydeskError, ValueError):
    """The caller asked for something invalid; nothing was written."""

    default_code = "invalid_request"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        body = super().as_dict()
        if self.field:
            body["field"] = self.field
        return body


class PaymentMethodNotUsable(PaymentValidationError):
    default_code = "payment_method_not_usable"


class ProviderError(PaydeskError):
    """A provider refused or failed a call. ``code`` is paydesk's taxonomy."""

    default_code = "provider_error"
    http_status = 502
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        code: str | None = None,
        provider_code: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider = provider
        self.provider_code = provider_code
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable

    def as_dict(self) -> dict[str, Any]:
        body = super().as_dict()
        body.update(
            provider=self.provider,
            provider_code=self.provider_code,
            request_id=self.request_id,
            retryable=self.retryable,
        )
        return body


class PaymentDeclined(ProviderError):
    """The customer's bank or the provider declined; ask for another payment method."""

    default_code = "card_declined"
    http_status = 402


class AuthenticationRequired(ProviderError):
    """The customer must authenticate (3-D Secure); show them the next action."""

    default_code = "authentication_required"
    http_status = 402


class ProviderUnavailable(ProviderError):
    """Timeout, connection error, 429 or 5xx: safe to retry with the same idempotency key."""

    default_code = "provider_unavailable"
    http_status = 503
    default_retryable = True


class ProviderProcessingError(ProviderError):
    default_code = "processing_error"
    http_status = 502


class ProviderRequestError(ProviderError):
    """The provider says our request was invalid; retrying it unchanged will fail again."""

    default_code = "invalid_request"
    http_status = 400


class ProviderAuthenticationError(ProviderError):
    """The provider refused our credentials; check the provider's OPTIONS in PAYDESK."""

    default_code = "provider_authentication"
    http_status = 500


class WebhookError(PaydeskError):
    default_code = "webhook_error"
    http_status = 400


class SignatureVerificationError(WebhookError):
    default_code = "invalid_signature"


class PaymentStateError(PaydeskError):
    """The payment or refund is not in a state that allows this operation."""

    default_code = "invalid_state"
    http_status = 409


class InvalidTransition(PaymentStateError):
    default_code = "invalid_transition"


class PaymentInProgress(PaymentStateError):
    """Another request is already talking to the provider for this payment."""

    default_code = "payment_in_progress"


class RefundExceedsCaptured(PaymentStateError):
    default_code = "refund_exceeds_captured"


class RefundNotAllowed(PaymentStateError):
    """The project's refund policy refused this refund."""

    default_code = "refund_not_allowed"


class NotSupported(PaymentStateError):
    """The provider does not declare the capability this operation needs."""

    default_code = "not_supported"


class FraudBlocked(PaymentStateError):
    """paydesk's fraud rules refused the payment; it was not sent to the provider.

    The payment is recorded as failed (``failure_code="fraud_blocked"``). The message is
    safe to show a customer and names no rule; ``payment_id``, ``score`` and ``reasons``
    (the rules that fired) are for staff and logs, not for the API body.
    """

    default_code = "fraud_blocked"
    http_status = 402

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        payment_id: str = "",
        score: int = 0,
        reasons: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.payment_id = payment_id
        self.score = score
        self.reasons = list(reasons or [])


class PaymentUnderReview(PaymentStateError):
    """The payment is held for a staff fraud review; it is sent once staff approve it."""

    default_code = "payment_under_review"


# Provider-neutral taxonomy codes -> the class that represents them. Providers map their
# own codes onto these; ``error_for_code`` builds the right class for a code.
_CODE_CLASSES: dict[str, type[ProviderError]] = {
    "card_declined": PaymentDeclined,
    "insufficient_funds": PaymentDeclined,
    "expired_card": PaymentDeclined,
    "incorrect_cvc": PaymentDeclined,
    "incorrect_number": PaymentDeclined,
    "lost_card": PaymentDeclined,
    "stolen_card": PaymentDeclined,
    "fraudulent": PaymentDeclined,
    "authentication_required": AuthenticationRequired,
    "processing_error": ProviderProcessingError,
    "rate_limited": ProviderUnavailable,
    "provider_unavailable": ProviderUnavailable,
    "invalid_request": ProviderRequestError,
    "idempotency_error": ProviderRequestError,
    "provider_authentication": ProviderAuthenticationError,
}

DECLINE_CODES = frozenset(code for code, cls in _CODE_CLASSES.items() if cls is PaymentDeclined)


def error_for_code(
    code: str,
    message: str,
    *,
    provider: str = "",
    provider_code: str | None = None,
    request_id: str | None = None,
    retryable: bool | None = None,
) -> ProviderError:
    """Build the ``ProviderError`` subclass that represents taxonomy ``code``."""
    cls = _CODE_CLASSES.get(code, ProviderError)
    return cls(
        message,
        provider=provider,
        code=code,
        provider_code=provider_code,
        request_id=request_id,
        retryable=retryable,
    )
