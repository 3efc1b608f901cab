"""Errors specific to bank transfers, placed in paydesk's one exception tree.

::

    PaymentValidationError (400)
    └── ReceiptRejected              400  invalid_receipt     (field "receipt")
    PaymentStateError (409)
    └── FourEyesViolation            409  four_eyes_required
"""

from __future__ import annotations

from ...exceptions import PaymentStateError, PaymentValidationError

__all__ = ["FourEyesViolation", "ReceiptRejected"]


class ReceiptRejected(PaymentValidationError):
    """The uploaded receipt is missing, empty, too large or not an allowed file type."""

    default_code = "invalid_receipt"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field or "receipt")


class FourEyesViolation(PaymentStateError):
    """``FOUR_EYES`` is on and the approver is the one who recorded the receipt (or paid)."""

    default_code = "four_eyes_required"
