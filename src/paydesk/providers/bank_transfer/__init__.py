"""The bank-transfer (EFT, wire, "havale") provider: payments that staff approve by hand.

This module owns one decision: what a manual bank transfer looks like through the provider
seam. No money moves through paydesk. ``create_payment`` creates a ``BankTransfer`` record
(its unique reference, a snapshot of the account details, an expiry) and answers
``requires_action`` with a redirect to the customer's instructions page
(``paydesk:bank-transfer``), where the customer reads the bank details and may upload a
receipt. The payment then waits until a staff member approves or rejects it through
``paydesk.services.eft`` (or the admin), or until ``expire_bank_transfers`` expires it.

``get_payment_status`` reads the record: approved -> captured, rejected -> failed
(``transfer_rejected``), expired or cancelled -> cancelled, otherwise still
``requires_action``. ``cancel_payment`` closes an open transfer. ``create_refund`` records a
*manual* refund: it completes at once with ``provider_refund_id`` ``manual-<reference>``
(``-2``, ``-3``... for later ones), and somebody must send the money back from the bank
account by hand. There are no webhooks: the bank does not tell paydesk anything.

OPTIONS (strings are accepted for every value, so they can come from the environment):

==================  ===========  ===============================================================
option              default      meaning
==================  ===========  ===============================================================
ACCOUNT_HOLDER      (required)   the account holder's name shown to the customer
IBAN                ""           IBAN (checksum verified); IBAN or ACCOUNT_NUMBER is required
BIC / SWIFT         ""           the bank's BIC (8 or 11 characters)
BANK_NAME           ""           the bank's name
ACCOUNT_NUMBER      ""           a domestic account number, where IBAN is not used
INSTRUCTIONS        ""           extra text shown under the bank details
EXPIRY_HOURS        72           hours the customer has to transfer before the payment expires
REFERENCE_PREFIX    "PD"         up to 6 letters/digits in front of each reference (PD-XXXX-XXXX)
RECEIPT_MAX_SIZE    5242880      largest receipt upload, in bytes (5 MB)
RECEIPT_TYPES       pdf,png,jpeg receipt file types accepted (also gif, webp)
FOUR_EYES           False        the approver must not be whoever recorded the receipt
CURRENCIES          (any)        ISO codes this account can receive, e.g. "EUR" or ["EUR"]
TEST_MODE           False        accept the test tokens below; never in production
==================  ===========  ===============================================================

Test tokens, honoured only with ``TEST_MODE`` (the provider contract and demos need a
payment that completes without a human; anywhere real, any non-empty token is refused):

* ``bt_test_pending``: the normal flow, as with no token;
* ``bt_test_approved``: the transfer is recorded as already approved (captured at once);
* ``bt_test_declined``: a failed payment with code ``card_declined``. A bank transfer has no
  card to decline; this stands for "the payer's bank refused the transfer", the closest
  meaning in paydesk's taxonomy, so the contract's decline path can be exercised. No transfer
  record is created for it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from ...exceptions import ProviderProcessingError, ProviderRequestError
from ...money import Money, is_supported_currency
from ...types import (
    CancelRequest,
    Capability,
    ConfirmRequest,
    NextAction,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
)
from ..base import PaymentProvider
from .errors import FourEyesViolation, ReceiptRejected
from .receipts import DEFAULT_RECEIPT_TYPES, parse_receipt_types

__all__ = [
    "TEST_APPROVED",
    "TEST_DECLINED",
    "TEST_PENDING",
    "BankTransferProvider",
    "FourEyesViolation",
    "ReceiptRejected",
    "format_iban",
    "iban_is_valid",
]

TEST_PENDING = "bt_test_pending"
TEST_APPROVED = "bt_test_approved"
TEST_DECLINED = "bt_test_declined"
TEST_TOKENS = frozenset({TEST_PENDING, TEST_APPROVED, TEST_DECLINED})

DEFAULT_EXPIRY_HOURS = 72
DEFAULT_RECEIPT_MAX_SIZE = 5 * 1024 * 1024
REFERENCE_ATTEMPTS = 10

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def _positive_int(name: str, value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, float | bool):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}.") from None
    if number <= 0:
        raise ValueError(f"{name} must be greater than zero, got {value!r}.")
    return number


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 check: country code, check digits, and the mod-97 checksum."""
    compact = "".join(iban.split()).upper()
    if not (15 <= len(compact) <= 34) or not compact.isalnum():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    digits = "".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def format_iban(iban: str) -> str:
    """``DE89370400440532013000`` -> ``DE89 3704 0044 0532 0130 00`` (as printed on paper)."""
    compact = "".join(iban.split()).upper()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


class BankTransferProvider(PaymentProvider):
    display_name = "Bank transfer"
    icon = "building-columns"
    capabilities = frozenset(
        {
            Capability.CANCEL,
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.MULTIPLE_REFUNDS,
            Capability.SYNC,
            Capability.HOSTED_CHECKOUT,
        }
    )
    required_options = ("ACCOUNT_HOLDER",)

    def __init__(self, *, alias: str, options: Any = None) -> None:
        super().__init__(alias=alias, options=options)
        opts = self.options
        self.account_holder = _text(opts.get("ACCOUNT_HOLDER"))
        self.iban = "".join(_text(opts.get("IBAN")).split()).upper()
        self.bic = _text(opts.get("BIC") or opts.get("SWIFT")).replace(" ", "").upper()
        self.bank_name = _text(opts.get("BANK_NAME"))
        self.account_number = _text(opts.get("ACCOUNT_NUMBER"))
        self.instructions = _text(opts.get("INSTRUCTIONS"))
        self.expiry_hours = _positive_int(
            "EXPIRY_HOURS", opts.get("EXPIRY_HOURS"), DEFAULT_EXPIRY_HOURS
        )
        self.receipt_max_size = _positive_int(
            "RECEIPT_MAX_SIZE", opts.get("RECEIPT_MAX_SIZE"), DEFAULT_RECEIPT_MAX_SIZE
        )
        self.receipt_types = parse_receipt_types(opts.get("RECEIPT_TYPES", DEFAULT_RECEIPT_TYPES))
        self.four_eyes = _bool("FOUR_EYES", opts.get("FOUR_EYES"), False)
        self.test_mode = _bool("TEST_MODE", opts.get("TEST_MODE"), False)
        prefix = _text(opts.get("REFERENCE_PREFIX", "PD")).upper()
        if len(prefix) > 6 or not (prefix.isalnum() or prefix == ""):
            raise ValueError(f"REFERENCE_PREFIX must be up to 6 letters or digits, got {prefix!r}.")
        self.reference_prefix = prefix
        currencies = opts.get("CURRENCIES")
        if currencies:
            items = currencies.split(",") if isinstance(currencies, str) else currencies
            codes = frozenset(str(c).strip().upper() for c in items if str(c).strip())
            unknown = sorted(c for c in codes if not is_supported_currency(c))
            if unknown:
                raise ValueError(f"CURRENCIES: unknown ISO 4217 code(s) {', '.join(unknown)}.")
            self.supported_currencies = codes  # type: ignore[misc]  # per instance, by design

    # -- configuration -------------------------------------------------------------------

    def configuration_problems(self) -> list[str]:
        problems = super().configuration_problems()
        if not (self.iban or self.account_number):
            problems.append("OPTIONS['IBAN'] or OPTIONS['ACCOUNT_NUMBER'] must be set")
        if self.iban and not iban_is_valid(self.iban):
            problems.append(f"OPTIONS['IBAN'] {self.iban!r} fails the IBAN checksum")
        if self.bic and (len(self.bic) not in (8, 11) or not self.bic.isalnum()):
            problems.append(f"OPTIONS['BIC'] {self.bic!r} is not 8 or 11 letters/digits")
        return problems

    def bank_details(self) -> dict[str, str]:
        """What the customer is shown, snapshotted onto each transfer when it is created."""
        return {
            "account_holder": self.account_holder,
            "iban": format_iban(self.iban) if self.iban else "",
            "bic": self.bic,
            "bank_name": self.bank_name,
            "account_number": self.account_number,
            "instructions": self.instructions,
        }

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _model() -> Any:
        from ...models.eft import BankTransfer

        return BankTransfer

    def _error(self, message: str, *, provider_code: str) -> ProviderRequestError:
        return ProviderRequestError(
            message, provider=self.alias, code="invalid_request", provider_code=provider_code
        )

    def _result(self, transfer: Any) -> PaymentResult:
        from ...models.eft import BankTransferStatus

        money = Money(transfer.amount, transfer.currency)
        raw = {
            "reference": transfer.reference,
            "status": transfer.status,
            "amount": str(money.amount),
            "currency": money.currency,
            "expires_at": transfer.expires_at.isoformat(),
        }
        status = transfer.status
        if status == BankTransferStatus.APPROVED:
            return PaymentResult(
                status=ProviderStatus.CAPTURED,
                provider_payment_id=transfer.reference,
                amount_authorized=money,
                amount_captured=money,
                raw=raw,
            )
        if status == BankTransferStatus.REJECTED:
            return PaymentResult(
                status=ProviderStatus.FAILED,
                provider_payment_id=transfer.reference,
                failure=ProviderFailure(
                    code="transfer_rejected",
                    message=rejection_message(transfer.reason),
                    provider_code="rejected",
                ),
                raw=raw,
            )
        if status in (BankTransferStatus.EXPIRED, BankTransferStatus.CANCELLED):
            return PaymentResult(
                status=ProviderStatus.CANCELLED, provider_payment_id=transfer.reference, raw=raw
            )
        return PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            provider_payment_id=transfer.reference,
            next_action=NextAction(
                type="redirect",
                redirect_url=reverse("paydesk:bank-transfer", args=[transfer.payment_id]),
            ),
            raw=raw,
        )

    def _find(self, *, reference: str = "", key: str = "", payment_id: str = "") -> Any:
        model = self._model()
        transfer = None
        if reference:
            transfer = model.objects.filter(reference=reference).first()
        if transfer is None and key:
            transfer = model.objects.filter(idempotency_key=key).first()
        if transfer is None and payment_id:
            transfer = model.objects.filter(payment_id=payment_id).first()
        return transfer

    def _locked(self, reference: str) -> Any:
        model = self._model()
        try:
            return model.objects.select_for_update().get(reference=reference)
        except model.DoesNotExist:
            raise self._error(
                f"No bank transfer with reference {reference!r}.", provider_code="not_found"
            ) from None

    # -- operations ----------------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        from ...models.eft import BankTransferStatus, new_transfer_reference

        model = self._model()
        existing = model.objects.filter(idempotency_key=request.idempotency_key).first()
        if existing is not None:
            return self._result(existing)  # same key: the first answer, not a second transfer

        token = request.payment_method_token
        if token and not (self.test_mode and token in TEST_TOKENS):
            raise self._error(
                f"Bank transfers take no payment method token (got {token!r}); process the "
                "payment without one and send the customer to the instructions page.",
                provider_code="unexpected_token",
            )
        if token == TEST_DECLINED:
            return PaymentResult(
                status=ProviderStatus.FAILED,
                failure=ProviderFailure(
                    code="card_declined",
                    message="Test mode: the payer's bank refused the transfer.",
                    provider_code=TEST_DECLINED,
                ),
                raw={"test_token": token},
            )
        problems = self.configuration_problems()
        if problems:
            raise self._error(
                f"Bank transfer provider {self.alias!r} is not configured: {'; '.join(problems)}.",
                provider_code="not_configured",
            )
        previous = model.objects.filter(payment_id=request.payment_id).first()
        if previous is not None:
            raise self._error(
                f"Payment {request.payment_id} already has bank transfer {previous.reference} "
                f"({previous.status}); a payment has one transfer reference. Create a new "
                "payment for a new transfer.",
                provider_code="transfer_exists",
            )

        now = timezone.now()
        approved = token == TEST_APPROVED
        for _ in range(REFERENCE_ATTEMPTS):
            try:
                with transaction.atomic():
                    transfer = model.objects.create(
                        payment_id=request.payment_id,
                        reference=new_transfer_reference(self.reference_prefix),
                        idempotency_key=request.idempotency_key,
                        amount=request.amount.amount,
                        currency=request.amount.currency,
                        bank_details=self.bank_details(),
                        expires_at=now + dt.timedelta(hours=self.expiry_hours),
                        status=(
                            BankTransferStatus.APPROVED
                            if approved
                            else BankTransferStatus.AWAITING_TRANSFER
                        ),
                        decided_at=now if approved else None,
                        note="TEST_MODE: approved by test token" if approved else "",
                    )
            except IntegrityError:
                # Three unique columns: the same key raced us (answer as the winner did), the
                # payment got a transfer meanwhile, or the random reference collided (retry).
                winner = model.objects.filter(idempotency_key=request.idempotency_key).first()
                if winner is not None:
                    return self._result(winner)
                if model.objects.filter(payment_id=request.payment_id).exists():
                    raise self._error(
                        f"Payment {request.payment_id} already has a bank transfer.",
                        provider_code="transfer_exists",
                    ) from None
                continue
            return self._result(transfer)
        raise ProviderProcessingError(
            f"Could not find an unused transfer reference in {REFERENCE_ATTEMPTS} tries: every "
            "one generated was taken. With about 10^12 possible references this means the "
            "random source is broken; retry the payment, and report it if it happens again.",
            provider=self.alias,
            provider_code="reference_exhausted",
        )

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        transfer = self._find(
            reference=request.provider_payment_id,
            key=request.idempotency_key,
            payment_id=request.payment_id,
        )
        if transfer is None:
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        return self._result(transfer)

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        """The customer came back from the instructions page: report where things stand."""
        transfer = self._find(reference=request.provider_payment_id, payment_id=request.payment_id)
        if transfer is None:
            raise self._error(
                f"No bank transfer for payment {request.payment_id}.", provider_code="not_found"
            )
        return self._result(transfer)

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        from ...models.eft import BankTransferStatus

        with transaction.atomic():
            transfer = self._locked(request.provider_payment_id)
            if transfer.is_open:
                transfer.status = BankTransferStatus.CANCELLED
                transfer.reason = request.reason or "cancelled"
                transfer.decided_at = timezone.now()
                transfer.save(update_fields=["status", "reason", "decided_at", "updated_at"])
            elif transfer.status not in (BankTransferStatus.CANCELLED, BankTransferStatus.EXPIRED):
                raise self._error(
                    f"Bank transfer {transfer.reference} is {transfer.status}; only a transfer "
                    "still awaiting a decision can be cancelled (refund an approved one).",
                    provider_code="not_cancellable",
                )
            return self._result(transfer)

    def create_refund(self, request: RefundRequest) -> RefundResult:
        """Record a manual refund; the money itself must be sent back from the bank by hand."""
        from ...models import Refund
        from ...models.eft import BankTransferStatus

        with transaction.atomic():
            transfer = self._locked(request.provider_payment_id)
            refunds: dict[str, Any] = dict(transfer.refunds or {})
            if request.idempotency_key in refunds:
                done = refunds[request.idempotency_key]
                return RefundResult(status="completed", provider_refund_id=done["id"], raw=done)
            if transfer.status != BankTransferStatus.APPROVED:
                raise self._error(
                    f"Bank transfer {transfer.reference} is {transfer.status}; only an approved "
                    "transfer can be refunded.",
                    provider_code="not_approved",
                )
            if request.amount.currency != transfer.currency:
                raise self._error(
                    f"Refund is in {request.amount.currency}, the transfer in {transfer.currency}.",
                    provider_code="currency_mismatch",
                )
            already = sum((Decimal(r["amount"]) for r in refunds.values()), Decimal(0))
            if already + request.amount.amount > transfer.amount:
                raise self._error(
                    f"Refunding {request.amount} would exceed the {transfer.amount} "
                    f"{transfer.currency} received ({already} already refunded).",
                    provider_code="refund_exceeds_transfer",
                )
            # Who asked for the refund is paydesk's Refund.processed_by (services.create_refund
            # (user=...)); the request does not carry it, so read it where it is recorded.
            staff = (
                Refund.objects.filter(pk=request.refund_id).select_related("processed_by").first()
            )
            user = staff.processed_by if staff is not None else None
            number = len(refunds) + 1
            record = {
                "id": f"manual-{transfer.reference}" + ("" if number == 1 else f"-{number}"),
                "refund_id": request.refund_id,
                "reference": transfer.reference,
                "amount": str(request.amount.amount),
                "currency": request.amount.currency,
                "reason": request.reason,
                "refunded_by": user.get_username() if user is not None else "",
                "refunded_by_id": user.pk if user is not None else None,
                "manual": True,
                "note": "Recorded only: send the money back from the bank account by hand.",
                "created_at": timezone.now().isoformat(),
            }
            refunds[request.idempotency_key] = record
            transfer.refunds = refunds
            transfer.save(update_fields=["refunds", "updated_at"])
        return RefundResult(status="completed", provider_refund_id=record["id"], raw=record)


def rejection_message(reason: str) -> str:
    """The payment's failure message for a rejected transfer (the customer may see it)."""
    return f"Bank transfer rejected: {reason}" if reason else "Bank transfer rejected."
