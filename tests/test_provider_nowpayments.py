"""The NOWPayments provider against a fake NOWPayments API (tests/fakes/nowpayments_api.py).

Token convention (see docs/providers/nowpayments.md): ``"invoice"`` -> a hosted invoice
(redirect), ``"<coin>"`` -> a direct payment in that coin, and in sandbox mode
``"<coin>:<case>"`` sends NOWPayments' sandbox ``case``, which the fake applies at once:
``"btc:success"`` is a payment the customer paid (``finished``), ``"btc:failed"`` one that
failed. The contract's success token is therefore ``"btc:success"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from decimal import Decimal

import httpx
import pytest
from django.test import override_settings

from paydesk import services, signals
from paydesk.exceptions import (
    NotSupported,
    ProviderAuthenticationError,
    ProviderRequestError,
    ProviderUnavailable,
    SignatureVerificationError,
)
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.nowpayments import NOTIFIER_IPS, STATUS_MAP, NowPaymentsProvider, wire
from paydesk.security.ipfilter import allowlist_for_provider
from paydesk.types import (
    Capability,
    ConfirmRequest,
    PaymentEvent,
    PaymentRequest,
    ProviderStatus,
    RefundRequest,
    StatusRequest,
)

from .contract import ContractSetup, ProviderContract, WebhookSigner
from .fakes import nowpayments_api as np_fake
from .fakes.nowpayments_api import API_KEY, EMAIL, IPN_SECRET, PASSWORD, FakeNowPayments

ALIAS = "nowpayments"
BASE = "https://shop.example"
NOTIFIER = NOTIFIER_IPS[0]
WEBHOOK_URL = f"/paydesk/webhooks/{ALIAS}/"


def paydesk_for(fake: FakeNowPayments | None, **options: object) -> dict:
    opts: dict[str, object] = {
        "API_KEY": API_KEY,
        "IPN_SECRET": IPN_SECRET,
        "MODE": "sandbox",
        "EMAIL": EMAIL,
        "PASSWORD": PASSWORD,
    }
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
            ALIAS: {"BACKEND": "nowpayments", "OPTIONS": opts},
        },
        "WEBHOOKS": {"PROCESS": "inline"},
    }


@pytest.fixture
def fake() -> FakeNowPayments:
    return FakeNowPayments()


@pytest.fixture
def provider(fake):
    with override_settings(PAYDESK=paydesk_for(fake)):
        yield get_payment_provider(ALIAS)


def _request(
    key: str, token: str = "btc", amount: str = "20.00", attempt: int = 1
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=f"pay_np_{key}",
        amount=Money(amount, "USD"),
        idempotency_key=f"paydesk:pay_np_{key}:attempt-{attempt}:create",
        attempt=attempt,
        payment_method_token=token,
        description="Two tickets",
    )


def _fake_sign(body: bytes, secret: str = IPN_SECRET) -> dict[str, str]:
    payload = json.loads(body, parse_float=Decimal)
    return {"x-nowpayments-sig": np_fake.sign(payload, secret)}


def _success_event(provider_payment_id: str, payment_id: str, amount: Money) -> dict:
    return {
        "payment_id": provider_payment_id,
        "payment_status": "finished",
        "pay_address": "0xd1cDE08A07cD25adEbEd35c3867a59228C09B606",
        "price_amount": str(amount.amount),
        "price_currency": amount.currency.lower(),
        "pay_amount": "0.00032",
        "actually_paid": "0.00032",
        "pay_currency": "btc",
        "order_id": payment_id,
        "order_description": "contract",
        "purchase_id": "6084744717",
        "outcome_amount": "0.0003184",
        "outcome_currency": "btc",
        "created_at": "2021-04-12T14:22:54.942Z",
        "updated_at": "2021-04-12T14:40:06.244Z",
    }


def _payout_event() -> dict:
    return {
        "id": "5000000713",
        "batch_withdrawal_id": "5000000000",
        "status": "FINISHED",
        "error": None,
        "currency": "btc",
        "amount": "0.001",
        "address": "bc1qexample",
        "created_at": "2021-04-12T14:22:54.942Z",
        "updated_at": "2021-04-12T14:40:06.244Z",
    }


class TestNowPaymentsContract(ProviderContract):
    @pytest.fixture
    def contract(self, fake):
        with override_settings(PAYDESK=paydesk_for(fake)):
            yield ContractSetup(
                alias=ALIAS,
                currency="USD",
                success_token="btc:success",  # the fake's sandbox case: paid at once
                decline_token="btc:failed",
                action_token="invoice",  # the hosted invoice page
                signer=WebhookSigner(
                    sign=lambda body, timestamp=None: _fake_sign(body),
                    sign_with_wrong_secret=lambda body: _fake_sign(body, "not-the-secret"),
                    success_event=_success_event,
                    unknown_event=_payout_event,
                    has_timestamp=False,  # NOWPayments signs no timestamp; dedup on event id
                ),
            )


# -- configuration ------------------------------------------------------------------------


def test_registered_as_a_builtin_backend_with_honest_capabilities(provider):
    assert isinstance(provider, NowPaymentsProvider)
    assert provider.capabilities == {
        Capability.WEBHOOKS,
        Capability.SYNC,
        Capability.HOSTED_CHECKOUT,
    }
    assert provider.is_configured
    assert provider.base_url == "https://api-sandbox.nowpayments.io/v1/"


@pytest.mark.parametrize(
    ("options", "base"),
    [
        ({"MODE": "live"}, "https://api.nowpayments.io/v1/"),
        ({"MODE": "sandbox"}, "https://api-sandbox.nowpayments.io/v1/"),
        ({"BASE_URL": "https://np.internal/v1"}, "https://np.internal/v1/"),
    ],
)
def test_base_urls(options, base):
    assert NowPaymentsProvider(alias="np", options={"API_KEY": "k", **options}).base_url == base


def test_bad_mode_is_a_configuration_error():
    from paydesk.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="MODE"):
        NowPaymentsProvider(alias="np", options={"MODE": "production"})


def test_missing_ipn_secret_is_reported_as_a_webhook_secret_problem():
    with override_settings(PAYDESK=paydesk_for(None, IPN_SECRET=None)):
        problems = get_payment_provider(ALIAS).configuration_problems()
    assert any("IPN_SECRET" in p and "WEBHOOK_SECRET" in p for p in problems)


def test_live_mode_hits_the_live_host_and_refuses_sandbox_cases():
    live = FakeNowPayments(host=np_fake.LIVE_HOST)
    with override_settings(PAYDESK=paydesk_for(live, MODE="live")):
        provider = get_payment_provider(ALIAS)
        result = provider.create_payment(_request("live", token="btc"))
        assert result.status == ProviderStatus.REQUIRES_ACTION
        with pytest.raises(ProviderRequestError, match="sandbox case"):
            provider.create_payment(_request("live2", token="btc:success"))
    assert all(r.url.host == "api.nowpayments.io" for r in live.requests)


# -- create ---------------------------------------------------------------------------------


def test_direct_payment_body_is_exact_and_authenticated(provider, fake):
    result = provider.create_payment(_request("body", token="btc", amount="19.99"))
    sent = fake.requests[-1]
    assert sent.method == "POST"
    assert str(sent.url) == "https://api-sandbox.nowpayments.io/v1/payment"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["content-type"] == "application/json"
    assert b'"price_amount":19.99,' in sent.content  # a JSON number, the Decimal's own digits
    body = json.loads(sent.content, parse_float=Decimal)
    assert body["price_amount"] == Decimal("19.99")
    assert body["price_currency"] == "usd"
    assert body["pay_currency"] == "btc"
    assert body["order_id"] == "pay_np_body"
    assert body["ipn_callback_url"] == f"{BASE}/paydesk/webhooks/{ALIAS}/"
    assert "case" not in body
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action is not None
    assert result.next_action.type == "crypto_transfer"
    payment = fake.payments[result.provider_payment_id]
    assert result.raw["pay_address"] == payment["pay_address"]
    assert result.raw["pay_amount"] == "0.00031984"  # 19.99 * 0.000016, exact, a string
    assert all(
        isinstance(result.raw[k], str) for k in ("price_amount", "pay_amount") if result.raw.get(k)
    )


def test_invoice_body_and_redirect(provider, fake):
    result = provider.create_payment(_request("inv", token="invoice"))
    sent = json.loads(fake.requests[-1].content, parse_float=Decimal)
    assert fake.requests[-1].url.path == "/v1/invoice"
    assert sent["success_url"] == f"{BASE}/paydesk/return/pay_np_inv/"
    assert sent["cancel_url"] == f"{BASE}/paydesk/return/pay_np_inv/"
    assert "pay_currency" not in sent  # the customer chooses on the hosted page
    assert result.status == ProviderStatus.REQUIRES_ACTION
    assert result.next_action.type == "redirect"
    assert result.next_action.redirect_url.startswith(
        "https://sandbox.nowpayments.io/payment/?iid="
    )
    assert result.provider_payment_id == ""  # NOWPayments' payment exists once a coin is chosen
    assert result.raw["invoice_id"] in fake.invoices


def test_default_flow_follows_mode_invoice(fake):
    with override_settings(PAYDESK=paydesk_for(fake, MODE_INVOICE="false", PAY_CURRENCY="eth")):
        result = get_payment_provider(ALIAS).create_payment(_request("dflt", token=""))
    assert fake.requests[-1].url.path == "/v1/payment"
    assert fake.payments[result.provider_payment_id]["pay_currency"] == "eth"
    with override_settings(PAYDESK=paydesk_for(fake)):
        result = get_payment_provider(ALIAS).create_payment(_request("dflt2", token=""))
    assert fake.requests[-1].url.path == "/v1/invoice"


def test_direct_payment_without_a_coin_is_refused_before_any_call(fake):
    with (
        override_settings(PAYDESK=paydesk_for(fake, MODE_INVOICE=False)),
        pytest.raises(ProviderRequestError, match="PAY_CURRENCY") as info,
    ):
        get_payment_provider(ALIAS).create_payment(_request("nocoin", token=""))
    assert info.value.provider == ALIAS
    assert fake.requests == []


def test_no_public_base_url_fails_the_payment_with_what_to_set(fake):
    settings = paydesk_for(fake)
    settings["PUBLIC_BASE_URL"] = None
    with (
        override_settings(PAYDESK=settings),
        pytest.raises(ProviderRequestError, match="PUBLIC_BASE_URL"),
    ):
        get_payment_provider(ALIAS).create_payment(_request("nobase"))
    assert fake.requests == []


def test_errors_are_mapped(fake):
    with (
        override_settings(PAYDESK=paydesk_for(fake, API_KEY="wrong")),
        pytest.raises(ProviderAuthenticationError, match="API_KEY") as info,
    ):
        get_payment_provider(ALIAS).create_payment(_request("auth"))
    assert info.value.provider_code == "INVALID_API_KEY"
    with override_settings(PAYDESK=paydesk_for(fake)):
        provider = get_payment_provider(ALIAS)
        with pytest.raises(ProviderRequestError) as small:
            provider.create_payment(_request("small", amount="0.10"))
        assert small.value.provider_code == "AMOUNT_MINIMAL_ERROR"
        fake.fail_next("POST", "/v1/payment", "502")
        with pytest.raises(ProviderUnavailable) as down:
            provider.create_payment(_request("down"))
        assert down.value.retryable


def test_same_key_in_process_is_one_payment_even_after_a_lost_answer(provider, fake):
    fake.fail_next("POST", "/v1/payment", "timeout", after=True)
    with pytest.raises(ProviderUnavailable, match="outcome is unknown"):
        provider.create_payment(_request("lost"))
    assert len(fake.payments_for_order("pay_np_lost")) == 1  # it was created all the same
    status = provider.get_payment_status(
        StatusRequest(
            payment_id="pay_np_lost",
            provider_payment_id="",
            idempotency_key="paydesk:pay_np_lost:attempt-1:create",
            amount=Money("20.00", "USD"),
        )
    )
    assert status.status == ProviderStatus.REQUIRES_ACTION  # found by order_id, still waiting
    assert status.provider_payment_id == str(
        fake.payments_for_order("pay_np_lost")[0]["payment_id"]
    )
    assert any(r.headers.get("authorization", "").startswith("Bearer ") for r in fake.requests)


def test_new_attempt_reuses_a_live_payment_for_the_order(provider, fake):
    first = provider.create_payment(_request("again", attempt=1))
    fresh = NowPaymentsProvider(alias=ALIAS, options=provider.options)  # another process
    second = fresh.create_payment(_request("again", attempt=2))
    assert second.provider_payment_id == first.provider_payment_id
    assert len(fake.payments_for_order("pay_np_again")) == 1
    fake.advance(first.provider_payment_id, "expired")
    third = fresh.create_payment(_request("again", attempt=3))
    assert third.provider_payment_id != first.provider_payment_id
    assert len(fake.payments_for_order("pay_np_again")) == 2


def test_without_list_credentials_a_lost_create_is_not_found(fake):
    with override_settings(PAYDESK=paydesk_for(fake, EMAIL=None, PASSWORD=None)):
        provider = get_payment_provider(ALIAS)
        assert not provider.can_lookup
        status = provider.get_payment_status(
            StatusRequest(
                payment_id="pay_np_x",
                provider_payment_id="",
                idempotency_key="paydesk:pay_np_x:attempt-1:create",
                amount=Money("20.00", "USD"),
            )
        )
    assert status.status == ProviderStatus.NOT_FOUND


# -- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("np_status", "expected"),
    [
        ("waiting", ProviderStatus.REQUIRES_ACTION),
        ("confirming", ProviderStatus.PROCESSING),
        ("confirmed", ProviderStatus.PROCESSING),
        ("sending", ProviderStatus.PROCESSING),
        ("partially_paid", ProviderStatus.PROCESSING),
        ("finished", ProviderStatus.CAPTURED),
        ("failed", ProviderStatus.FAILED),
        ("refunded", ProviderStatus.CANCELLED),
        ("expired", ProviderStatus.CANCELLED),
        ("cancelled", ProviderStatus.CANCELLED),
    ],
)
def test_status_mapping_table(provider, fake, np_status, expected):
    assert STATUS_MAP[np_status] == expected
    created = provider.create_payment(_request(f"map_{np_status}"))
    fake.advance(created.provider_payment_id, np_status, actually_paid="0.0001")
    result = provider.get_payment_status(
        StatusRequest(
            payment_id=f"pay_np_map_{np_status}",
            provider_payment_id=created.provider_payment_id,
            idempotency_key="k",
            amount=Money("20.00", "USD"),
        )
    )
    assert result.status == expected
    if expected == ProviderStatus.CAPTURED:
        assert result.amount_captured == Money("20.00", "USD")
    if expected == ProviderStatus.FAILED:
        assert result.failure.code == "card_declined"
        assert result.failure.provider_code == "failed"
    assert bool(result.note) == (np_status in ("partially_paid", "refunded"))


def test_unknown_status_stays_processing_with_a_note():
    result = wire.result_from_payment({"payment_id": 1, "payment_status": "on_hold"})
    assert result.status == ProviderStatus.PROCESSING
    assert "on_hold" in result.note


def test_crypto_amounts_keep_every_digit():
    body = (
        b'{"payment_id":7,"payment_status":"confirming","pay_amount":0.00000123,'
        b'"actually_paid":1e-7,"outcome_amount":1131.7812095,"price_amount":170}'
    )
    result = wire.result_from_payment(wire.loads(body))
    assert result.raw["pay_amount"] == "0.00000123"
    assert result.raw["actually_paid"] == "1e-7"
    assert result.raw["outcome_amount"] == "1131.7812095"
    assert result.raw["price_amount"] == "170"
    assert wire.decimal(result.raw["actually_paid"]) == Decimal("1E-7")


def test_dumps_never_takes_a_float():
    assert (
        wire.dumps({"a": Decimal("0.10"), "b": [1, True, None]}) == b'{"a":0.10,"b":[1,true,null]}'
    )
    with pytest.raises(TypeError):
        wire.dumps({"a": 0.1})


# -- through the services -------------------------------------------------------------------


def _post_ipn(client, body, headers, ip=NOTIFIER):
    return client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        REMOTE_ADDR=ip,
        **{
            "HTTP_" + k.upper().replace("-", "_"): v
            for k, v in headers.items()
            if k != "Content-Type"
        },
    )


@pytest.fixture
def received():
    calls: list[tuple[str, dict]] = []
    names = [
        "payment_requires_action",
        "payment_registered",
        "payment_confirmed",
        "payment_failed",
        "payment_cancelled",
    ]
    receivers = {}
    for name in names:

        def receiver(sender, _name=name, **kwargs):
            calls.append((_name, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"np-test-{name}")
    yield calls
    for name in names:
        getattr(signals, name).disconnect(dispatch_uid=f"np-test-{name}")


@pytest.mark.django_db
def test_direct_payment_end_to_end_with_ipns(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
        payment = services.process_payment(payment=payment, payment_method_token="btc")
    assert payment.status == "requires_action"
    assert payment.next_action == {"type": "crypto_transfer"}
    [(_name, kwargs)] = [c for c in received if c[0] == "payment_requires_action"]
    assert (
        kwargs["result"].raw["pay_address"]
        == fake.payments[payment.provider_payment_id]["pay_address"]
    )
    assert "payment_registered" not in [n for n, _ in received]  # not a redirect

    fake.advance(payment.provider_payment_id, "confirming")
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_ipn(client, *fake.ipn(payment.provider_payment_id))
    assert response.status_code == 200, response.content
    payment.refresh_from_db()
    assert payment.status == "processing"

    fake.advance(payment.provider_payment_id, "finished")
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_ipn(client, *fake.ipn(payment.provider_payment_id))
        again = _post_ipn(client, *fake.ipn(payment.provider_payment_id))
    assert response.status_code == 200
    assert again.json()["status"] == "duplicate"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("25.00")
    assert [n for n, _ in received].count("payment_confirmed") == 1


@pytest.mark.django_db
def test_invoice_end_to_end_registered_signal_return_and_ipn(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(
            amount="30.00", currency="USD", provider=ALIAS, return_url="/thanks/"
        )
        payment = services.process_payment(payment=payment, payment_method_token="invoice")
    assert payment.status == "requires_action"
    url = payment.next_action["redirect_url"]
    registered = [k for n, k in received if n == "payment_registered"]
    assert len(registered) == 1
    assert registered[0]["redirect_url"] == url
    invoice_id = url.rsplit("=", 1)[1]

    # The customer picks BTC on the hosted page; its first IPN (waiting) changes nothing.
    np_payment = fake.pay_invoice(invoice_id, "btc")
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_ipn(client, *fake.ipn(np_payment["payment_id"]))
    assert response.json()["status"] == "ignored"
    payment.refresh_from_db()
    assert payment.status == "requires_action"

    # Back on the shop: NOWPayments appends NP_id to success_url (unverified; optional).
    fake.advance(np_payment["payment_id"], "confirming")
    with django_capture_on_commit_callbacks(execute=True):
        back = client.get(f"/paydesk/return/{payment.pk}/", {"NP_id": np_payment["payment_id"]})
    assert back.status_code == 302
    assert back["Location"] == "/thanks/"
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert payment.provider_payment_id == str(np_payment["payment_id"])

    fake.advance(np_payment["payment_id"], "finished")
    with django_capture_on_commit_callbacks(execute=True):
        assert _post_ipn(client, *fake.ipn(np_payment["payment_id"])).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "completed"


@pytest.mark.django_db
def test_an_np_id_for_another_order_is_ignored(provider, fake, django_capture_on_commit_callbacks):
    other = provider.create_payment(_request("other"))
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="30.00", currency="USD", provider=ALIAS)
        payment = services.process_payment(payment=payment, payment_method_token="invoice")
    fake.advance(other.provider_payment_id, "finished")
    result = provider.confirm_payment(
        ConfirmRequest(
            payment_id=payment.pk,
            provider_payment_id="",
            amount=payment.money,
            idempotency_key=f"paydesk:{payment.pk}:attempt-1:confirm",
            params={"NP_id": other.provider_payment_id},
        )
    )
    assert result.status != ProviderStatus.CAPTURED


@pytest.mark.django_db
def test_partially_paid_is_visible_in_the_ledger(
    provider, fake, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
        payment = services.process_payment(payment=payment, payment_method_token="btc")
    fake.advance(payment.provider_payment_id, "confirming", actually_paid="0.00010000")
    fake.advance(payment.provider_payment_id, "partially_paid", actually_paid="0.00012345")
    with django_capture_on_commit_callbacks(execute=True):
        assert _post_ipn(client, *fake.ipn(payment.provider_payment_id)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "processing"
    note = payment.ledger.get(kind="note")
    assert (
        "partially paid, 0.00012345 BTC received of 0.0004 BTC asked (price 25 USD)" in note.message
    )
    assert note.provider_data["actually_paid"] == "0.00012345"  # exact, a string
    assert note.provider_data["payment_status"] == "partially_paid"
    # Sync reports the same fact: no second note.
    services.sync_payment(payment=payment)
    assert payment.ledger.filter(kind="note").count() == 1


@pytest.mark.django_db
def test_expired_cancels_and_refunded_cancels_with_a_note(
    provider, fake, client, received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
        payment = services.process_payment(payment=payment, payment_method_token="btc")
    fake.advance(payment.provider_payment_id, "expired")
    with django_capture_on_commit_callbacks(execute=True):
        assert _post_ipn(client, *fake.ipn(payment.provider_payment_id)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    assert "payment_cancelled" in [n for n, _ in received]

    with django_capture_on_commit_callbacks(execute=True):
        second = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
        second = services.process_payment(payment=second, payment_method_token="btc")
    fake.advance(second.provider_payment_id, "partially_paid", actually_paid="0.0001")
    fake.advance(second.provider_payment_id, "refunded", actually_paid="0.0001")
    services.sync_payment(payment=second)
    second.refresh_from_db()
    assert second.status == "cancelled"
    assert second.ledger.filter(kind="note", message__contains="refunded").exists()


@pytest.mark.django_db
def test_failed_fails_with_the_generic_decline_code(
    provider, fake, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
        payment = services.process_payment(payment=payment, payment_method_token="btc:failed")
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"
    assert "NOWPayments marked the crypto payment failed" in payment.failure_message


@pytest.mark.django_db
def test_lost_create_is_settled_by_sync_without_a_second_payment(
    provider, fake, django_capture_on_commit_callbacks
):
    payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
    fake.fail_next("POST", "/v1/payment", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token="btc")
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert payment.provider_payment_id == ""
    fake.fail_next("GET", "/v1/payment/", "503")  # the first sync hits a 5xx: retry later
    with pytest.raises(ProviderUnavailable):
        services.sync_payment(payment=payment)
    payment = services.sync_payment(payment=payment)
    [np_payment] = fake.payments_for_order(payment.pk)
    assert payment.provider_payment_id == str(np_payment["payment_id"])
    fake.advance(np_payment["payment_id"], "finished")
    payment = services.sync_payment(payment=payment)
    assert payment.status == "completed"
    assert len(fake.payments_for_order(payment.pk)) == 1


# -- refunds -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_refunds_are_refused_with_manual_instructions(
    provider, fake, django_capture_on_commit_callbacks
):
    with pytest.raises(NotSupported, match="dashboard") as direct:
        provider.create_refund(
            RefundRequest(
                refund_id="re_1",
                payment_id="pay_1",
                provider_payment_id="1",
                amount=Money("1.00", "USD"),
                idempotency_key="k",
            )
        )
    assert "payout" in direct.value.message
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
        payment = services.process_payment(payment=payment, payment_method_token="btc:success")
    assert payment.status == "completed"
    with pytest.raises(NotSupported) as refused:
        services.create_refund(payment=payment, amount="5.00")
    assert "does not support refunds" in refused.value.message
    assert "NOWPayments support" in refused.value.message
    assert "payout" in refused.value.message
    assert not payment.refunds.exists()


# -- webhooks ---------------------------------------------------------------------------------

VECTOR_BODY = (
    b'{"actually_paid":0,"created_at":"2021-04-12T14:22:54.942Z","order_description":"Apple '
    b'Macbook Pro 2019 x 1","order_id":"2","outcome_amount":1131.7812095,"outcome_currency":'
    b'"trx","pay_address":"0xd1cDE08A07cD25adEbEd35c3867a59228C09B606","pay_amount":155.38559757,'
    b'"pay_currency":"mana","payment_id":5077125051,"payment_status":"waiting","price_amount":170,'
    b'"price_currency":"usd","purchase_id":"6084744717","updated_at":"2021-04-12T14:23:06.244Z"}'
)
VECTOR_SIG = (
    "29111f602032aa7596fba251a6b56ec9cc0788a75506d8348ee31fbedcca63fe"
    "fdac77e6debdc64326568d36418ac4321be9a9f24e0201b3628cb403de84a861"
)


def test_the_providers_md_vector_passes():
    provider = NowPaymentsProvider(alias=ALIAS, options={"IPN_SECRET": "test_ipn_secret"})
    inbound = provider.verify_webhook(VECTOR_BODY, {"x-nowpayments-sig": VECTOR_SIG})
    assert inbound.event_id == "5077125051:waiting:2021-04-12T14:23:06.244Z"
    assert inbound.event_type == "payment.waiting"
    assert provider.parse_webhook(inbound) == []  # waiting: already recorded at creation
    # The fake's own signer agrees with the documented value.
    assert (
        np_fake.sign(json.loads(VECTOR_BODY, parse_float=Decimal), "test_ipn_secret") == VECTOR_SIG
    )
    with pytest.raises(SignatureVerificationError):
        provider.verify_webhook(
            VECTOR_BODY.replace(b"170", b"171"), {"x-nowpayments-sig": VECTOR_SIG}
        )


def test_secret_is_trimmed_and_rotation_accepts_either():
    body = VECTOR_BODY
    assert NowPaymentsProvider(
        alias=ALIAS, options={"IPN_SECRET": " test_ipn_secret\n"}
    ).verify_webhook(body, {"x-nowpayments-sig": VECTOR_SIG})
    rotated = NowPaymentsProvider(alias=ALIAS, options={"IPN_SECRETS": ["new", "test_ipn_secret"]})
    assert rotated.verify_webhook(body, {"X-NOWPAYMENTS-SIG": VECTOR_SIG}).event_id


@pytest.mark.parametrize("form", ["flat", "recursive"])
def test_nested_payloads_verify_in_both_sort_forms(provider, fake, form):
    created = provider.create_payment(_request(f"nest_{form}"))
    fee = {
        "currency": "btc",
        "depositFee": Decimal("0.000001"),
        "withdrawalFee": 0,
        "serviceFee": 0,
    }
    body, headers = fake.ipn(created.provider_payment_id, form=form, fee=fee)
    flat = np_fake.sign(json.loads(body, parse_float=Decimal), form="flat")
    recursive = np_fake.sign(json.loads(body, parse_float=Decimal), form="recursive")
    assert flat != recursive  # nested objects make the two forms differ
    inbound = provider.verify_webhook(body, headers)
    assert inbound.payload["fee"]["depositFee"] == "0.000001"


def test_missing_secret_is_a_configuration_error_not_a_refusal():
    from paydesk.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        NowPaymentsProvider(alias=ALIAS, options={}).verify_webhook(
            VECTOR_BODY, {"x-nowpayments-sig": VECTOR_SIG}
        )


@pytest.mark.django_db
class TestIPNThroughTheEndpoint:
    @pytest.fixture
    def payment(self, provider, fake, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            payment = services.create_payment(amount="25.00", currency="USD", provider=ALIAS)
            payment = services.process_payment(payment=payment, payment_method_token="btc")
        fake.advance(payment.provider_payment_id, "finished")
        return payment

    def test_valid(self, client, fake, payment, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            response = _post_ipn(client, *fake.ipn(payment.provider_payment_id))
        assert response.status_code == 200, response.content
        payment.refresh_from_db()
        assert payment.status == "completed"

    def test_recursive_form_signature(
        self, client, fake, payment, django_capture_on_commit_callbacks
    ):
        body, headers = fake.ipn(
            payment.provider_payment_id, form="recursive", fee={"currency": "btc", "serviceFee": 0}
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert _post_ipn(client, body, headers).status_code == 200
        payment.refresh_from_db()
        assert payment.status == "completed"

    def test_tampered(self, client, fake, payment):
        body, headers = fake.ipn(payment.provider_payment_id)
        forged = body.replace(b'"price_amount":25,', b'"price_amount":2500,')
        assert forged != body
        response = _post_ipn(client, forged, headers)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_signature"
        payment.refresh_from_db()
        assert payment.status == "requires_action"

    def test_wrong_secret(self, client, fake, payment):
        response = _post_ipn(client, *fake.ipn(payment.provider_payment_id, secret="other-secret"))
        assert response.status_code == 400
        payment.refresh_from_db()
        assert payment.status == "requires_action"

    def test_malformed_json_is_refused_and_not_stored(self, client, provider):
        from paydesk.models import WebhookEvent

        body = b'{"payment_id": 1, "payment_status": '
        signature = hmac.new(IPN_SECRET.encode(), body, hashlib.sha512).hexdigest()
        response = _post_ipn(client, body, {"x-nowpayments-sig": signature})
        assert response.status_code == 400
        assert not WebhookEvent.objects.filter(provider=ALIAS).exists()

    def test_default_allowlist_refuses_other_addresses(self, client, fake, payment):
        assert set(allowlist_for_provider(ALIAS).networks) == {
            __import__("ipaddress").ip_network(ip) for ip in NOTIFIER_IPS
        }
        response = _post_ipn(client, *fake.ipn(payment.provider_payment_id), ip="203.0.113.9")
        assert response.status_code == 403
        for ip in NOTIFIER_IPS:
            assert allowlist_for_provider(ALIAS).allows(ip)

    def test_allowlist_is_configurable(
        self, fake, payment, client, django_capture_on_commit_callbacks
    ):
        settings = paydesk_for(fake, WEBHOOK_IP_ALLOWLIST=["203.0.113.0/24"])
        with override_settings(PAYDESK=settings):
            assert (
                _post_ipn(client, *fake.ipn(payment.provider_payment_id), ip=NOTIFIER).status_code
                == 403
            )
            with django_capture_on_commit_callbacks(execute=True):
                ok = _post_ipn(client, *fake.ipn(payment.provider_payment_id), ip="203.0.113.9")
            assert ok.status_code == 200
        with override_settings(PAYDESK=paydesk_for(fake, WEBHOOK_IP_ALLOWLIST=[])):
            assert allowlist_for_provider(ALIAS).allows("198.51.100.1")  # [] allows everyone

    def test_payout_ipn_is_stored_and_ignored(self, client, provider):
        body = json.dumps(_payout_event()).encode()
        response = _post_ipn(client, body, _fake_sign(body))
        assert response.status_code == 200
        assert response.json()["status"] == "ignored"


def test_parse_success_event_uses_order_id_as_paydesk_id(provider):
    body = json.dumps(_success_event("5077125051", "pay_abc", Money("20.00", "USD"))).encode()
    [effect] = provider.parse_webhook(provider.verify_webhook(body, _fake_sign(body)))
    assert isinstance(effect, PaymentEvent)
    assert effect.payment_id == "pay_abc"
    assert effect.provider_payment_id == "5077125051"
    assert effect.result.amount_captured == Money("20.00", "USD")


# -- lookups, async, health ---------------------------------------------------------------------


def test_minimum_amount_and_estimate_are_exact_decimals(provider, fake):
    assert provider.minimum_amount("btc") == Decimal("0.00001234")
    sent = fake.requests[-1]
    assert sent.url.params["currency_from"] == "btc"
    assert sent.url.params["currency_to"] == "btc"
    assert provider.estimate(Money("19.99", "USD"), "btc") == Decimal("0.00031984")
    assert fake.requests[-1].url.params["amount"] == "19.99"
    assert provider.estimate("100", "trx", currency_from="eur") == Decimal("935.00000000")
    with pytest.raises(TypeError):
        provider.estimate(19.99, "btc", currency_from="usd")
    with pytest.raises(ProviderRequestError):
        provider.minimum_amount("nocoin")


def test_async_twins_use_the_async_client(provider, fake):
    async def run():
        created = await provider.create_payment_async(_request("async", token="btc:success"))
        status = await provider.get_payment_status_async(
            StatusRequest(
                payment_id="pay_np_async",
                provider_payment_id=created.provider_payment_id,
                idempotency_key="k",
                amount=Money("20.00", "USD"),
            )
        )
        minimum = await provider.minimum_amount_async("eth")
        estimate = await provider.estimate_async(Money("10.00", "USD"), "eth")
        return created, status, minimum, estimate

    created, status, minimum, estimate = asyncio.run(run())
    assert created.status == status.status == ProviderStatus.CAPTURED
    assert minimum == Decimal("0.0005")
    assert estimate == Decimal("0.003")


def test_health_check(provider, fake):
    health = provider.health_check()
    assert health.ok, health.detail
    assert fake.requests[-1].url.path == "/v1/merchant/coins"
    broken = NowPaymentsProvider(alias=ALIAS, options={**provider.options, "API_KEY": "bad"})
    assert not broken.health_check().ok


def test_unparseable_tokens_are_refused_with_the_alias(provider, fake):
    with pytest.raises(ProviderRequestError) as info:
        provider.create_payment(_request("tok", token="bitcoin cash!"))
    assert info.value.provider == ALIAS
    assert fake.requests == []


# -- live (real sandbox; skipped without credentials) ----------------------------------------

LIVE_KEY = os.environ.get("PAYDESK_NOWPAYMENTS_SANDBOX_API_KEY")


@pytest.mark.live
@pytest.mark.skipif(not LIVE_KEY, reason="set PAYDESK_NOWPAYMENTS_SANDBOX_API_KEY to run")
def test_live_sandbox_minimum_amount_and_estimate():
    provider = NowPaymentsProvider(
        alias=ALIAS,
        options={"API_KEY": LIVE_KEY, "MODE": "sandbox"},
        http_client=httpx.Client(timeout=30),
    )
    assert provider.health_check().ok
    assert provider.minimum_amount("btc") > 0
    assert provider.estimate(Money("100.00", "USD"), "btc") > 0


@pytest.mark.live
@pytest.mark.django_db
@pytest.mark.skipif(not LIVE_KEY, reason="set PAYDESK_NOWPAYMENTS_SANDBOX_API_KEY to run")
def test_live_sandbox_invoice_and_success_case():
    with override_settings(PAYDESK=paydesk_for(None, API_KEY=LIVE_KEY, EMAIL=None, PASSWORD=None)):
        provider = get_payment_provider(ALIAS)
        invoice = provider.create_payment(_request(f"live_{os.getpid()}", token="invoice"))
        assert invoice.next_action.redirect_url.startswith("https://")
        direct = provider.create_payment(_request(f"live2_{os.getpid()}", token="btc:success"))
        assert direct.provider_payment_id
