"""``ProviderContract``: the behaviour every provider adapter must show.

A provider's test class inherits ``ProviderContract`` and supplies these fixtures:

* ``contract`` -> a ``ContractSetup`` naming the provider alias (already configured in
  ``PAYDESK`` by the fixture), the payment method tokens for each outcome, and a
  ``WebhookSigner`` that builds deliveries the provider must accept or refuse.

The contract drives the adapter directly (frozen dataclasses in and out) and through the
services, so an adapter cannot pass by being right in isolation only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from paydesk import services
from paydesk.exceptions import (
    NotSupported,
    PaymentDeclined,
    ProviderError,
    SignatureVerificationError,
)
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.base import PaymentProvider
from paydesk.services.reconcile import RefundLister, RefundStatusReader
from paydesk.types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    InboundWebhook,
    PaymentEvent,
    PaymentRequest,
    ProviderStatus,
    RefundRequest,
    StatusRequest,
)


@dataclass
class WebhookSigner:
    """How to produce deliveries for a provider's webhook verifier.

    ``sign(body, timestamp=None) -> headers`` signs with the configured secret;
    ``sign_with_wrong_secret(body) -> headers``; ``success_event(provider_payment_id,
    payment_id, amount) -> dict`` builds a "payment succeeded" event; ``has_timestamp`` says
    whether the scheme rejects stale deliveries; ``unknown_event() -> dict``; ``tamper(body)
    -> bytes`` changes a part of the body the signature covers (default: the amount, for
    schemes that sign the whole body; iyzico's signs named fields and carries no amount).
    """

    sign: Callable[..., Mapping[str, str]]
    sign_with_wrong_secret: Callable[[bytes], Mapping[str, str]]
    success_event: Callable[[str, str, Money], dict[str, Any]]
    unknown_event: Callable[[], dict[str, Any]]
    has_timestamp: bool = True
    tolerance: int = 300
    tamper: Callable[[bytes], bytes] | None = None


@dataclass
class ContractSetup:
    alias: str
    currency: str = "USD"
    success_token: str = ""
    decline_token: str = ""
    action_token: str = ""  # a token that needs the customer (3-D Secure, approval)
    signer: WebhookSigner | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _request(
    setup: ContractSetup, key: str, *, amount: str = "20.00", token: str = "", capture=True
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=f"pay_contract_{key}",
        amount=Money(amount, setup.currency),
        idempotency_key=f"paydesk:pay_contract_{key}:attempt-1:create",
        capture=capture,
        payment_method_token=token or setup.success_token,
        return_url="http://testserver/return/",
    )


def _attempt(call: Callable[[], Any], expected: type[Exception]) -> Any:
    """The call's result, or the ``expected`` exception it raised (returned, not raised)."""
    try:
        return call()
    except expected as exc:
        return exc


@pytest.mark.django_db
class ProviderContract:
    """Inherit this and provide a ``contract`` fixture returning a ``ContractSetup``."""

    @pytest.fixture
    def provider(self, contract: ContractSetup) -> PaymentProvider:
        return get_payment_provider(contract.alias)

    # -- declared capabilities are honest ------------------------------------------------

    def test_declares_display_metadata(self, provider: PaymentProvider) -> None:
        info = provider.info()
        assert info.display_name
        assert info.icon
        assert isinstance(info.capabilities, frozenset)
        if Capability.WEBHOOKS in info.capabilities:
            assert info.webhook_signature_header
            assert info.webhook_signature_algorithm

    def test_undeclared_operations_are_refused_with_not_supported(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.CANCEL):
            with pytest.raises(NotSupported):
                provider.cancel_payment(
                    CancelRequest(payment_id="p", provider_payment_id="x", idempotency_key="k")
                )
        if not provider.supports(Capability.REFUND):
            with pytest.raises(NotSupported):
                provider.create_refund(
                    RefundRequest(
                        refund_id="r",
                        payment_id="p",
                        provider_payment_id="x",
                        amount=Money("1.00", contract.currency),
                        idempotency_key="k",
                    )
                )

    # -- payments ------------------------------------------------------------------------

    def test_successful_payment_is_captured(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        request = _request(contract, "ok")
        result = provider.create_payment(request)
        if result.status == ProviderStatus.REQUIRES_ACTION:
            pytest.fail("the success token must not need customer action")
        assert result.status == ProviderStatus.CAPTURED
        assert result.provider_payment_id
        assert result.amount_captured == request.amount

    def test_same_idempotency_key_is_one_payment(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        request = _request(contract, "idem")
        first = provider.create_payment(request)
        second = provider.create_payment(request)
        assert second.provider_payment_id == first.provider_payment_id
        assert second.status == first.status

    def test_declined_payment_fails_with_taxonomy_code(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        request = _request(contract, "declined", token=contract.decline_token)
        outcome = _attempt(lambda: provider.create_payment(request), PaymentDeclined)
        if isinstance(outcome, PaymentDeclined):
            assert outcome.code == "card_declined"
            assert outcome.provider == contract.alias
            assert not outcome.retryable
        else:
            assert outcome.status == ProviderStatus.FAILED
            assert outcome.failure is not None
            assert outcome.failure.code == "card_declined"

    def test_customer_action_surfaces_a_next_action(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not contract.action_token:
            pytest.fail("every provider has a flow that needs the customer; name its token")
        result = provider.create_payment(_request(contract, "action", token=contract.action_token))
        assert result.status == ProviderStatus.REQUIRES_ACTION
        assert result.next_action is not None
        assert result.next_action.redirect_url or result.next_action.client_secret

    def test_manual_capture_full_and_partial(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.CAPTURE):
            return
        for key, amount in (("capfull", "20.00"), ("cappart", "12.50")):
            request = _request(contract, key, capture=False)
            authorized = provider.create_payment(request)
            assert authorized.status == ProviderStatus.AUTHORIZED
            if amount != "20.00" and not provider.supports(Capability.PARTIAL_CAPTURE):
                continue
            captured = provider.capture_payment(
                CaptureRequest(
                    payment_id=request.payment_id,
                    provider_payment_id=authorized.provider_payment_id,
                    amount=Money(amount, contract.currency),
                    idempotency_key=f"paydesk:{request.payment_id}:capture",
                )
            )
            assert captured.status == ProviderStatus.CAPTURED
            assert captured.amount_captured == Money(amount, contract.currency)

    def test_cancel_an_authorization(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not (provider.supports(Capability.CANCEL) and provider.supports(Capability.CAPTURE)):
            return
        request = _request(contract, "void", capture=False)
        authorized = provider.create_payment(request)
        cancelled = provider.cancel_payment(
            CancelRequest(
                payment_id=request.payment_id,
                provider_payment_id=authorized.provider_payment_id,
                idempotency_key=f"paydesk:{request.payment_id}:cancel",
            )
        )
        assert cancelled.status == ProviderStatus.CANCELLED

    def test_status_of_a_captured_payment(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.SYNC):
            return
        request = _request(contract, "status")
        created = provider.create_payment(request)
        status = provider.get_payment_status(
            StatusRequest(
                payment_id=request.payment_id,
                provider_payment_id=created.provider_payment_id,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
            )
        )
        assert status.status == ProviderStatus.CAPTURED
        assert status.provider_payment_id == created.provider_payment_id

    # -- refunds -------------------------------------------------------------------------

    def test_partial_and_multiple_refunds(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.REFUND):
            return
        request = _request(contract, "refunds")
        created = provider.create_payment(request)
        amounts = ["5.00", "7.00"] if provider.supports(Capability.MULTIPLE_REFUNDS) else ["20.00"]
        seen = set()
        for index, amount in enumerate(amounts):
            refund = RefundRequest(
                refund_id=f"re_contract_{index}",
                payment_id=request.payment_id,
                provider_payment_id=created.provider_payment_id,
                amount=Money(amount, contract.currency),
                idempotency_key=f"paydesk:re_contract_{index}:refund",
                reason="requested_by_customer",
            )
            result = provider.create_refund(refund)
            again = provider.create_refund(refund)  # same key: same refund, not a second one
            assert result.status in ("completed", "pending")
            assert result.provider_refund_id
            assert again.provider_refund_id == result.provider_refund_id
            seen.add(result.provider_refund_id)
        assert len(seen) == len(amounts)

    def test_refund_reads_when_offered(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        """A provider with the optional reads (``paydesk.services.reconcile``) finds a refund
        it made by the request paydesk sent, says ``not_found`` for one it never received,
        and lists the payment's refunds with paydesk's refund id."""
        if not isinstance(provider, RefundStatusReader | RefundLister):
            return
        request = _request(contract, "reads")
        created = provider.create_payment(request)
        refund = RefundRequest(
            refund_id="re_contract_reads",
            payment_id=request.payment_id,
            provider_payment_id=created.provider_payment_id,
            amount=Money("5.00", contract.currency),
            idempotency_key="paydesk:re_contract_reads:refund",
        )
        made = provider.create_refund(refund)
        if isinstance(provider, RefundStatusReader):
            read = provider.get_refund_status(refund)
            assert read.status == made.status
            assert read.provider_refund_id == made.provider_refund_id
            never = replace(
                refund,
                refund_id="re_contract_never",
                idempotency_key="paydesk:re_contract_never:refund",
            )
            assert provider.get_refund_status(never).status == "not_found"
        if isinstance(provider, RefundLister):
            listed = provider.list_payment_refunds(
                StatusRequest(
                    payment_id=request.payment_id,
                    provider_payment_id=created.provider_payment_id,
                    idempotency_key=request.idempotency_key,
                    amount=request.amount,
                )
            )
            assert [(r.provider_refund_id, r.amount, r.refund_id) for r in listed] == [
                (made.provider_refund_id, refund.amount, refund.refund_id)
            ]

    # -- through the services ------------------------------------------------------------

    def test_end_to_end_through_services(
        self, contract: ContractSetup, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            payment = services.create_payment(
                amount="20.00", currency=contract.currency, provider=contract.alias
            )
            payment = services.process_payment(
                payment=payment, payment_method_token=contract.success_token
            )
        assert payment.status == "completed", (payment.failure_code, payment.failure_message)
        if not get_payment_provider(contract.alias).supports(Capability.REFUND):
            # Refused by the service before any provider call, as for the other refund tests.
            with pytest.raises(NotSupported):
                services.create_refund(payment=payment, amount="5.00", reason="contract")
            return
        with django_capture_on_commit_callbacks(execute=True):
            refund = services.create_refund(payment=payment, amount="5.00", reason="contract")
        assert refund.status in ("completed", "processing")

    def test_provider_errors_carry_the_alias(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        # An unknown token is either refused with an error naming the provider, or answered
        # with a failed result; never a success.
        bad = _request(contract, "bad", token="pm_does_not_exist_x")
        outcome = _attempt(lambda: provider.create_payment(bad), ProviderError)
        if isinstance(outcome, ProviderError):
            assert outcome.provider == contract.alias
            assert outcome.code
        else:
            assert outcome.status == ProviderStatus.FAILED

    # -- webhooks ------------------------------------------------------------------------

    def _signer(self, provider: PaymentProvider, contract: ContractSetup) -> WebhookSigner:
        if not provider.supports(Capability.WEBHOOKS):
            pytest.fail("the webhook contract needs a provider that declares WEBHOOKS")
        assert contract.signer is not None, "name a WebhookSigner in ContractSetup.signer"
        return contract.signer

    def _event_body(self, signer: WebhookSigner) -> bytes:
        event = signer.success_event("prov_123", "pay_contract_wh", Money("20.00", "USD"))
        return json.dumps(event, separators=(",", ":")).encode()

    def test_webhook_valid_signature_is_accepted_and_parsed(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        signer = self._signer(provider, contract)
        body = self._event_body(signer)
        inbound = provider.verify_webhook(body, signer.sign(body))
        assert isinstance(inbound, InboundWebhook)
        assert inbound.event_id
        assert not inbound.error

    def test_webhook_success_event_maps_to_a_payment_event(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        signer = self._signer(provider, contract)
        body = self._event_body(signer)
        inbound = provider.verify_webhook(body, signer.sign(body))
        effects = provider.parse_webhook(inbound)
        assert [type(e) for e in effects] == [PaymentEvent]
        assert effects[0].result.status == ProviderStatus.CAPTURED

    def test_webhook_unknown_event_is_ignored(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        signer = self._signer(provider, contract)
        body = json.dumps(signer.unknown_event()).encode()
        assert provider.parse_webhook(provider.verify_webhook(body, signer.sign(body))) == []

    def test_webhook_tampered_body_is_refused(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        signer = self._signer(provider, contract)
        body = self._event_body(signer)
        headers = signer.sign(body)
        tampered = signer.tamper(body) if signer.tamper else body.replace(b"20.00", b"2000")
        assert tampered != body, "the tampering must change the body"
        with pytest.raises(SignatureVerificationError):
            provider.verify_webhook(tampered, headers)

    def test_webhook_wrong_secret_is_refused(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        signer = self._signer(provider, contract)
        body = self._event_body(signer)
        with pytest.raises(SignatureVerificationError):
            provider.verify_webhook(body, signer.sign_with_wrong_secret(body))

    def test_webhook_missing_signature_is_refused(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        body = self._event_body(self._signer(provider, contract))
        with pytest.raises(SignatureVerificationError):
            provider.verify_webhook(body, {"Content-Type": "application/json"})

    def test_webhook_stale_delivery_is_refused(
        self, provider: PaymentProvider, contract: ContractSetup
    ) -> None:
        if not provider.supports(Capability.WEBHOOKS):
            return
        signer = self._signer(provider, contract)
        if not signer.has_timestamp:
            return  # the scheme has no timestamp; replay protection is the dedup on event id
        body = self._event_body(signer)
        stale = int(time.time()) - signer.tolerance - 60
        with pytest.raises(SignatureVerificationError):
            provider.verify_webhook(body, signer.sign(body, timestamp=stale))
