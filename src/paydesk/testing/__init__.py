"""paydesk's testing kit, for host projects' own tests.

This package owns one decision: how a project tests its payment code without a network and
without patching paydesk's internals. It gives a scriptable ``MockPaymentProvider`` that is
configured like any other provider, factories that go through the real services (so the
ledger and signals behave as in production), assertions, and ``PaymentTestCase``.

::

    from paydesk.testing import PaymentTestCase, assert_payment_success

    class CheckoutTests(PaymentTestCase):
        def test_order_is_paid(self):
            payment = self.create_payment(amount="25.00", process=True)
            assert_payment_success(payment)
            self.assertEqual(self.provider.get_call_count("create_payment"), 1)
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.test import TestCase, override_settings

from ..exceptions import error_for_code
from ..models import Payment, Refund
from ..money import Money
from ..providers.base import PaymentProvider
from ..providers.registry import get_payment_provider, providers
from ..states import PaymentStatus, RefundStatus
from ..types import (
    CancelRequest,
    Capability,
    CaptureRequest,
    ConfirmRequest,
    Customer,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
)

__all__ = [
    "MockPaymentProvider",
    "PaymentTestCase",
    "SignalRecorder",
    "assert_ledger_kinds",
    "assert_payment_failed",
    "assert_payment_success",
    "assert_refund_success",
    "create_test_buyer_info",
    "create_test_payment",
    "mock_provider",
]

MOCK_BACKEND = "paydesk.testing.MockPaymentProvider"


class MockPaymentProvider(PaymentProvider):
    """A provider whose answers a test scripts.

    By default every payment succeeds (captured, or authorized when ``capture=False``) and
    every refund completes. ``set_next_result`` queues specific answers; ``set_should_fail``
    makes every payment fail until turned off; ``set_exception`` makes the next call raise.
    Every call is recorded in ``calls`` as ``(method, request)``. Thread-safe.
    """

    display_name = "Mock"
    icon = "beaker"
    # Everything but webhooks: the mock has no signature scheme to verify.
    capabilities = frozenset(Capability) - {Capability.WEBHOOKS}

    def __init__(self, *, alias: str = "mock", options: dict[str, Any] | None = None) -> None:
        super().__init__(alias=alias, options=options)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: list[tuple[str, Any]] = []
            self._results: list[PaymentResult | ProviderStatus] = []
            self._refund_results: list[RefundResult] = []
            self._exceptions: list[BaseException] = []
            self._fail: ProviderFailure | None = None
            self._by_key: dict[str, PaymentResult] = {}

    # -- scripting -----------------------------------------------------------------------

    def set_next_result(self, result: PaymentResult | ProviderStatus | str) -> None:
        """Queue the answer to the next payment call (a result, or just a status)."""
        with self._lock:
            self._results.append(
                result if isinstance(result, PaymentResult) else ProviderStatus(result)
            )

    def set_next_refund_result(self, result: RefundResult) -> None:
        with self._lock:
            self._refund_results.append(result)

    def set_should_fail(
        self,
        should_fail: bool = True,
        message: str = "Mock payment failed",
        code: str = "card_declined",
    ) -> None:
        with self._lock:
            self._fail = ProviderFailure(code=code, message=message) if should_fail else None

    def set_exception(self, exc: BaseException | str, message: str = "Mock provider error") -> None:
        """Make the next call raise ``exc`` (an exception, or a taxonomy code)."""
        with self._lock:
            self._exceptions.append(
                error_for_code(exc, message, provider=self.alias) if isinstance(exc, str) else exc
            )

    def get_call_count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for name, _ in self.calls if method is None or name == method)

    # -- provider interface --------------------------------------------------------------

    def _enter(self, method: str, request: Any) -> None:
        with self._lock:
            self.calls.append((method, request))
            if self._exceptions:
                raise self._exceptions.pop(0)

    def _next(self, request: Any, default: ProviderStatus) -> PaymentResult:
        with self._lock:
            scripted = self._results.pop(0) if self._results else None
            failure = self._fail
        ppid = getattr(request, "provider_payment_id", "") or f"mock_{secrets.token_hex(8)}"
        if isinstance(scripted, PaymentResult):
            return scripted
        status = scripted or (ProviderStatus.FAILED if failure else default)
        amount: Money | None = getattr(request, "amount", None)  # cancel requests carry none
        return PaymentResult(
            status=status,
            provider_payment_id=ppid,
            amount_authorized=amount,
            amount_captured=amount if status == ProviderStatus.CAPTURED else None,
            failure=(failure or ProviderFailure("card_declined", "Mock payment failed"))
            if status == ProviderStatus.FAILED
            else None,
            raw={"mock": True, "status": str(status)},
        )

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        self._enter("create_payment", request)
        with self._lock:
            previous = self._by_key.get(request.idempotency_key)
        if previous is not None:
            return previous  # same key, same answer: what a real provider does
        result = self._next(
            request, ProviderStatus.CAPTURED if request.capture else ProviderStatus.AUTHORIZED
        )
        with self._lock:
            self._by_key[request.idempotency_key] = result
        return result

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        self._enter("confirm_payment", request)
        return self._next(request, ProviderStatus.CAPTURED)

    def capture_payment(self, request: CaptureRequest) -> PaymentResult:
        self._enter("capture_payment", request)
        return self._next(request, ProviderStatus.CAPTURED)

    def cancel_payment(self, request: CancelRequest) -> PaymentResult:
        self._enter("cancel_payment", request)
        return self._next(request, ProviderStatus.CANCELLED)

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        self._enter("get_payment_status", request)
        # A scripted answer wins (and becomes what the provider now knows); otherwise the
        # answer the create call got; otherwise the provider never saw the payment.
        with self._lock:
            scripted = bool(self._results)
            known = self._by_key.get(request.idempotency_key)
        if scripted or known is None:
            result = self._next(request, ProviderStatus.NOT_FOUND)
            if result.status != ProviderStatus.NOT_FOUND:
                with self._lock:
                    self._by_key[request.idempotency_key] = result
            return result
        return known

    def create_refund(self, request: RefundRequest) -> RefundResult:
        self._enter("create_refund", request)
        with self._lock:
            if self._refund_results:
                return self._refund_results.pop(0)
        return RefundResult(
            status="completed",
            provider_refund_id=f"mock_re_{secrets.token_hex(6)}",
            raw={"mock": True},
        )


@contextmanager
def mock_provider(alias: str = "mock", *, default: bool = False) -> Iterator[MockPaymentProvider]:
    """Configure a ``MockPaymentProvider`` under ``alias`` for the duration of the block."""
    from ..conf import paydesk_settings

    configured = dict(paydesk_settings.PROVIDERS)
    configured[alias] = {"BACKEND": MOCK_BACKEND, "OPTIONS": {}}
    current = dict(paydesk_settings.user_settings)
    current["PROVIDERS"] = configured
    if default:
        current["DEFAULT_PROVIDER"] = alias
    with override_settings(PAYDESK=current):
        instance = get_payment_provider(alias)
        assert isinstance(instance, MockPaymentProvider)
        yield instance
    providers.reset()


def create_test_buyer_info(**overrides: Any) -> Customer:
    """A ``Customer`` with plausible test data; override any field."""
    data: dict[str, Any] = {
        "email": "buyer@example.com",
        "name": "Test Buyer",
        "ip_address": "127.0.0.1",
        "country": "US",
        "phone": "+15555550100",
    }
    data.update(overrides)
    return Customer(**data)


def create_test_payment(
    *,
    amount: Decimal | str = "100.00",
    currency: str = "USD",
    provider: str | None = None,
    process: bool = False,
    payment_method_token: str = "",
    **kwargs: Any,
) -> Payment:
    """Create a payment through the real services; ``process=True`` also sends it.

    With the sandbox provider and no token, ``process=True`` uses ``pm_sandbox_visa``.
    """
    from ..services import create_payment, process_payment

    payment = create_payment(amount=amount, currency=currency, provider=provider, **kwargs)
    if process:
        token = payment_method_token
        if not token and getattr(get_payment_provider(payment.provider), "is_sandbox", False):
            token = "pm_sandbox_visa"
        payment = process_payment(payment=payment, payment_method_token=token or None)
    return payment


def _fresh(payment: Payment) -> Payment:
    return Payment.objects.get(pk=payment.pk)


def assert_payment_success(payment: Payment, *, status: str | None = None) -> None:
    """Assert the payment completed (or is ``status``), reading it fresh from the database."""
    current = _fresh(payment)
    expected = {status} if status else {PaymentStatus.COMPLETED, PaymentStatus.AUTHORIZED}
    assert current.status in expected, (
        f"expected payment {current.pk} to be {' or '.join(sorted(expected))}, "
        f"got {current.status} ({current.failure_code}: {current.failure_message})"
    )


def assert_payment_failed(payment: Payment, *, code: str | None = None) -> None:
    current = _fresh(payment)
    assert current.status == PaymentStatus.FAILED, (
        f"expected payment {current.pk} to have failed, got {current.status}"
    )
    if code is not None:
        assert current.failure_code == code, (
            f"expected failure code {code!r}, got {current.failure_code!r}"
        )


def assert_refund_success(refund: Refund) -> None:
    current = Refund.objects.get(pk=refund.pk)
    assert current.status == RefundStatus.COMPLETED, (
        f"expected refund {current.pk} to be completed, got {current.status} "
        f"({current.failure_code}: {current.failure_message})"
    )


def assert_ledger_kinds(payment: Payment, kinds: list[str]) -> None:
    """Assert the payment's ledger holds exactly these kinds, in order of recording."""
    actual = list(_fresh(payment).ledger.order_by("id").values_list("kind", flat=True))
    assert actual == list(kinds), f"ledger kinds {actual} != expected {list(kinds)}"


class SignalRecorder:
    """Record what paydesk signals are sent inside a ``with`` block.

    ``recorder.names`` lists signal names in order; ``recorder.calls`` has the kwargs.
    """

    def __init__(self) -> None:
        from .. import signals

        self._signals = {
            name: getattr(signals, name)
            for name in (
                "payment_created",
                "payment_requires_action",
                "payment_registered",
                "payment_flagged",
                "payment_blocked",
                "payment_confirmed",
                "payment_failed",
                "payment_cancelled",
                "payment_refunded",
                "refund_failed",
                "webhook_received",
                "eft_approved",
                "eft_rejected",
            )
            if hasattr(signals, name)
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._receivers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def __enter__(self) -> SignalRecorder:
        for name, signal in self._signals.items():

            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                with self._lock:
                    self.calls.append((_name, kwargs))

            self._receivers[name] = receiver
            signal.connect(receiver, weak=False, dispatch_uid=f"paydesk-recorder-{id(self)}-{name}")
        return self

    def __exit__(self, *exc: object) -> None:
        for name, signal in self._signals.items():
            signal.disconnect(dispatch_uid=f"paydesk-recorder-{id(self)}-{name}")


class PaymentTestCase(TestCase):
    """A ``TestCase`` with a ``MockPaymentProvider`` configured as the default provider.

    ``self.provider`` is the mock; ``self.create_payment(...)`` goes through the services.
    """

    provider_alias = "mock"

    def setUp(self) -> None:
        super().setUp()
        ctx = mock_provider(self.provider_alias, default=True)
        self.provider = ctx.__enter__()
        self.addCleanup(ctx.__exit__, None, None, None)

    def create_payment(self, **kwargs: Any) -> Payment:
        kwargs.setdefault("provider", self.provider_alias)
        with self.captureOnCommitCallbacks(execute=True):
            return create_test_payment(**kwargs)
