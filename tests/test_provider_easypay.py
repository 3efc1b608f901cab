"""The KICC EasyPay provider against a fake KICC PG API (tests/fakes/easypay_api.py).

Token convention (see docs/providers/easypay.md): ``""`` opens KICC's window (the real
flow: register -> window -> return -> approval); ``"paymethod:11"`` opens it for cards
(the contract's action token); ``"authorization:<id>"`` registers and approves at once with
an ``authorizationId``, and the fake's ``fake-approve`` / ``fake-decline`` ids stand for "the
customer completed / was declined in the window". The contract's success token is
therefore ``"authorization:fake-approve"``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import os
from decimal import Decimal

import pytest
from django.test import override_settings

from paydesk import services, signals
from paydesk.exceptions import (
    PaymentValidationError,
    ProviderRequestError,
    ProviderUnavailable,
)
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.easypay import EasyPayProvider, msg_auth_value, wire
from paydesk.providers.registry import providers
from paydesk.types import (
    Capability,
    ConfirmRequest,
    PaymentRequest,
    ProviderStatus,
    RefundRequest,
    StatusRequest,
)

from .contract import ContractSetup, ProviderContract
from .fakes import easypay_api as kicc
from .fakes.easypay_api import MALL_ID, SECRET_KEY, FakeEasyPay

ALIAS = "easypay"
BASE = "https://shop.example"
APPROVAL = "/api/ep9/trades/approval"
REVISE = "/api/trades/revise"
RETRIEVE = "/api/trades/retrieveTransaction"


def paydesk_for(fake: FakeEasyPay | None, **options: object) -> dict:
    opts: dict[str, object] = {"MALL_ID": MALL_ID, "SECRET_KEY": SECRET_KEY, "MODE": "test"}
    if fake is not None:
        opts["HTTP_CLIENT"] = fake.client()
        opts["ASYNC_HTTP_CLIENT"] = fake.async_client()
    opts.update(options)
    return {
        "DEFAULT_PROVIDER": "sandbox",
        "PUBLIC_BASE_URL": BASE,
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "off"},
            },
            ALIAS: {"BACKEND": "easypay", "OPTIONS": opts},
        },
    }


@pytest.fixture
def fake() -> FakeEasyPay:
    return FakeEasyPay()


@pytest.fixture
def provider(fake):
    with override_settings(PAYDESK=paydesk_for(fake)):
        yield get_payment_provider(ALIAS)


@pytest.fixture
def received():
    names = [
        "payment_requires_action",
        "payment_registered",
        "payment_confirmed",
        "payment_failed",
        "payment_refunded",
        "refund_failed",
    ]
    calls: list[tuple[str, dict]] = []
    for name in names:

        def receiver(sender, _name=name, **kwargs):
            calls.append((_name, kwargs))

        getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"kicc-test-{name}")
    yield calls
    for name in names:
        getattr(signals, name).disconnect(dispatch_uid=f"kicc-test-{name}")


def _request(key: str, token: str = "", amount: str = "15000", attempt: int = 1):
    return PaymentRequest(
        payment_id=f"pay_ep_{key}",
        amount=Money(amount, "KRW"),
        idempotency_key=f"paydesk:pay_ep_{key}:attempt-{attempt}:create",
        attempt=attempt,
        payment_method_token=token,
        description="공연 티켓 2매",
    )


class TestEasyPayContract(ProviderContract):
    @pytest.fixture
    def contract(self, fake):
        with override_settings(PAYDESK=paydesk_for(fake)):
            yield ContractSetup(
                alias=ALIAS,
                currency="KRW",
                success_token="authorization:fake-approve",
                decline_token="authorization:fake-decline",
                action_token="paymethod:11",
            )


# -- configuration and wire ------------------------------------------------------------------


def test_capabilities_and_hosts(provider):
    assert isinstance(provider, EasyPayProvider)
    assert provider.capabilities == {
        Capability.REFUND,
        Capability.PARTIAL_REFUND,
        Capability.MULTIPLE_REFUNDS,
        Capability.SYNC,
        Capability.HOSTED_CHECKOUT,
    }
    assert provider.base_url == "https://testpgapi.easypay.co.kr"
    live = EasyPayProvider(alias="e", options={"MODE": "production"})
    assert live.base_url == "https://pgapi.easypay.co.kr"
    assert (provider.revise_full, provider.revise_partial) == ("40", "32")
    assert not provider.supports(Capability.WEBHOOKS)  # KICC sends no server notification here


def test_msg_auth_value_vector():
    # Pinned, and cross-checked with `openssl dgst -sha256 -hmac T5102001-secret`.
    expected = "a174d5a3e5250d28a3df7c714ed19ad14622fe357f9e1f272edb4991dc33fe2c"
    value = msg_auth_value("T5102001-secret", "20240101123456789012", "paydesk:re_3kF9aZ:refund")
    assert value == expected
    assert (
        value
        == hmac.new(
            b"T5102001-secret", b"20240101123456789012|paydesk:re_3kF9aZ:refund", hashlib.sha256
        ).hexdigest()
    )
    assert kicc.mac("T5102001-secret", "20240101123456789012", "paydesk:re_3kF9aZ:refund") == value


def test_kst_dates_and_transaction_ids():
    late_utc = dt.datetime(2024, 1, 1, 15, 30, tzinfo=dt.UTC)  # 00:30 on the 2nd in Seoul
    assert wire.kst_date(late_utc) == "20240102"
    assert (
        wire.transaction_id("paydesk:pay_x:attempt-1:confirm") == "paydesk:pay_x:attempt-1:confirm"
    )
    long_key = "paydesk:" + "x" * 80 + ":refund"
    assert len(wire.transaction_id(long_key)) <= 60
    assert wire.transaction_id(long_key) == wire.transaction_id(long_key)


def test_krw_only_refused_before_any_call(provider, fake):
    with pytest.raises(ProviderRequestError, match="Korean won") as info:
        provider.create_payment(
            PaymentRequest(
                payment_id="pay_usd",
                amount=Money("10.00", "USD"),
                idempotency_key="paydesk:pay_usd:attempt-1:create",
            )
        )
    assert info.value.provider == ALIAS
    assert fake.requests == []
    assert not provider.supports_currency("USD")
    assert provider.supports_currency("KRW")


@pytest.mark.django_db
def test_services_refuse_other_currencies(provider, fake):
    with pytest.raises(PaymentValidationError) as info:
        services.create_payment(amount="10.00", currency="USD", provider=ALIAS)
    assert info.value.code == "currency_not_supported"
    with pytest.raises(PaymentValidationError):
        services.create_payment(amount="100.5", currency="KRW", provider=ALIAS)
    assert fake.requests == []


def test_register_body(provider, fake):
    result = provider.create_payment(_request("reg"))
    [body] = fake.bodies("/api/ep9/trades/webpay")
    sent = fake.requests[-1]
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert "authorization" not in sent.headers  # identity is mallId in the body
    assert body["mallId"] == MALL_ID
    assert body["shopOrderNo"] == "pay_ep_reg-1"
    assert body["amount"] == 15000
    assert isinstance(body["amount"], int)
    assert body["currency"] == "00"
    assert body["payMethodTypeCode"] == "00"
    assert body["returnUrl"] == f"{BASE}/paydesk/easypay/return/pay_ep_reg/"
    assert body["orderInfo"]["goodsName"] == "공연 티켓 2매"
    assert body["shopValueInfo"] == {"value1": "pay_ep_reg"}
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action.redirect_url == fake.orders["pay_ep_reg-1"]["authPageUrl"]
    assert result.provider_payment_id == ""  # KICC's pgCno exists after approval


def test_unknown_mall_is_refused_clearly(fake):
    with (
        override_settings(PAYDESK=paydesk_for(fake, MALL_ID="T0000000")),
        pytest.raises(ProviderRequestError, match="MALL_ID") as info,
    ):
        get_payment_provider(ALIAS).create_payment(_request("mall"))
    assert info.value.provider_code == "F001"


# -- the whole flow ---------------------------------------------------------------------------


def _start(client, received, capture, *, amount="15000", return_url="/thanks/"):
    with capture(execute=True):
        payment = services.create_payment(
            amount=amount, currency="KRW", provider=ALIAS, return_url=return_url
        )
        payment = services.process_payment(payment=payment)
    return payment


@pytest.mark.django_db
def test_register_window_return_approve_capture(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks)
    assert payment.status == "requires_action"
    [registered] = [k for n, k in received if n == "payment_registered"]
    assert registered["redirect_url"] == payment.next_action["redirect_url"]
    assert registered["payment"].pk == payment.pk

    order_no = f"{payment.pk}-1"
    authorization_id = fake.complete_window(order_no)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, authorization_id)
        )
    assert response.status_code == 302
    assert response["Location"] == "/thanks/"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal(15000)
    [tx_id] = fake.transactions
    assert payment.provider_payment_id == tx_id

    [approval] = fake.bodies(APPROVAL)
    assert approval["shopTransactionId"] == f"paydesk:{payment.pk}:attempt-1:confirm"
    assert approval["authorizationId"] == authorization_id
    assert approval["shopOrderNo"] == order_no
    assert approval["approvalReqDate"] == dt.datetime.now(wire.KST).strftime("%Y%m%d")

    [approved] = [k for n, k in received if n == "payment_confirmed"]
    assert approved["pg_tid"] == tx_id
    assert approved["auth_id"] == authorization_id
    assert approved["approval_no"]
    assert signals.payment_approved is signals.payment_confirmed

    # The browser coming back again (reload) approves nothing twice.
    client.post(
        f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, authorization_id)
    )
    assert len(fake.bodies(APPROVAL)) == 1
    assert len(fake.transactions) == 1


@pytest.mark.django_db
def test_return_without_kicc_fields_changes_nothing(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks, return_url="")
    response = client.get(f"/paydesk/easypay/return/{payment.pk}/")
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert fake.bodies(APPROVAL) == []


@pytest.mark.django_db
def test_customer_cancelling_the_window_fails_the_payment(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks)
    order_no = f"{payment.pk}-1"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, "", res_cd="W002")
        )
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"
    assert fake.bodies(APPROVAL) == []
    [failed] = [k for n, k in received if n == "payment_failed"]
    assert failed["error_code"] == "card_declined"
    assert "KICC's window" in failed["error_message"]


@pytest.mark.django_db
def test_a_return_for_another_order_is_refused(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    mine = _start(client, received, django_capture_on_commit_callbacks)
    other = _start(client, received, django_capture_on_commit_callbacks)
    authorization_id = fake.complete_window(f"{other.pk}-1")
    client.post(
        f"/paydesk/easypay/return/{mine.pk}/", fake.return_form(f"{other.pk}-1", authorization_id)
    )
    assert fake.bodies(APPROVAL) == []
    mine.refresh_from_db()
    assert mine.status == "failed"
    assert "refusing to approve" in mine.failure_message


@pytest.mark.django_db
def test_amount_mismatch_is_cancelled_at_once(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks)
    order_no = f"{payment.pk}-1"
    authorization_id = fake.complete_window(order_no, approve_amount=1500)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, authorization_id)
        )
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "amount_mismatch"
    assert "KICC approved 1500 KRW but the payment is 15000 KRW" in payment.failure_message
    assert "cancelled at once" in payment.failure_message
    [(pg_cno, tx)] = fake.transactions.items()
    assert tx["status"] == "TS02"
    assert tx["cancelled"] == 1500
    [revise] = fake.bodies(REVISE)
    assert revise["reviseTypeCode"] == "40"
    assert "amount" not in revise  # a full cancel
    assert revise["msgAuthValue"] == kicc.mac(SECRET_KEY, pg_cno, revise["shopTransactionId"])
    [failed] = [k for n, k in received if n == "payment_failed"]
    assert failed["error_code"] == "amount_mismatch"
    assert failed["pg_tid"] == pg_cno
    assert failed["cancel_type"] == "40"
    assert failed["cancel_amount"] == Decimal(1500)
    assert not [n for n, _ in received if n == "payment_confirmed"]
    # A later sync sees the cancelled approval and never reports it as paid.
    payment = services.sync_payment(payment=payment)
    assert payment.status == "cancelled"


@pytest.mark.django_db
def test_approval_timeout_queries_status_and_cancels(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks)
    order_no = f"{payment.pk}-1"
    authorization_id = fake.complete_window(order_no)
    fake.fail_next(APPROVAL, "timeout", after=True)  # KICC approved, the answer was lost
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, authorization_id)
        )
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "approval_timeout"
    assert "was cancelled at once" in payment.failure_message
    [query] = fake.bodies(RETRIEVE)
    assert query["shopTransactionId"] == f"paydesk:{payment.pk}:attempt-1:confirm"
    [(pg_cno, tx)] = fake.transactions.items()
    assert tx["status"] == "TS02"
    [failed] = [k for n, k in received if n == "payment_failed"]
    assert failed["cancel_type"] == "40"
    assert failed["pg_tid"] == pg_cno


@pytest.mark.django_db
def test_approval_5xx_before_approving_fails_without_charge(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks)
    order_no = f"{payment.pk}-1"
    authorization_id = fake.complete_window(order_no)
    fake.fail_next(APPROVAL, "503")
    client.post(
        f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, authorization_id)
    )
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "approval_timeout"
    assert "nothing was charged" in payment.failure_message
    assert fake.transactions == {}
    assert len(fake.bodies(RETRIEVE)) == 2  # today, then yesterday
    assert fake.bodies(REVISE) == []


@pytest.mark.django_db
def test_approval_and_query_both_unanswered_leave_it_to_sync(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _start(client, received, django_capture_on_commit_callbacks)
    order_no = f"{payment.pk}-1"
    authorization_id = fake.complete_window(order_no)
    fake.fail_next(APPROVAL, "timeout", after=True)
    fake.fail_next(RETRIEVE, "timeout")
    response = client.post(
        f"/paydesk/easypay/return/{payment.pk}/", fake.return_form(order_no, authorization_id)
    )
    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.status == "requires_action"  # outcome unknown: noted, not guessed
    assert payment.ledger.filter(kind="note", message__contains="outcome unknown").exists()
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"  # the approval was found and checked
    assert len(fake.transactions) == 1


# -- refunds (revise) -----------------------------------------------------------------------


def _paid(provider, fake, client, received, capture, amount="15000"):
    with capture(execute=True):
        payment = services.create_payment(amount=amount, currency="KRW", provider=ALIAS)
        payment = services.process_payment(
            payment=payment, payment_method_token="authorization:fake-approve"
        )
    assert payment.status == "completed"
    return payment


@pytest.mark.django_db
def test_partial_then_rest_then_nothing(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _paid(provider, fake, client, received, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.create_refund(payment=payment, amount="5000", reason="one ticket")
    assert first.status == "completed"
    [revise] = fake.bodies(REVISE)
    assert revise["reviseTypeCode"] == "32"
    assert revise["amount"] == 5000
    assert revise["pgCno"] == payment.provider_payment_id
    assert revise["shopTransactionId"] == f"paydesk:{first.pk}:refund"
    assert revise["msgAuthValue"] == msg_auth_value(
        SECRET_KEY, revise["pgCno"], revise["shopTransactionId"]
    )
    assert revise["cancelReqDate"] == dt.datetime.now(wire.KST).strftime("%Y%m%d")
    assert "remainAmount" not in revise  # SEND_REMAIN_AMOUNT is off by default
    [refunded] = [k for n, k in received if n == "payment_refunded"]
    assert refunded["cancel_type"] == "32"
    assert refunded["cancel_amount"] == Decimal(5000)
    assert refunded["pg_tid"] == payment.provider_payment_id
    assert refunded["amount"] == Decimal(5000)

    with django_capture_on_commit_callbacks(execute=True):
        rest = services.create_refund(payment=payment)
    assert rest.status == "completed"
    assert fake.bodies(REVISE)[-1]["reviseTypeCode"] == "32"  # after a partial, still partial
    assert fake.bodies(REVISE)[-1]["amount"] == 10000
    payment.refresh_from_db()
    assert payment.status == "refunded"
    tx = fake.transactions[payment.provider_payment_id]
    assert tx["cancelled"] == 15000
    assert len(tx["revisions"]) == 2


@pytest.mark.django_db
def test_whole_amount_is_a_full_cancel(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _paid(provider, fake, client, received, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.create_refund(payment=payment, reason="event cancelled")
    assert refund.status == "completed"
    [revise] = fake.bodies(REVISE)
    assert revise["reviseTypeCode"] == "40"
    assert "amount" not in revise
    assert revise["reviseMessage"] == "event cancelled"
    assert (
        refund.provider_refund_id
        == fake.transactions[payment.provider_payment_id]["revisions"][0]["cancelPgCno"]
    )
    [refunded] = [k for n, k in received if n == "payment_refunded"]
    assert refunded["cancel_type"] == "40"
    assert refunded["cancel_amount"] == Decimal(15000)


@pytest.mark.django_db
def test_revise_timeout_is_retried_with_the_same_transaction_id(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _paid(provider, fake, client, received, django_capture_on_commit_callbacks)
    fake.fail_next(REVISE, "timeout", after=True)  # KICC cancelled, the answer was lost
    with pytest.raises(ProviderUnavailable):
        services.create_refund(payment=payment, amount="3000")
    refund = payment.refunds.get()
    assert refund.status == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.process_refund(refund=refund)
    assert refund.status == "completed"
    first, second = fake.bodies(REVISE)
    assert first == second  # same shopTransactionId, same body: KICC answers the first result
    tx = fake.transactions[payment.provider_payment_id]
    assert tx["cancelled"] == 3000
    assert len(tx["revisions"]) == 1


@pytest.mark.django_db
def test_refused_cancel_fails_the_refund_with_kicc_code(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    payment = _paid(provider, fake, client, received, django_capture_on_commit_callbacks)
    fake.transactions[payment.provider_payment_id]["cancelled"] = 14000  # cancelled elsewhere
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.create_refund(payment=payment, amount="5000")
    assert refund.status == "failed"
    assert refund.failure_code == "refund_failed"
    assert "F302" in refund.failure_message
    [failed] = [k for n, k in received if n == "refund_failed"]
    assert failed["cancel_type"] == "32"
    assert failed["error_code"] == "refund_failed"


def test_revise_codes_and_remain_amount_are_configurable():
    fake = FakeEasyPay(partial_codes=frozenset({"41"}))
    with override_settings(
        PAYDESK=paydesk_for(fake, REVISE_TYPE_PARTIAL="41", SEND_REMAIN_AMOUNT="true")
    ):
        provider = get_payment_provider(ALIAS)
        paid = provider.create_payment(_request("cfg", token="authorization:fake-approve"))
        result = provider.create_refund(
            RefundRequest(
                refund_id="re_cfg",
                payment_id="pay_ep_cfg",
                provider_payment_id=paid.provider_payment_id,
                amount=Money("4000", "KRW"),
                idempotency_key="paydesk:re_cfg:refund",
                captured=Money("15000", "KRW"),
                already_refunded=Money("1000", "KRW"),
            )
        )
    assert result.status == "failed"  # the fake's books say nothing was refunded before
    assert fake.bodies(REVISE)[-1]["reviseTypeCode"] == "41"
    assert fake.bodies(REVISE)[-1]["remainAmount"] == 10000
    assert result.signal_kwargs["cancel_type"] == "41"


def test_wrong_secret_key_is_refused_by_kicc(fake):
    with override_settings(PAYDESK=paydesk_for(fake, SECRET_KEY="not-the-key")):
        provider = get_payment_provider(ALIAS)
        paid = provider.create_payment(_request("mac", token="authorization:fake-approve"))
        result = provider.create_refund(
            RefundRequest(
                refund_id="re_mac",
                payment_id="pay_ep_mac",
                provider_payment_id=paid.provider_payment_id,
                amount=Money("1000", "KRW"),
                idempotency_key="paydesk:re_mac:refund",
            )
        )
    assert result.status == "failed"
    assert result.failure.provider_code == "F301"


# -- status and async -------------------------------------------------------------------------


def test_status_query_tries_today_then_yesterday(fake):
    now = dt.datetime(2024, 3, 1, 3, 0, tzinfo=dt.UTC)  # 12:00 in Seoul
    fake.clock = lambda: now - dt.timedelta(days=1)  # approved yesterday
    with override_settings(PAYDESK=paydesk_for(fake)):
        options = get_payment_provider(ALIAS).options
        yesterday = EasyPayProvider(alias=ALIAS, options=options, clock=fake.clock)
        paid = yesterday.create_payment(_request("yday", token="authorization:fake-approve"))
        fake.clock = lambda: now
        today = EasyPayProvider(alias=ALIAS, options=options, clock=lambda: now)
        result = today.get_payment_status(
            StatusRequest(
                payment_id="pay_ep_yday",
                provider_payment_id=paid.provider_payment_id,
                idempotency_key="paydesk:pay_ep_yday:attempt-1:create",
                amount=Money("15000", "KRW"),
            )
        )
    assert result.status == ProviderStatus.CAPTURED
    assert [b["transactionDate"] for b in fake.bodies(RETRIEVE)] == ["20240301", "20240229"]


def test_status_of_a_registered_but_unapproved_payment_is_not_found(provider, fake):
    provider.create_payment(_request("open"))
    result = provider.get_payment_status(
        StatusRequest(
            payment_id="pay_ep_open",
            provider_payment_id="",
            idempotency_key="paydesk:pay_ep_open:attempt-1:create",
            amount=Money("15000", "KRW"),
        )
    )
    assert result.status == ProviderStatus.NOT_FOUND


def test_approval_mac_verification_is_optional(fake):
    with override_settings(PAYDESK=paydesk_for(fake, VERIFY_APPROVAL_MAC=True)):
        provider = get_payment_provider(ALIAS)
        ok = provider.create_payment(_request("macok", token="authorization:fake-approve"))
    assert ok.status == ProviderStatus.CAPTURED
    with override_settings(PAYDESK=paydesk_for(fake, VERIFY_APPROVAL_MAC=True, SECRET_KEY="other")):
        provider = get_payment_provider(ALIAS)
        bad = provider.create_payment(_request("macbad", token="authorization:fake-approve"))
    assert bad.status == ProviderStatus.FAILED
    assert bad.failure.code == "approval_mac_mismatch"


def test_async_twins(provider, fake):
    async def run():
        registered = await provider.create_payment_async(_request("async"))
        authorization_id = fake.complete_window("pay_ep_async-1")
        confirmed = await provider.confirm_payment_async(
            ConfirmRequest(
                payment_id="pay_ep_async",
                provider_payment_id="",
                amount=Money("15000", "KRW"),
                idempotency_key="paydesk:pay_ep_async:attempt-1:confirm",
                params=fake.return_form("pay_ep_async-1", authorization_id),
            )
        )
        status = await provider.get_payment_status_async(
            StatusRequest(
                payment_id="pay_ep_async",
                provider_payment_id=confirmed.provider_payment_id,
                idempotency_key="paydesk:pay_ep_async:attempt-1:create",
                amount=Money("15000", "KRW"),
            )
        )
        refund = await provider.create_refund_async(
            RefundRequest(
                refund_id="re_async",
                payment_id="pay_ep_async",
                provider_payment_id=confirmed.provider_payment_id,
                amount=Money("15000", "KRW"),
                idempotency_key="paydesk:re_async:refund",
                captured=Money("15000", "KRW"),
                already_refunded=Money("0", "KRW"),
            )
        )
        return registered, confirmed, status, refund

    registered, confirmed, status, refund = asyncio.run(run())
    assert registered.status == ProviderStatus.REQUIRES_ACTION
    assert confirmed.status == status.status == ProviderStatus.CAPTURED
    assert refund.status == "completed"
    assert fake.bodies(REVISE)[-1]["reviseTypeCode"] == "40"


def test_async_approval_timeout_follows_the_same_rule(provider, fake):
    async def run():
        await provider.create_payment_async(_request("atime"))
        authorization_id = fake.complete_window("pay_ep_atime-1")
        fake.fail_next(APPROVAL, "timeout", after=True)
        return await provider.confirm_payment_async(
            ConfirmRequest(
                payment_id="pay_ep_atime",
                provider_payment_id="",
                amount=Money("15000", "KRW"),
                idempotency_key="paydesk:pay_ep_atime:attempt-1:confirm",
                params=fake.return_form("pay_ep_atime-1", authorization_id),
            )
        )

    result = asyncio.run(run())
    assert result.status == ProviderStatus.FAILED
    assert result.failure.code == "approval_timeout"
    [tx] = fake.transactions.values()
    assert tx["status"] == "TS02"


def test_tokens(provider, fake):
    with pytest.raises(ProviderRequestError, match="not an EasyPay payment method"):
        provider.create_payment(_request("tok", token="pm_card_visa"))
    provider.create_payment(_request("card", token="paymethod:11"))
    assert fake.bodies("/api/ep9/trades/webpay")[-1]["payMethodTypeCode"] == "11"


def test_registry_builds_it_from_settings(fake):
    with override_settings(PAYDESK=paydesk_for(fake)):
        providers.reset()
        assert get_payment_provider(ALIAS).info().backend == (
            "paydesk.providers.easypay.provider.EasyPayProvider"
        )


# -- live (KICC's test environment; skipped without credentials) ------------------------------

LIVE_MALL = os.environ.get("PAYDESK_EASYPAY_TEST_MALL_ID")
LIVE_SECRET = os.environ.get("PAYDESK_EASYPAY_TEST_SECRET_KEY")


@pytest.mark.live
@pytest.mark.skipif(
    not (LIVE_MALL and LIVE_SECRET),
    reason="set PAYDESK_EASYPAY_TEST_MALL_ID and PAYDESK_EASYPAY_TEST_SECRET_KEY to run",
)
def test_live_register_returns_a_window():
    with override_settings(
        PAYDESK=paydesk_for(None, MALL_ID=LIVE_MALL, SECRET_KEY=LIVE_SECRET, MODE="test")
    ):
        result = get_payment_provider(ALIAS).create_payment(
            _request(f"live{os.getpid()}", amount="1000")
        )
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action.redirect_url.startswith("https://")


# -- the core hooks this provider relies on -----------------------------------------------------


@pytest.mark.django_db
def test_refund_signal_kwargs_never_override_paydesk_arguments(
    mock, received, django_capture_on_commit_callbacks
):
    from paydesk.types import RefundResult

    payment = services.create_payment(amount="20.00", currency="USD", provider="mock")
    payment = services.process_payment(payment=payment, payment_method_token="tok_ok")
    mock.set_next_refund_result(
        RefundResult(
            status="completed",
            provider_refund_id="re_mock",
            signal_kwargs={"amount": "bogus", "refund": None, "cancel_type": "40"},
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.create_refund(payment=payment, amount="5.00")
    [refunded] = [k for n, k in received if n == "payment_refunded"]
    assert refunded["amount"] == Decimal("5.00")
    assert refunded["refund"] == refund
    assert refunded["cancel_type"] == "40"
    # The service tells the provider what was captured and refunded before (full vs partial).
    [request] = [r for name, r in mock.calls if name == "create_refund"]
    assert request.captured == Money("20.00", "USD")
    assert request.already_refunded == Money("0.00", "USD")
    mock.set_next_refund_result(RefundResult(status="completed", provider_refund_id="re_2"))
    services.create_refund(payment=payment, amount="3.00")
    second = [r for name, r in mock.calls if name == "create_refund"][-1]
    assert second.already_refunded == Money("5.00", "USD")
