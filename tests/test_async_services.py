"""The async services and ``get_async_payment_provider``, on pytest-asyncio's event loop.

The claims: each async twin records exactly what its sync service records (same ledger, same
idempotency keys), the provider call is the adapter's native ``*_async`` method (the PayPal
and iyzico fakes are reachable only through an ``httpx.AsyncClient``: their sync clients
explode), a retryable fault leaves the outcome to ``async_sync_payment`` as in the sync
services, an operation whose caller is cancelled still records its outcome, and the demo's
async view works through Django's ``AsyncClient``.

The ORM runs in asgiref's executor thread, so these tests use committed transactions
(``transaction=True``) and close that thread's connections afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, override_settings
from django.urls import reverse

from paydesk import services
from paydesk.exceptions import PaymentValidationError, ProviderUnavailable
from paydesk.models import Payment, Refund, TransactionLog
from paydesk.providers import (
    PaymentProvider,
    get_async_payment_provider,
    get_payment_provider,
    native_async_operations,
)
from paydesk.providers.registry import ASYNC_OPERATIONS, load_backend, providers
from paydesk.services import async_services

from .fakes.iyzico_api import FakeIyzico
from .fakes.paypal_api import VAULT_APPROVED, FakePayPal, paydesk_settings
from .test_provider_iyzico import ALIAS as IYZICO
from .test_provider_iyzico import iyzico_options, paydesk_config

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _close_executor_connections() -> Iterator[None]:
    yield
    # The ORM ran in asgiref's single executor thread: close its connections so the test
    # database can be flushed and dropped.
    asyncio.run(sync_to_async(connections.close_all)())


def kinds(payment: Payment | str) -> list[str]:
    pk = payment if isinstance(payment, str) else payment.pk
    return list(
        TransactionLog.objects.filter(payment_id=pk).order_by("pk").values_list("kind", flat=True)
    )


akinds = sync_to_async(kinds)


def _explode(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the sync client was used for {request.url}")


# -- get_async_payment_provider ---------------------------------------------------------------


async def test_the_async_provider_is_the_configured_instance() -> None:
    provider = get_async_payment_provider("sandbox")
    assert provider is get_payment_provider("sandbox")
    assert get_async_payment_provider() is provider  # DEFAULT_PROVIDER
    assert native_async_operations(provider) == {"confirm_payment", "get_payment_status"}


HTTP_BACKENDS = ["stripe", "paypal", "iyzico", "nowpayments", "easypay"]


@pytest.mark.parametrize("backend", HTTP_BACKENDS)
async def test_http_adapters_answer_every_operation_they_have_natively(backend: str) -> None:
    """An HTTP adapter that implements an operation implements its async twin itself: no
    thread pool around its sync code (``PaymentProvider``'s fallback)."""
    cls = load_backend(backend)
    implemented = {
        name
        for name in ASYNC_OPERATIONS
        if getattr(cls, name) is not getattr(PaymentProvider, name)
    }
    native = {
        name
        for name in ASYNC_OPERATIONS
        if getattr(cls, f"{name}_async") is not getattr(PaymentProvider, f"{name}_async")
    }
    assert implemented, backend
    assert implemented <= native, f"{backend}: no native twin for {implemented - native}"
    for name in native:
        assert inspect.iscoroutinefunction(getattr(cls, f"{name}_async"))


# -- the sandbox: the async services record what the sync ones do -------------------------------


def _sync_flow() -> tuple[list[str], str]:
    payment = services.create_payment(amount="30.00", currency="EUR", reference="sync")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    services.create_refund(payment=payment, amount="10.00", reason="damaged")
    payment = services.sync_payment(payment=payment)
    return kinds(payment), payment.status


async def test_sandbox_flow_records_the_same_ledger_as_the_sync_services() -> None:
    payment = await services.acreate_payment(amount="30.00", currency="EUR", reference="async")
    assert payment.status == "pending"
    payment = await services.aprocess_payment(
        payment=payment, payment_method_token="pm_sandbox_visa"
    )
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("30.00")
    refund = await services.acreate_refund(payment=payment, amount="10.00", reason="damaged")
    assert isinstance(refund, Refund)
    assert refund.status == "completed"
    payment = await services.async_sync_payment(payment=payment)
    assert payment.status == "partially_refunded"

    sync_kinds, sync_status = await sync_to_async(_sync_flow)()
    assert await akinds(payment) == sync_kinds
    assert payment.status == sync_status


async def test_authorize_then_capture_and_cancel() -> None:
    first = await services.acreate_payment(amount="20.00", currency="USD", capture=False)
    first = await services.aprocess_payment(payment=first, payment_method_token="pm_sandbox_visa")
    assert first.status == "authorized"
    first = await services.acapture_payment(payment=first, amount="15.00")
    assert first.status == "completed"
    assert first.captured_amount == Decimal("15.00")

    second = await services.acreate_payment(amount="20.00", currency="USD", capture=False)
    second = await services.aprocess_payment(payment=second, payment_method_token="pm_sandbox_visa")
    second = await services.acancel_payment(payment=second, reason="changed my mind")
    assert second.status == "cancelled"

    never_sent = await services.acreate_payment(amount="5.00", currency="USD")
    never_sent = await services.acancel_payment(payment=never_sent)
    assert never_sent.status == "cancelled"
    assert await akinds(never_sent) == ["payment_created", "cancellation"]


async def test_confirm_after_3ds_and_retry_after_a_decline() -> None:
    payment = await services.acreate_payment(amount="12.00", currency="USD")
    payment = await services.aprocess_payment(
        payment=payment, payment_method_token="pm_sandbox_3ds"
    )
    assert payment.status == "requires_action"
    sandbox = get_async_payment_provider("sandbox")
    await sync_to_async(sandbox.complete_challenge)(  # type: ignore[attr-defined]
        provider_payment_id=payment.provider_payment_id, passed=True
    )
    payment = await services.aconfirm_payment(payment=payment)
    assert payment.status == "completed"
    # Confirming again is harmless: the payment is returned as it is.
    assert (await services.aconfirm_payment(payment=payment)).status == "completed"

    declined = await services.acreate_payment(amount="12.00", currency="USD")
    declined = await services.aprocess_payment(
        payment=declined, payment_method_token="pm_sandbox_declined"
    )
    assert declined.status == "failed"
    assert declined.failure_code == "card_declined"
    retried = await services.aretry_payment(
        payment=declined, payment_method_token="pm_sandbox_visa"
    )
    assert retried.status == "completed"
    assert retried.attempt == 2


async def test_errors_are_the_sync_services_errors() -> None:
    with pytest.raises(PaymentValidationError) as caught:
        await services.aprocess_payment(payment="pay_does_not_exist")
    assert caught.value.code == "not_found"
    with pytest.raises(PaymentValidationError):
        await services.acreate_payment(amount="0", currency="USD")


async def test_the_async_twins_keep_the_sync_signatures() -> None:
    for name in async_services.__all__:
        assert inspect.iscoroutinefunction(getattr(services, name)), name
    created = inspect.signature(services.acreate_payment)
    assert created.parameters.keys() == inspect.signature(services.create_payment).parameters.keys()


# -- PayPal through httpx.AsyncClient only --------------------------------------------------------


@pytest.fixture
def fake_paypal() -> FakePayPal:
    return FakePayPal()


@pytest.fixture
def paypal(fake_paypal: FakePayPal) -> Iterator[FakePayPal]:
    options = {
        "MAX_RETRIES": 0,
        "HTTP_CLIENT": httpx.Client(transport=httpx.MockTransport(_explode)),
        "ASYNC_HTTP_CLIENT": fake_paypal.async_client(),
    }
    with override_settings(PAYDESK=paydesk_settings(fake_paypal, options=options)):
        yield fake_paypal


def _request_ids(fake: FakePayPal, path: str) -> list[str]:
    return [
        r.headers.get("paypal-request-id", "")
        for r in fake.requests
        if r.method == "POST" and r.path.endswith(path)
    ]


async def test_paypal_pays_and_refunds_through_its_async_client(paypal: FakePayPal) -> None:
    payment = await services.acreate_payment(amount="40.00", currency="USD", provider="paypal")
    payment = await services.aprocess_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("40.00")
    refund = await services.acreate_refund(payment=payment, amount="15.00")
    assert refund.status == "completed"
    payment = await services.async_sync_payment(payment=payment)
    assert payment.status == "partially_refunded"
    # Idempotency keys derived from paydesk's ids, as the sync services send them.
    assert _request_ids(paypal, "/v2/checkout/orders") == [f"paydesk:{payment.pk}:attempt-1:create"]
    assert _request_ids(paypal, "/refund") == [f"paydesk:{refund.pk}:refund"]
    assert paypal.count("refund") == 1


async def test_a_lost_answer_is_settled_by_async_sync_without_a_second_order(
    paypal: FakePayPal,
) -> None:
    payment = await services.acreate_payment(amount="25.00", currency="USD", provider="paypal")
    paypal.inject("timeout_after", path="/v2/checkout/orders$", method="POST")
    with pytest.raises(ProviderUnavailable):
        await services.aprocess_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    payment = await sync_to_async(Payment.objects.get)(pk=payment.pk)
    assert payment.status == "processing"  # outcome unknown, noted in the ledger
    assert (await akinds(payment))[-1] == "note"
    payment = await services.async_sync_payment(payment=payment)
    assert payment.status == "completed"
    assert len(paypal.orders) == 1
    assert paypal.count("capture") == 1


async def test_a_cancelled_caller_does_not_lose_the_outcome(paypal: FakePayPal) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/checkout/orders":
            entered.set()
            await release.wait()
        return paypal(request)

    provider = get_async_payment_provider("paypal")
    provider._async_http_client = httpx.AsyncClient(transport=httpx.MockTransport(slow))  # type: ignore[attr-defined]
    payment = await services.acreate_payment(amount="18.00", currency="USD", provider="paypal")
    task = asyncio.ensure_future(
        services.aprocess_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    )
    await entered.wait()  # PayPal has the request; the customer closes the tab
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await async_services.wait_for_orphans()
    payment = await sync_to_async(Payment.objects.get)(pk=payment.pk)
    assert payment.status == "completed"
    assert payment.lease_operation == ""  # the lease was released with the outcome
    assert paypal.count("capture") == 1


# -- iyzico: the hosted checkout form, confirmed after the customer pays ---------------------


@pytest.fixture
def iyzico() -> Iterator[FakeIyzico]:
    fake = FakeIyzico()
    options = iyzico_options()
    with override_settings(PAYDESK=paydesk_config(options)):
        from paydesk.providers.iyzico import IyzicoProvider

        providers.set_instance(
            IYZICO,
            IyzicoProvider(
                alias=IYZICO,
                options=options,
                http_client=httpx.Client(transport=httpx.MockTransport(_explode)),
                async_http_client=fake.async_client(),
            ),
        )
        yield fake


async def test_iyzico_checkout_form_confirm_and_refund(iyzico: FakeIyzico) -> None:
    payment = await services.acreate_payment(amount="50.00", currency="TRY", provider=IYZICO)
    payment = await services.aprocess_payment(payment=payment)
    assert payment.status == "requires_action"
    assert payment.next_action["redirect_url"]
    iyzico.pay(payment.provider_payment_id, "success")  # the customer pays on iyzico's form
    payment = await services.aconfirm_payment(payment=payment, params={})
    assert payment.status == "completed"
    refund = await services.acreate_refund(payment=payment, amount="20.00")
    assert refund.status == "completed"
    payment = await sync_to_async(Payment.objects.get)(pk=payment.pk)
    assert payment.refunded_amount == Decimal("20.00")


# -- the demo's async view -------------------------------------------------------------------------


def _order_waiting_for_3ds() -> Any:
    from paydesk.providers.sandbox import SandboxProvider
    from shop.models import Order, Product

    product = Product.objects.create(name="Async mug", price=Decimal("9.50"), currency="USD")
    order = Order.objects.create(product=product, total=Decimal("9.50"), currency="USD")
    payment = services.create_payment(
        amount=order.total, currency="USD", provider="sandbox", content_object=order
    )
    order.payment = payment
    order.save()
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_3ds")
    assert payment.status == "requires_action"
    # The customer passes 3-D Secure; with webhook delivery off, paydesk has not heard yet.
    sandbox = get_payment_provider("sandbox")
    assert isinstance(sandbox, SandboxProvider)
    sandbox.complete_challenge(provider_payment_id=payment.provider_payment_id, passed=True)
    return order


async def test_demo_async_status_view_asks_the_provider() -> None:
    from shop import views
    from shop.models import Order

    assert inspect.iscoroutinefunction(views.order_status)
    order = await sync_to_async(_order_waiting_for_3ds)()
    url = reverse("shop:order-status", args=[order.public_id])
    response = await AsyncClient().get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="payment-status">completed<' in body
    assert "Asked the provider just now" in body
    order = await Order.objects.aget(pk=order.pk)
    assert order.status == Order.Status.PAID  # the demo's receiver ran on commit
    # Nothing to ask any more: the page shows the stored state.
    again = (await AsyncClient().get(url)).content.decode()
    assert "Asked the provider just now" not in again
    assert (await AsyncClient().get(reverse("shop:order-status", args=["nope"]))).status_code == 404
