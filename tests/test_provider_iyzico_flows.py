"""The iyzico provider through paydesk: services, the callback view, refunds, faults and
webhooks through ``POST /paydesk/webhooks/iyzico/``, all against the fake iyzico API.

Also the async twins and one ``live`` test against iyzico's sandbox (skipped unless
``PAYDESK_IYZICO_API_KEY`` and ``PAYDESK_IYZICO_SECRET_KEY`` are set).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings

from paydesk import services
from paydesk.exceptions import (
    InvalidTransition,
    ProviderRequestError,
    ProviderUnavailable,
    RefundExceedsCaptured,
)
from paydesk.models import Payment, Refund, TransactionLog, WebhookEvent
from paydesk.money import Money
from paydesk.providers.iyzico import IyzicoProvider
from paydesk.providers.iyzico.errors import ResponseSignatureError
from paydesk.providers.registry import providers
from paydesk.types import PaymentRequest, ProviderStatus, RefundRequest, StatusRequest

from .fakes.iyzico_api import FakeIyzico
from .test_provider_iyzico import (
    ALIAS,
    confirm_request,
    install,
    iyzico_options,
    paydesk_config,
    payment_request,
    tamper_retrieve,
)

CF = "/payment/iyzipos/checkoutform/initialize/ecom"


@pytest.fixture
def fake() -> FakeIyzico:
    return FakeIyzico()


@pytest.fixture
def iyzico(fake: FakeIyzico) -> Iterator[IyzicoProvider]:
    with override_settings(PAYDESK=paydesk_config()):
        yield install(fake)


WEBHOOK_URL = f"/paydesk/webhooks/{ALIAS}/"


def kinds(payment: Payment) -> list[str]:
    return list(
        TransactionLog.objects.filter(payment=payment).order_by("pk").values_list("kind", flat=True)
    )


def start_checkout(amount: str = "20.00", return_url: str = "") -> Payment:
    payment = services.create_payment(
        amount=amount, currency="TRY", provider=ALIAS, return_url=return_url
    )
    return services.process_payment(payment=payment)


def paid_payment(fake: FakeIyzico, amount: str = "20.00") -> Payment:
    """A checkout form payment the customer paid, confirmed through the callback."""
    payment = start_checkout(amount)
    fake.pay(payment.provider_payment_id, "success")
    payment = services.confirm_payment(payment=payment, params={})
    assert payment.status == "completed", payment.failure_message
    return payment


def callback_url(payment: Payment) -> str:
    return f"/paydesk/iyzico/callback/{ALIAS}/{payment.pk}/"


# -- checkout form end to end ---------------------------------------------------------------


@pytest.mark.django_db
def test_checkout_form_end_to_end_through_the_callback_view(
    iyzico, fake, django_capture_on_commit_callbacks, recorder
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_checkout(return_url="/shop/thanks/")
    assert payment.status == "requires_action"
    assert payment.next_action["redirect_url"].startswith("https://sandbox-cpp.iyzipay.com")
    token = payment.provider_payment_id
    payment_id = fake.pay(token, "success")

    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(callback_url(payment), {"token": token})
    assert response.status_code == 302
    assert response["Location"] == "/shop/thanks/"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("20.00")
    assert payment.provider_payment_id == token
    capture = TransactionLog.objects.get(payment=payment, kind="capture")
    assert capture.provider_data["paymentId"] == payment_id
    assert capture.provider_data["itemTransactions"][0]["paymentTransactionId"]
    assert recorder.names.count("payment_confirmed") == 1

    # The browser posting again (back button) changes nothing.
    response = client.post(callback_url(payment), {"token": token})
    assert response.status_code == 302
    assert kinds(payment).count("capture") == 1


@pytest.mark.django_db
def test_callback_refuses_another_token_and_other_methods(iyzico, fake):
    payment = start_checkout()
    fake.pay(payment.provider_payment_id, "success")
    client = Client()
    response = client.post(callback_url(payment), {"token": "someone-elses-token"})
    assert response.status_code == 400
    assert b"does not belong" in response.content
    assert client.post(callback_url(payment), {}).status_code == 400
    assert client.get(callback_url(payment)).status_code == 405
    missing = f"/paydesk/iyzico/callback/{ALIAS}/pay_nope/"
    assert client.post(missing, {"token": "x"}).status_code == 404
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert [c for c in fake.calls if "auth/ecom/detail" in c["path"]] == []


@pytest.mark.django_db
def test_callback_after_a_declined_card_shows_the_failure(iyzico, fake):
    payment = start_checkout()
    fake.pay(payment.provider_payment_id, "insufficient")
    response = Client().post(callback_url(payment), {"token": payment.provider_payment_id})
    assert response.status_code == 200  # no return_url: the status page
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "insufficient_funds"
    assert "Kart limiti yetersiz" in payment.failure_message


@pytest.mark.django_db
def test_fraud_review_is_processing_until_iyzico_approves(iyzico, fake):
    payment = start_checkout()
    payment_id = fake.pay(payment.provider_payment_id, "review")
    payment = services.confirm_payment(payment=payment)
    assert payment.status == "processing"
    note = TransactionLog.objects.get(payment=payment, kind="processing")
    assert "fraud review" in note.provider_data["note"]
    assert services.sync_payment(payment=payment).status == "processing"
    fake.approve(payment_id)
    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("20.00")


@pytest.mark.django_db
def test_fraud_rejection_after_review_fails_the_payment(iyzico, fake):
    payment = start_checkout()
    payment_id = fake.pay(payment.provider_payment_id, "review")
    payment = services.confirm_payment(payment=payment)
    fake.reject(payment_id)
    payment = services.sync_payment(payment=payment)
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"


@pytest.mark.django_db
def test_a_tampered_retrieve_leaves_the_payment_unfinished(fake):
    with override_settings(PAYDESK=paydesk_config()):
        provider = IyzicoProvider(
            alias=ALIAS,
            options=iyzico_options(),
            http_client=tamper_retrieve(fake, {"paidPrice": 200.0}),
        )
        providers.set_instance(ALIAS, provider)
        payment = start_checkout()
        fake.pay(payment.provider_payment_id, "success")
        with pytest.raises(ResponseSignatureError):
            services.confirm_payment(payment=payment)
        payment.refresh_from_db()
        assert payment.status == "requires_action"
        assert payment.lease_operation == ""  # released: the next callback may try again
        assert "note" in kinds(payment)
        response = Client().post(callback_url(payment), {"token": payment.provider_payment_id})
        assert b"signature" in response.content
        install(fake)  # the honest answer completes it
        assert services.confirm_payment(payment=payment).status == "completed"


@pytest.mark.django_db
def test_sync_before_and_after_the_customer_pays(iyzico, fake):
    payment = start_checkout()
    assert services.sync_payment(payment=payment).status == "requires_action"
    fake.pay(payment.provider_payment_id, "success")
    payment = services.sync_payment(payment=payment)  # no callback (browser closed)
    assert payment.status == "completed"


@pytest.mark.django_db
def test_cancel_is_for_an_unpaid_checkout_form_only(iyzico, fake):
    unpaid = start_checkout()
    assert services.cancel_payment(payment=unpaid, reason="abandoned").status == "cancelled"
    assert (
        "no call to void"
        in TransactionLog.objects.get(payment=unpaid, kind="cancellation").provider_data["note"]
    )

    paid = start_checkout()
    fake.pay(paid.provider_payment_id, "success")
    with pytest.raises(ProviderRequestError, match="already paid"):
        services.cancel_payment(payment=paid)
    paid.refresh_from_db()
    assert paid.status == "requires_action"
    assert services.confirm_payment(payment=paid).status == "completed"
    with pytest.raises(InvalidTransition, match="refund a completed one"):
        services.cancel_payment(payment=paid)


# -- refunds: cancel vs refund ------------------------------------------------------------


@pytest.mark.django_db
def test_same_day_full_refund_is_a_cancel(iyzico, fake):
    payment = paid_payment(fake)
    refund = services.create_refund(payment=payment, reason="requested_by_customer")
    assert refund.status == "completed"
    assert refund.provider_response["method"] == "cancel"
    assert refund.provider_refund_id == refund.pk
    assert "/payment/cancel" in fake.paths()
    assert "/v2/payment/refund" not in fake.paths()
    body = next(c for c in fake.calls if c["path"] == "/payment/cancel")["body"]
    assert body["reason"] == "buyer_request"
    iyzico_payment = fake.payment_for(payment.pk)
    assert iyzico_payment.cancels[0]["cancelConversationId"] == refund.pk
    payment.refresh_from_db()
    assert payment.status == "refunded"


@pytest.mark.django_db
def test_full_refund_after_the_day_is_a_refund_and_says_why(iyzico, fake):
    payment = paid_payment(fake)
    fake.settle(fake.payment_for(payment.pk).payment_id)
    refund = services.create_refund(payment=payment)
    assert refund.status == "completed"
    assert refund.provider_response["method"] == "refund_v2"
    assert "only possible on the same day" in refund.provider_response["note"]
    assert "/payment/cancel" not in fake.paths()


@pytest.mark.django_db
def test_a_cancel_iyzico_refuses_falls_back_to_a_refund(iyzico, fake):
    payment = paid_payment(fake)
    fake.payment_for(payment.pk).settled = True  # the bank closed its day early
    refund = services.create_refund(payment=payment)
    assert refund.status == "completed"
    assert refund.provider_response["method"] == "refund_v2"
    assert "cancel refused by iyzico" in refund.provider_response["note"]
    assert fake.payment_for(payment.pk).refunded == Decimal("20.00")


@pytest.mark.django_db
def test_cumulative_partial_refunds_within_the_paid_price(iyzico, fake):
    payment = paid_payment(fake)
    for amount in ("5.00", "7.00", "8.00"):
        refund = services.create_refund(payment=payment, amount=amount)
        assert refund.status == "completed", refund.failure_message
        assert refund.provider_response["method"] == "refund_v2"
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert fake.payment_for(payment.pk).refunded == Decimal("20.00")
    assert "/payment/cancel" not in fake.paths()  # partial first: never a cancel
    with pytest.raises(RefundExceedsCaptured):
        services.create_refund(payment=payment, amount="0.01")


@pytest.mark.django_db
def test_without_refund_history_refunds_are_sent_directly(fake):
    with override_settings(PAYDESK=paydesk_config(iyzico_options(REFUND_HISTORY="none"))):
        install(fake)
        payment = paid_payment(fake)
        refund = services.create_refund(payment=payment)  # same day, but no createdDate
        assert refund.status == "completed"
        assert refund.provider_response["method"] == "refund_v2"
    assert "/v2/reporting/payment/details" not in fake.paths()
    assert "/payment/cancel" not in fake.paths()


@pytest.mark.django_db
def test_iyzico_refuses_a_refund_beyond_the_paid_price(iyzico, fake):
    payment = paid_payment(fake)
    request = RefundRequest(
        refund_id="re_x",
        payment_id=payment.pk,
        provider_payment_id=payment.provider_payment_id,
        amount=Money("20.01", "TRY"),
        idempotency_key="paydesk:re_x:refund",
    )
    with pytest.raises(ProviderRequestError) as caught:
        iyzico.create_refund(request)
    assert caught.value.code == "invalid_request"
    assert "kalan tutardan" in caught.value.message


@pytest.fixture
def item_mode(fake) -> Iterator[IyzicoProvider]:
    options = iyzico_options(
        REFUND_MODE="item", BUYER_DATA_HOOK="tests.test_provider_iyzico.hook_two_items"
    )
    with override_settings(PAYDESK=paydesk_config(options)):
        yield install(fake)


@pytest.mark.django_db
def test_item_mode_refunds_per_basket_item_and_says_why_when_it_cannot(item_mode, fake):
    payment = paid_payment(fake)
    items = fake.payment_for(payment.pk).items  # book 12.00, e-book 8.00

    def item_refunds() -> list[tuple[str, str]]:
        return [
            (c["body"]["paymentTransactionId"], c["body"]["price"])
            for c in fake.calls
            if c["path"] == "/payment/refund"
        ]

    failed = services.create_refund(payment=payment, amount="5.00")  # which item?
    assert failed.status == "failed"
    assert failed.failure_code == "invalid_request"
    assert 'REFUND_MODE "item"' in failed.failure_message
    assert "12.00 TRY left" in failed.failure_message
    assert "8.00 TRY left" in failed.failure_message
    assert item_refunds() == []

    assert services.create_refund(payment=payment, amount="8.00").status == "completed"
    assert item_refunds() == [(items[1].transaction_id, "8.00")]  # the e-book, by amount
    # one item left with something to refund: a part of it is unambiguous
    assert services.create_refund(payment=payment, amount="5.00").status == "completed"
    assert services.create_refund(payment=payment, amount="7.00").status == "completed"
    assert item_refunds()[1:] == [
        (items[0].transaction_id, "5.00"),
        (items[0].transaction_id, "7.00"),
    ]
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert [i.refunded for i in items] == [Decimal("12.00"), Decimal("8.00")]


@pytest.mark.django_db
def test_item_mode_full_refund_after_the_day_refunds_every_item(item_mode, fake):
    payment = paid_payment(fake)
    fake.settle(fake.payment_for(payment.pk).payment_id)
    refund = services.create_refund(payment=payment)
    assert refund.status == "completed"
    assert len(refund.provider_response["items"]) == 2
    assert fake.payment_for(payment.pk).refunded == Decimal("20.00")


# -- faults and idempotent retries ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v2/payment/refund", "/payment/cancel"])
def test_a_refund_whose_answer_was_lost_is_not_sent_twice(iyzico, fake, path):
    payment = paid_payment(fake)
    amount = "5.00" if path == "/v2/payment/refund" else None
    fake.fail(path, "timeout", after=True)  # iyzico refunds, the answer never arrives
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount=amount)
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "pending"  # reserved, outcome unknown
    refund = services.refunds.process_refund(refund=refund)  # the retry
    assert refund.status == "completed"
    assert "not sent again" in refund.provider_response["note"]
    assert fake.paths().count(path) == 1  # one call reached iyzico, never a second one
    refunded = fake.payment_for(payment.pk).refunded
    assert refunded == Decimal(amount or "20.00")


@pytest.mark.django_db
def test_a_refund_that_never_reached_iyzico_is_sent_on_retry(iyzico, fake):
    payment = paid_payment(fake)
    fake.fail("/v2/payment/refund", "503")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="5.00")
    refund = services.refunds.process_refund(refund=Refund.objects.get(payment=payment))
    assert refund.status == "completed"
    assert fake.paths().count("/v2/payment/refund") == 2
    assert fake.payment_for(payment.pk).refunded == Decimal("5.00")


@pytest.mark.django_db
def test_refund_history_unavailable_means_no_refund_is_sent(iyzico, fake):
    payment = paid_payment(fake)
    fake.fail("/v2/reporting/payment/details", "500")
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="5.00")
    assert "/v2/payment/refund" not in fake.paths()


@pytest.mark.django_db
def test_a_charge_whose_answer_was_lost_is_found_not_repeated(iyzico, fake):
    card = fake.store_card()
    payment = services.create_payment(amount="20.00", currency="TRY", provider=ALIAS)
    fake.fail("/payment/auth", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token=card)
    payment.refresh_from_db()
    assert payment.status == "processing"
    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"
    assert len(fake.payments) == 1
    assert fake.paths().count("/payment/auth") == 1


@pytest.mark.django_db
def test_a_lost_callback_retrieve_is_retried_by_the_next_callback(iyzico, fake):
    payment = start_checkout()
    fake.pay(payment.provider_payment_id, "success")
    fake.fail("/payment/iyzipos/checkoutform/auth/ecom/detail", "timeout")
    client = Client()
    response = client.post(callback_url(payment), {"token": payment.provider_payment_id})
    assert response.status_code == 200
    assert b"outcome is unknown" in response.content
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    client.post(callback_url(payment), {"token": payment.provider_payment_id})
    payment.refresh_from_db()
    assert payment.status == "completed"


@pytest.mark.django_db
def test_initialize_failure_is_retryable_and_recorded(iyzico, fake):
    payment = services.create_payment(amount="20.00", currency="TRY", provider=ALIAS)
    fake.fail(CF, "503")
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment)
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert (
        "outcome unknown"
        in TransactionLog.objects.filter(payment=payment, kind="note").get().message
    )


# -- webhooks through the pipeline -------------------------------------------------------------


def post_webhook(body: bytes, headers: dict[str, str]) -> Any:
    sent = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", headers=sent)


@pytest.mark.django_db
def test_hosted_page_webhook_completes_the_payment_once(
    iyzico, fake, recorder, django_capture_on_commit_callbacks
):
    payment = start_checkout()
    iyzico_payment = fake.payments[fake.pay(payment.provider_payment_id, "success")]
    body, headers = fake.webhook(iyzico_payment)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(body, headers)
    assert response.status_code == 200, response.content
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "processed"
    assert delivery.payment_id == payment.pk
    payment.refresh_from_db()
    assert payment.status == "completed"
    # the server-side retrieve, not the notification, decided
    assert "/payment/iyzipos/checkoutform/auth/ecom/detail" in fake.paths()
    # iyzico retries the same notification: a duplicate
    assert post_webhook(body, headers).json()["status"] == "duplicate"
    # the browser's callback comes later: nothing more to record
    with django_capture_on_commit_callbacks(execute=True):
        Client().post(callback_url(payment), {"token": payment.provider_payment_id})
    assert kinds(payment).count("capture") == 1
    assert recorder.names.count("payment_confirmed") == 1


@pytest.mark.django_db
def test_direct_webhook_settles_a_charge_whose_answer_was_lost(iyzico, fake):
    card = fake.store_card()
    payment = services.create_payment(amount="20.00", currency="TRY", provider=ALIAS)
    fake.fail("/payment/auth", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token=card)
    body, headers = fake.webhook(fake.payment_for(payment.pk), fmt="direct")
    assert b'"token"' not in body
    response = post_webhook(body, headers)
    assert response.status_code == 200, response.content
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.provider_payment_id == fake.payment_for(payment.pk).payment_id
    assert services.sync_payment(payment=payment).status == "completed"
    assert kinds(payment).count("capture") == 1


@pytest.mark.django_db
def test_the_retrieve_decides_not_the_notification(iyzico, fake):
    payment = start_checkout()
    declined = fake.payments[fake.pay(payment.provider_payment_id, "declined")]
    body, headers = fake.webhook(declined, status="SUCCESS")  # a notification that says paid
    assert post_webhook(body, headers).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"


@pytest.mark.django_db
def test_review_then_approval_notifications(iyzico, fake):
    payment = start_checkout()
    iyzico_payment = fake.payments[fake.pay(payment.provider_payment_id, "review")]
    assert post_webhook(*fake.webhook(iyzico_payment)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "processing"
    fake.approve(iyzico_payment.payment_id)
    body, headers = fake.webhook(iyzico_payment)  # a later event time: a new event
    assert post_webhook(body, headers).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert WebhookEvent.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "malformed", "missing", "not_v3"])
def test_refused_webhooks_leave_no_trace(iyzico, fake, case):
    payment = start_checkout()
    iyzico_payment = fake.payments[fake.pay(payment.provider_payment_id, "success")]
    body, headers = fake.webhook(iyzico_payment)
    if case == "tampered":
        body = body.replace(payment.pk.encode(), b"pay_someone_else")
    elif case == "wrong_secret":
        body, headers = fake.webhook(iyzico_payment, secret="sandbox-other-merchant")
    elif case == "malformed":
        body = body[:-5]
    elif case == "missing":
        headers = {"Content-Type": "application/json"}
    else:
        headers = {"X-Iyz-Signature-V2": headers["X-Iyz-Signature-V3"]}
    response = post_webhook(body, headers)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    assert WebhookEvent.objects.count() == 0
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert not any("auth/ecom/detail" in p for p in fake.paths())


@pytest.mark.django_db
def test_unknown_event_types_are_stored_and_ignored(iyzico, fake):
    payment = paid_payment(fake)
    body, headers = fake.webhook(fake.payment_for(payment.pk), event_type="REFUND_RETRY_SUCCESS")
    calls = len(fake.calls)
    response = post_webhook(body, headers)
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"
    assert len(fake.calls) == calls  # no retrieve for events paydesk does not act on


@pytest.mark.django_db
def test_a_notification_iyzico_does_not_confirm_yet_is_retried(iyzico, fake):
    payment = start_checkout()
    iyzico_payment = fake.payments[fake.pay(payment.provider_payment_id, "success")]
    body, headers = fake.webhook(iyzico_payment)
    iyzico_payment_id = iyzico_payment.payment_id
    fake.forms[payment.provider_payment_id].payment_id = ""  # iyzico's API lags behind
    response = post_webhook(body, headers)
    assert response.status_code == 500
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "failed"
    assert "does not confirm yet" in delivery.error_message
    fake.forms[payment.provider_payment_id].payment_id = iyzico_payment_id
    services.webhooks.process_webhook(delivery=delivery, force=True)
    payment.refresh_from_db()
    assert payment.status == "completed"


# -- async twins ------------------------------------------------------------------------------


def test_async_twins_use_the_async_client(fake):
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return fake.handler(request)

    with override_settings(PAYDESK=paydesk_config()):
        provider = IyzicoProvider(
            alias=ALIAS,
            options=iyzico_options(),
            http_client=httpx.Client(transport=httpx.MockTransport(lambda r: 1 / 0)),
            async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        )
        request = payment_request()

        async def flow() -> tuple[Any, ...]:
            created = await provider.create_payment_async(request)
            fake.pay(created.provider_payment_id, "success")
            confirmed = await provider.confirm_payment_async(
                confirm_request(request, created.provider_payment_id)
            )
            status = await provider.get_payment_status_async(
                StatusRequest(
                    payment_id=request.payment_id,
                    provider_payment_id=created.provider_payment_id,
                    idempotency_key=request.idempotency_key,
                    amount=request.amount,
                )
            )
            refund_request = RefundRequest(
                refund_id="re_a",
                payment_id=request.payment_id,
                provider_payment_id=created.provider_payment_id,
                amount=Money("2.50", "TRY"),
                idempotency_key="paydesk:re_a:refund",
            )
            refund = await provider.create_refund_async(refund_request)
            again = await provider.create_refund_async(refund_request)
            return created, confirmed, status, refund, again

        created, confirmed, status, refund, again = asyncio.run(flow())
    assert created.status == ProviderStatus.REQUIRES_ACTION
    assert confirmed.status == status.status == ProviderStatus.CAPTURED
    assert refund.status == again.status == "completed"
    assert again.provider_refund_id == refund.provider_refund_id
    assert fake.payments[confirmed.raw["paymentId"]].refunded == Decimal("2.50")
    assert CF in seen
    assert "/v2/payment/refund" in seen


# -- live sandbox --------------------------------------------------------------------------------


LIVE_KEYS = ("PAYDESK_IYZICO_API_KEY", "PAYDESK_IYZICO_SECRET_KEY")


@pytest.mark.live
@pytest.mark.skipif(
    not all(os.environ.get(k) for k in LIVE_KEYS),
    reason="set PAYDESK_IYZICO_API_KEY and PAYDESK_IYZICO_SECRET_KEY (iyzico sandbox keys)",
)
def test_live_sandbox_health_and_checkout_form() -> None:
    options = {
        "API_KEY": os.environ["PAYDESK_IYZICO_API_KEY"],
        "SECRET_KEY": os.environ["PAYDESK_IYZICO_SECRET_KEY"],
        "MODE": "sandbox",
        "CF_INITIALIZE_PATH": os.environ.get(
            "PAYDESK_IYZICO_CF_INITIALIZE_PATH", "/payment/iyzipos/checkoutform/initialize/ecom"
        ),
        "CALLBACK_BASE_URL": "https://example.com",
    }
    provider = IyzicoProvider(alias=ALIAS, options=options)
    health = provider.health_check()
    assert health.ok, health.detail
    request = PaymentRequest(
        payment_id=f"pay_live_{os.getpid()}",
        amount=Money("1.00", "TRY"),
        idempotency_key="live",
    )
    result = provider.create_payment(request)
    assert result.status == ProviderStatus.REQUIRES_ACTION  # signature verified on the way
    assert result.next_action is not None
    assert result.next_action.redirect_url
