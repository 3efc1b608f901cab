"""The sandbox provider: a deterministic, offline stand-in for a card processor.

This module owns one decision: what the simulated remote side does for each test card. The
outcomes follow the card numbers Stripe documents for test mode, so a team can move from the
sandbox to Stripe without relearning them:

=====================  =============================  ====================================
card number            token                          outcome
=====================  =============================  ====================================
4242 4242 4242 4242    ``pm_sandbox_visa``            succeeds
5555 5555 5555 4444    ``pm_sandbox_mastercard``      succeeds
4000 0000 0000 0002    ``pm_sandbox_declined``        fails: ``card_declined``
4000 0000 0000 9995    ``pm_sandbox_insufficient``    fails: ``insufficient_funds``
4000 0000 0000 0069    ``pm_sandbox_expired``         fails: ``expired_card``
4000 0000 0000 0127    ``pm_sandbox_incorrect_cvc``   fails: ``incorrect_cvc``
4000 0000 0000 0119    ``pm_sandbox_processing_error`` fails: ``processing_error``
4000 0025 0000 3155    ``pm_sandbox_3ds``             requires 3-D Secure (challenge page)
=====================  =============================  ====================================

With no token the payment gets a hosted checkout page (``/paydesk/sandbox/checkout/<id>/``)
where the customer types a test card; 3-D Secure cards then show a challenge page that can be
passed or failed. The remote side's records live in ``SandboxCharge`` (see
``paydesk.models.sandbox``), keyed by paydesk's idempotency key, so a repeated call returns
the first answer and ``sync_payment`` works after a restart.

Reconciliation reads those records too, read-only, as it would ask a real provider:
``get_refund_status`` finds a refund by the idempotency key paydesk sent (or its refund id),
so a refund whose answer was lost is found completed and one the sandbox never received is
``not_found``; ``list_payment_refunds`` lists every refund of a charge, including those made
with ``refund_in_dashboard`` (the simulated provider dashboard, which sends no webhook).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from django.db import IntegrityError, transaction
from django.urls import reverse

from ...exceptions import ProviderRequestError
from ...money import Money
from ...types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    InboundWebhook,
    NextAction,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderRefund,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
    WebhookEffect,
)
from ..base import PaymentProvider
from . import webhooks

__all__ = ["CARD_SCENARIOS", "TOKENS", "SandboxProvider", "Scenario", "scenario_for_card"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    brand: str
    outcome: str  # "succeed", "fail" or "3ds"
    failure_code: str = ""
    message: str = ""


CARD_SCENARIOS: dict[str, Scenario] = {
    "4242424242424242": Scenario("visa", "visa", "succeed"),
    "5555555555554444": Scenario("mastercard", "mastercard", "succeed"),
    "4000000000000002": Scenario(
        "declined", "visa", "fail", "card_declined", "Your card was declined."
    ),
    "4000000000009995": Scenario(
        "insufficient", "visa", "fail", "insufficient_funds", "Your card has insufficient funds."
    ),
    "4000000000000069": Scenario(
        "expired", "visa", "fail", "expired_card", "Your card has expired."
    ),
    "4000000000000127": Scenario(
        "incorrect_cvc", "visa", "fail", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "4000000000000119": Scenario(
        "processing_error",
        "visa",
        "fail",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4000002500003155": Scenario("3ds", "visa", "3ds"),
}

TOKENS: dict[str, str] = {f"pm_sandbox_{s.name}": number for number, s in CARD_SCENARIOS.items()}


def scenario_for_card(number: str) -> Scenario | None:
    return CARD_SCENARIOS.get("".join(ch for ch in number if ch.isdigit()))


def _new_id(prefix: str) -> str:
    return f"{prefix}_sb_{secrets.token_hex(10)}"


#: The simulated side's refund statuses, in paydesk's words.
_REFUND_STATUSES = {"succeeded": "completed", "pending": "pending", "failed": "failed"}
#: The idempotency key ``process_refund`` sends; refunds recorded before the sandbox kept
#: paydesk's refund id (the demo's seeded history) still name it there.
_REFUND_KEY = re.compile(r"^paydesk:(?P<refund_id>.+):refund$")


def _refund_id_of(key: str, record: Mapping[str, Any]) -> str:
    """paydesk's refund id for a stored refund record ("" for one made in the dashboard)."""
    if record.get("refund_id"):
        return str(record["refund_id"])
    match = _REFUND_KEY.match(key)
    return match.group("refund_id") if match else ""


class SandboxProvider(PaymentProvider):
    display_name = "Sandbox"
    icon = "flask"
    capabilities = frozenset(
        {
            Capability.CAPTURE,
            Capability.PARTIAL_CAPTURE,
            Capability.CANCEL,
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.MULTIPLE_REFUNDS,
            Capability.SAVED_METHODS,
            Capability.HOSTED_CHECKOUT,
            Capability.SYNC,
            Capability.WEBHOOKS,
        }
    )
    webhook_signature_header = "Paydesk-Sandbox-Signature"
    webhook_signature_algorithm = "HMAC-SHA256"
    webhook_secret_option = "WEBHOOK_SECRET"
    is_sandbox: ClassVar[bool] = True

    # -- webhooks ------------------------------------------------------------------------
    # The sandbox signs and delivers its own events (see .webhooks) so that the whole
    # webhook path runs offline, exactly as a real provider's would.

    def verify_webhook(self, body: bytes, headers: Any) -> InboundWebhook:
        return webhooks.verify(self, body, headers)

    def parse_webhook(self, event: InboundWebhook) -> list[WebhookEffect]:
        return webhooks.parse(self, event)

    def test_webhook_unavailable(self) -> str:
        return ""  # signed with OPTIONS["WEBHOOK_SECRET"], or the secret derived from SECRET_KEY

    def sign_webhook(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        signature = webhooks.verifier(self).sign(body, timestamp=timestamp)
        return {"Content-Type": "application/json", self.webhook_signature_header: signature}

    def build_test_webhook(self, *, event_id: str) -> tuple[dict[str, str], bytes]:
        body, headers = webhooks.signed_delivery(self, webhooks.test_event(event_id))
        return headers, body

    def _emit(self, event_type: str, charge: Any, **extra: Any) -> None:
        webhooks.emit(self, event_type, charge, **extra)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def token_for_card(number: str) -> str:
        """The sandbox token for a test card number (what a tokenizing frontend returns)."""
        scenario = scenario_for_card(number)
        if scenario is None:
            raise ProviderRequestError(
                "That is not a sandbox test card; see paydesk.providers.sandbox for the list.",
                provider="sandbox",
                code="incorrect_number",
            )
        return f"pm_sandbox_{scenario.name}"

    def _charge_model(self) -> Any:
        from ...models import SandboxCharge

        return SandboxCharge

    def _result(self, charge: Any) -> PaymentResult:
        money = Money(charge.amount, charge.currency)
        raw = {"id": charge.id, "status": charge.status, "scenario": charge.scenario}
        status = ProviderStatus(charge.status)
        if status == ProviderStatus.REQUIRES_ACTION:
            return PaymentResult(
                status=status,
                provider_payment_id=charge.id,
                next_action=NextAction(type="redirect", redirect_url=self._action_url(charge)),
                raw=raw,
            )
        if status == ProviderStatus.FAILED:
            scenario = CARD_SCENARIOS.get(TOKENS.get(f"pm_sandbox_{charge.scenario}", ""))
            message = scenario.message if scenario and scenario.message else "Payment failed."
            if charge.failure_code == "authentication_required":
                message = "The customer failed 3-D Secure authentication."
            return PaymentResult(
                status=status,
                provider_payment_id=charge.id,
                failure=ProviderFailure(
                    code=charge.failure_code, message=message, provider_code=charge.failure_code
                ),
                raw=raw,
            )
        captured = Money(charge.captured_amount, charge.currency)
        return PaymentResult(
            status=status,
            provider_payment_id=charge.id,
            amount_authorized=money,
            amount_captured=captured if status == ProviderStatus.CAPTURED else None,
            raw=raw,
        )

    def _action_url(self, charge: Any) -> str:
        name = "paydesk:sandbox-3ds" if charge.scenario == "3ds" else "paydesk:sandbox-checkout"
        return reverse(name, args=[charge.id])

    def _get(self, provider_payment_id: str, *, lock: bool = False) -> Any:
        model = self._charge_model()
        qs = model.objects.select_for_update() if lock else model.objects
        try:
            return qs.get(pk=provider_payment_id)
        except model.DoesNotExist:
            raise ProviderRequestError(
                f"No such sandbox payment: {provider_payment_id!r}.",
                provider=self.alias,
                code="invalid_request",
                provider_code="resource_missing",
            ) from None

    # -- operations ----------------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        model = self._charge_model()
        existing = model.objects.filter(idempotency_key=request.idempotency_key).first()
        if existing is not None:
            return self._result(existing)  # same key: the first answer, no second charge
        scenario: Scenario | None = None
        if request.payment_method_token:
            number = TOKENS.get(request.payment_method_token)
            if number is None:
                raise ProviderRequestError(
                    f"Unknown sandbox payment method {request.payment_method_token!r}; use one "
                    f"of {', '.join(sorted(TOKENS))}.",
                    provider=self.alias,
                    code="invalid_request",
                    provider_code="resource_missing",
                )
            scenario = CARD_SCENARIOS[number]
        status, failure_code, captured = "requires_action", "", Decimal(0)
        if scenario is not None:
            status, failure_code, captured = self._outcome(
                scenario, request.amount, request.capture
            )
        try:
            with transaction.atomic():
                charge = model.objects.create(
                    id=_new_id("pi"),
                    idempotency_key=request.idempotency_key,
                    payment_ref=request.payment_id,
                    amount=request.amount.amount,
                    currency=request.amount.currency,
                    status=status,
                    scenario=scenario.name if scenario else "",
                    capture=request.capture,
                    captured_amount=captured,
                    failure_code=failure_code,
                    return_url=reverse("paydesk:payment-return", args=[request.payment_id]),
                )
        except IntegrityError:
            # A concurrent call with the same key created it first: answer as it did.
            return self._result(model.objects.get(idempotency_key=request.idempotency_key))
        self._emit(webhooks.event_for_status(charge.status), charge)
        return self._result(charge)

    @staticmethod
    def _outcome(scenario: Scenario, amount: Money, capture: bool) -> tuple[str, str, Decimal]:
        if scenario.outcome == "succeed":
            return ("captured", "", amount.amount) if capture else ("authorized", "", Decimal(0))
        if scenario.outcome == "3ds":
            return "requires_action", "", Decimal(0)
        return "failed", scenario.failure_code, Decimal(0)

    def complete_checkout(self, *, provider_payment_id: str, card_number: str) -> str:
        """The hosted page's action: the customer entered ``card_number``. Returns the status."""
        scenario = scenario_for_card(card_number)
        if scenario is None:
            raise ProviderRequestError(
                "That is not a sandbox test card.", provider=self.alias, code="incorrect_number"
            )
        with transaction.atomic():
            charge = self._get(provider_payment_id, lock=True)
            if charge.status != "requires_action":
                return str(charge.status)
            charge.scenario = scenario.name
            money = Money(charge.amount, charge.currency)
            charge.status, charge.failure_code, charge.captured_amount = self._outcome(
                scenario, money, charge.capture
            )
            charge.save()
            if charge.status != "requires_action":
                self._emit(webhooks.event_for_status(charge.status), charge)
            return str(charge.status)

    def complete_challenge(self, *, provider_payment_id: str, passed: bool) -> str:
        """The 3-D Secure page's action: the customer passed or failed the challenge."""
        with transaction.atomic():
            charge = self._get(provider_payment_id, lock=True)
            if charge.status != "requires_action" or charge.scenario != "3ds":
                return str(charge.status)
            if passed:
                if charge.capture:
                    charge.status, charge.captured_amount = "captured", charge.amount
                else:
                    charge.status = "authorized"
            else:
                charge.status, charge.failure_code = "failed", "authentication_required"
            charge.save()
            self._emit(webhooks.event_for_status(charge.status), charge)
            return str(charge.status)

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        return self._result(self._get(request.provider_payment_id))

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        model = self._charge_model()
        charge = None
        if request.provider_payment_id:
            charge = model.objects.filter(pk=request.provider_payment_id).first()
        if charge is None:
            charge = model.objects.filter(idempotency_key=request.idempotency_key).first()
        if charge is None:
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        return self._result(charge)

    # -- async twins -----------------------------------------------------------------------
    # The reads use Django's async ORM. The writes (create, capture, cancel, refund) stay on
    # the base class's default, the sync method in asgiref's thread-sensitive executor: they
    # need transaction.atomic() and select_for_update(), which the async ORM does not offer.

    async def _aget(self, provider_payment_id: str) -> Any:
        model = self._charge_model()
        try:
            return await model.objects.aget(pk=provider_payment_id)
        except model.DoesNotExist:
            raise ProviderRequestError(
                f"No such sandbox payment: {provider_payment_id!r}.",
                provider=self.alias,
                code="invalid_request",
                provider_code="resource_missing",
            ) from None

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return self._result(await self._aget(request.provider_payment_id))

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        model = self._charge_model()
        charge = None
        if request.provider_payment_id:
            charge = await model.objects.filter(pk=request.provider_payment_id).afirst()
        if charge is None:
            charge = await model.objects.filter(idempotency_key=request.idempotency_key).afirst()
        if charge is None:
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        return self._result(charge)

    def capture_payment(self, request: CaptureRequest) -> PaymentResult:
        with transaction.atomic():
            charge = self._get(request.provider_payment_id, lock=True)
            if charge.status == "captured":
                return self._result(charge)  # a retried capture: same answer
            if charge.status != "authorized":
                raise ProviderRequestError(
                    f"Sandbox payment {charge.id} is {charge.status}; it cannot be captured.",
                    provider=self.alias,
                    provider_code="payment_intent_unexpected_state",
                )
            if request.amount.amount > charge.amount:
                raise ProviderRequestError(
                    "Capture amount exceeds the authorized amount.",
                    provider=self.alias,
                    provider_code="amount_too_large",
                )
            charge.status, charge.captured_amount = "captured", request.amount.amount
            charge.save()
            self._emit("payment.captured", charge)
            return self._result(charge)

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        with transaction.atomic():
            charge = self._get(request.provider_payment_id, lock=True)
            if charge.status == "cancelled":
                return self._result(charge)
            if charge.status not in ("requires_action", "authorized", "failed"):
                raise ProviderRequestError(
                    f"Sandbox payment {charge.id} is {charge.status}; it cannot be cancelled.",
                    provider=self.alias,
                    provider_code="payment_intent_unexpected_state",
                )
            charge.status = "cancelled"
            charge.save()
            self._emit("payment.cancelled", charge)
            return self._result(charge)

    def create_refund(self, request: RefundRequest) -> RefundResult:
        with transaction.atomic():
            charge = self._get(request.provider_payment_id, lock=True)
            refunds: dict[str, Any] = dict(charge.refunds or {})
            if request.idempotency_key in refunds:
                done = refunds[request.idempotency_key]
                return RefundResult(status="completed", provider_refund_id=done["id"], raw=done)
            if charge.status != "captured":
                raise ProviderRequestError(
                    f"Sandbox payment {charge.id} is {charge.status}; nothing to refund.",
                    provider=self.alias,
                    provider_code="charge_not_captured",
                )
            if charge.refunded_amount + request.amount.amount > charge.captured_amount:
                raise ProviderRequestError(
                    "Refund amount exceeds what remains of the charge.",
                    provider=self.alias,
                    provider_code="charge_already_refunded",
                )
            record = {
                "id": _new_id("re"),
                "amount": str(request.amount.amount),
                "currency": request.amount.currency,
                "reason": request.reason,
                "status": "succeeded",
                "refund_id": request.refund_id,  # as Stripe keeps it in the refund's metadata
            }
            refunds[request.idempotency_key] = record
            charge.refunds = refunds
            charge.refunded_amount += request.amount.amount
            charge.save()
            self._emit("refund.succeeded", charge, refund=record, refund_id=request.refund_id)
            return RefundResult(status="completed", provider_refund_id=record["id"], raw=record)

    # -- read-only refund reads (reconciliation) -------------------------------------------

    def _charge_for(self, *, provider_payment_id: str, idempotency_key: str = "") -> Any:
        model = self._charge_model()
        charge = None
        if provider_payment_id:
            charge = model.objects.filter(pk=provider_payment_id).first()
        if charge is None and idempotency_key:
            charge = model.objects.filter(idempotency_key=idempotency_key).first()
        return charge

    @staticmethod
    def _refund_result(record: Mapping[str, Any]) -> RefundResult:
        status = _REFUND_STATUSES.get(str(record.get("status")), "pending")
        failure = None
        if status == "failed":
            failure = ProviderFailure(
                code="refund_failed",
                message="The sandbox could not refund the payment.",
                provider_code=str(record.get("status")),
            )
        return RefundResult(
            status=status, provider_refund_id=str(record["id"]), failure=failure, raw=dict(record)
        )

    def get_refund_status(self, request: RefundRequest) -> RefundResult:
        """What became of the refund ``request`` asked for (``not_found``: never received).

        Looked up by the idempotency key paydesk sent, else by the provider's refund id when
        paydesk has it; nothing is written.
        """
        charge = self._charge_for(provider_payment_id=request.provider_payment_id)
        if charge is None:
            return RefundResult(status="not_found")
        refunds: Mapping[str, Any] = charge.refunds or {}
        record = refunds.get(request.idempotency_key)
        if record is None and request.provider_refund_id:
            record = next(
                (r for r in refunds.values() if r.get("id") == request.provider_refund_id), None
            )
        if record is None:
            return RefundResult(status="not_found")
        return self._refund_result(record)

    def list_payment_refunds(self, request: StatusRequest) -> Sequence[ProviderRefund]:
        """Every refund the simulated side made for the payment (in no particular order: they
        live in a JSON field, whose key order PostgreSQL does not keep)."""
        charge = self._charge_for(
            provider_payment_id=request.provider_payment_id,
            idempotency_key=request.idempotency_key,
        )
        if charge is None:
            return []
        return [
            ProviderRefund(
                provider_refund_id=str(record["id"]),
                amount=Money(record["amount"], record["currency"]),
                status=_REFUND_STATUSES.get(str(record.get("status")), "pending"),
                refund_id=_refund_id_of(key, record),
            )
            for key, record in (charge.refunds or {}).items()
        ]

    def refund_in_dashboard(
        self, *, provider_payment_id: str, amount: Money | None = None, reason: str = ""
    ) -> dict[str, Any]:
        """The merchant refunds in the simulated provider's dashboard, outside paydesk.

        The refund is made on the sandbox's side only (all that remains of the charge when
        ``amount`` is ``None``) and no webhook is sent, as if it were lost: paydesk learns of
        it only from reconciliation's refund list (a ``refund_missing_here`` finding).
        Returns the refund record.
        """
        with transaction.atomic():
            charge = self._get(provider_payment_id, lock=True)
            remaining = charge.captured_amount - charge.refunded_amount
            value = remaining if amount is None else amount.amount
            if charge.status != "captured" or value <= 0 or value > remaining:
                raise ProviderRequestError(
                    f"Sandbox payment {charge.id} has {remaining} {charge.currency} left to "
                    f"refund; it cannot refund {value}.",
                    provider=self.alias,
                    provider_code="charge_already_refunded",
                )
            record = {
                "id": _new_id("re"),
                "amount": str(value),
                "currency": charge.currency,
                "reason": reason,
                "status": "succeeded",
                "refund_id": "",
            }
            charge.refunds = {**(charge.refunds or {}), f"dashboard:{record['id']}": record}
            charge.refunded_amount += value
            charge.save()
            return record
