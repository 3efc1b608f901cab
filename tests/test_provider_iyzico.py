"""The iyzico provider: protocol vectors, the SDK cross-check and the provider contract.

Everything runs against ``tests/fakes/iyzico_api.py`` (an ``httpx.MockTransport`` fake that
checks ``IYZWSv2`` as iyzico does); nothing touches the network. The flows through the
services, the callback view and the webhook pipeline are in ``test_provider_iyzico_flows.py``.

Token convention for the contract (``ContractSetup``):

* ``success_token``: a card stored at (fake) iyzico, ``"<cardUserKey>:<cardToken>"``, for the
  test card 5528790000000008; ``create_payment`` charges it directly (``/payment/auth``) and
  completes without the customer;
* ``decline_token``: a stored card the fake declines with 10005 ``DO_NOT_HONOUR``;
* ``action_token``: ``"iyzico_checkout_form"``, the hosted checkout form (the same as no token):
  ``REQUIRES_ACTION`` with iyzico's ``paymentPageUrl``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import override_settings
from iyzipay.iyzipay_resource import IyzipayResource

from paydesk.exceptions import (
    PaymentDeclined,
    ProviderAuthenticationError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailable,
    SignatureVerificationError,
)
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.iyzico import CHECKOUT_FORM_TOKEN, IyzicoProvider, auth
from paydesk.providers.iyzico.client import Call, Transport, encode_body
from paydesk.providers.iyzico.errors import (
    ResponseMismatchError,
    ResponseSignatureError,
    error_from_failure,
    taxonomy_code,
)
from paydesk.providers.registry import providers
from paydesk.security.signatures import IyzicoWebhookVerifier
from paydesk.types import (
    ConfirmRequest,
    PaymentRequest,
    ProviderStatus,
    RefundRequest,
    StatusRequest,
)

from .contract import ContractSetup, ProviderContract, WebhookSigner
from .fakes.iyzico_api import API_KEY, SECRET_KEY, FakeIyzico, webhook_signature

ALIAS = "iyzico"
BASE = "http://testserver"


def iyzico_options(**extra: Any) -> dict[str, Any]:
    return {"API_KEY": API_KEY, "SECRET_KEY": SECRET_KEY, "MODE": "sandbox", **extra}


def paydesk_config(options: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "DEFAULT_PROVIDER": "sandbox",
        "PUBLIC_BASE_URL": BASE,
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "off"},
            },
            ALIAS: {"BACKEND": "iyzico", "OPTIONS": options or iyzico_options()},
        },
        "WEBHOOKS": {"PROCESS": "inline"},
        **top,
    }


def install(fake: FakeIyzico, **options: Any) -> IyzicoProvider:
    """Build the provider from the current settings' options, talking to ``fake``."""
    configured = providers.config[ALIAS]["OPTIONS"]
    provider = IyzicoProvider(
        alias=ALIAS,
        options={**configured, **options},
        http_client=fake.client(),
        async_http_client=fake.async_client(),
    )
    providers.set_instance(ALIAS, provider)
    return provider


@pytest.fixture
def fake() -> FakeIyzico:
    return FakeIyzico()


@pytest.fixture
def iyzico(fake: FakeIyzico) -> Iterator[IyzicoProvider]:
    with override_settings(PAYDESK=paydesk_config()):
        yield install(fake)


def payment_request(
    key: str = "p1", amount: str = "20.00", currency: str = "TRY", token: str = "", **kw: Any
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=f"pay_{key}",
        amount=Money(amount, currency),
        idempotency_key=f"paydesk:pay_{key}:attempt-1:create",
        payment_method_token=token,
        **kw,
    )


def confirm_request(request: PaymentRequest, token: str) -> ConfirmRequest:
    return ConfirmRequest(
        payment_id=request.payment_id,
        provider_payment_id=token,
        amount=request.amount,
        idempotency_key=f"paydesk:{request.payment_id}:attempt-1:confirm",
        params={"token": token},
    )


# -- IYZWSv2 ----------------------------------------------------------------------------------

VECTORS = json.loads((Path(__file__).parent / "fixtures/iyzico/vectors.json").read_text())
IYZWS = VECTORS["iyzws_v2"]
VECTOR_BODY = IYZWS["body"].encode()
VECTOR_HEADER = IYZWS["authorization"]


def sdk_header(api_key: str, secret: str, random: str, url: str, body: str) -> str:
    """The official SDK's own computation (iyzipay 1.0.46, ``IyzipayResource``)."""
    options = {"api_key": api_key, "secret_key": secret, "base_url": "sandbox-api.iyzipay.com"}
    headers = IyzipayResource().get_http_header_v2(url, options, random, body)
    return str(headers["Authorization"])


def test_iyzws_v2_matches_the_documented_vector() -> None:
    header = auth.authorization_header(
        IYZWS["api_key"], IYZWS["secret_key"], IYZWS["random_key"], IYZWS["path"], VECTOR_BODY
    )
    assert header == VECTOR_HEADER
    decoded = base64.b64decode(header.split(" ", 1)[1]).decode()
    assert decoded.startswith("apiKey:sandbox-apikey&randomKey:123456789&signature:374f1393")


def test_the_sdk_computes_the_same_vector() -> None:
    sdk = sdk_header(
        IYZWS["api_key"], IYZWS["secret_key"], IYZWS["random_key"], IYZWS["path"], IYZWS["body"]
    )
    assert sdk == VECTOR_HEADER


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (
            "/payment/iyzipos/checkoutform/initialize/ecom",
            {"locale": "tr", "price": "20.00", "buyer": {"name": "Şükrü Öztürk"}},
        ),
        ("/payment/iyzipos/checkoutform/initialize/auth/ecom", {"conversationId": "x" * 40}),
        ("/v2/reporting/payment/details?paymentId=22480001", None),
        ("/payment/test", None),
    ],
)
def test_our_header_equals_the_sdks_for_the_same_key_and_body(path: str, payload: Any) -> None:
    body = encode_body(payload) if payload is not None else auth.EMPTY_BODY
    for _ in range(5):
        random = auth.random_key()
        assert len(random) == 8
        assert random.isalnum()
        ours = auth.authorization_header(API_KEY, SECRET_KEY, random, path, body)
        assert ours == sdk_header(API_KEY, SECRET_KEY, random, path, body.decode())


def test_the_request_sent_is_signed_over_its_exact_bytes(fake: FakeIyzico) -> None:
    """Capture what goes on the wire and recompute it with the SDK, from those bytes."""
    seen: list[httpx.Request] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return fake.handler(request)

    transport = Transport(
        alias=ALIAS,
        api_key=API_KEY,
        secret_key=SECRET_KEY,
        base_url="https://x.test",
        timeout=5,
        client=httpx.Client(transport=httpx.MockTransport(spy)),
    )
    answer = transport.send(
        Call("GET", "/v2/reporting/payment/details", None, query={"paymentId": "1"})
    )
    assert answer["status"] == "success"  # the fake accepted the signature
    request = seen[0]
    assert request.url.query == b"paymentId=1"
    assert request.content == b"null"  # what the SDK signs and sends without a body
    expected = sdk_header(
        API_KEY,
        SECRET_KEY,
        request.headers["x-iyzi-rnd"],
        str(request.url.raw_path.decode()),
        request.content.decode(),
    )
    assert request.headers["Authorization"] == expected


def test_the_fake_refuses_a_wrong_secret_like_iyzico(fake: FakeIyzico) -> None:
    transport = Transport(
        alias=ALIAS,
        api_key=API_KEY,
        secret_key="not-the-secret",
        base_url="https://x.test",
        timeout=5,
        client=fake.client(),
    )
    answer = transport.send(Call("POST", "/payment/detail", {"paymentId": "1"}))
    assert answer["status"] == "failure"
    assert answer["errorCode"] == "1000"
    error = error_from_failure(answer, alias=ALIAS, operation="show the payment")
    assert isinstance(error, ProviderAuthenticationError)
    assert error.code == "provider_authentication"
    assert "SECRET_KEY" in error.message


def test_tampered_body_or_random_key_is_refused_by_the_fake(fake: FakeIyzico) -> None:
    transport = Transport(
        alias=ALIAS,
        api_key=API_KEY,
        secret_key=SECRET_KEY,
        base_url="https://x.test",
        timeout=5,
        client=fake.client(),
    )
    request = transport.build(Call("POST", "/payment/detail", {"paymentId": "1"}))
    altered = httpx.Request(
        "POST",
        request.url,
        headers=request.headers,
        content=request.content.replace(b'"1"', b'"2"'),
    )
    assert json.loads(fake.handler(altered).content)["errorCode"] == "1000"
    headers = dict(request.headers)
    headers["x-iyzi-rnd"] = "ZZZZZZZZ"
    other_rnd = httpx.Request("POST", request.url, headers=headers, content=request.content)
    assert json.loads(fake.handler(other_rnd).content)["errorCode"] == "1000"


# -- response signatures -------------------------------------------------------------------


def test_response_signature_vector_and_sdk() -> None:
    vector = VECTORS["response_signature"]
    expected = vector["signature"]
    assert auth.response_signature(vector["secret_key"], vector["params"]) == expected
    sdk = IyzipayResource.calculate_hmac_sha256_signature(vector["params"], vector["secret_key"])
    assert sdk == expected


@pytest.mark.parametrize("text", ["1.0", "20.0", "20.5", "100", "1.05", "10.0"])
def test_strip_zero_is_the_sdks(text: str) -> None:
    assert auth.strip_zero(text) == IyzipayResource.strip_zero(text)


def test_prices_verify_in_every_form_iyzico_writes_them() -> None:
    values = ["SUCCESS", "22480001", "TRY", "pay_1", "pay_1", "20.5", "20", "tok"]
    data = dict(zip(auth.CF_RETRIEVE_FIELDS, values, strict=True))
    data["signature"] = auth.response_signature(SECRET_KEY, values)
    for paid, price in [
        (Decimal("20.50"), Decimal("20.0")),
        ("20.5", "20.00000000"),
        (Decimal("20.5"), 20),
    ]:
        assert auth.response_signature_matches(
            SECRET_KEY, {**data, "paidPrice": paid, "price": price}, auth.CF_RETRIEVE_FIELDS
        )
    assert not auth.response_signature_matches(
        SECRET_KEY, {**data, "paidPrice": Decimal("2.05")}, auth.CF_RETRIEVE_FIELDS
    )
    assert not auth.response_signature_matches("other", data, auth.CF_RETRIEVE_FIELDS)


# -- webhook signatures: the two official vectors ------------------------------------------

OFFICIAL_SECRET = VECTORS["webhooks"]["secret_key"]
HPP_VECTOR = (
    VECTORS["webhooks"]["hosted_page"]["payload"],
    VECTORS["webhooks"]["hosted_page"]["signature"],
)
DIRECT_VECTOR = (
    VECTORS["webhooks"]["direct"]["payload"],
    VECTORS["webhooks"]["direct"]["signature"],
)


@pytest.mark.parametrize(
    ("payload", "signature"), [HPP_VECTOR, DIRECT_VECTOR], ids=["hosted-page", "direct"]
)
def test_official_webhook_vectors_pass_verify_webhook(payload: dict, signature: str) -> None:
    provider = IyzicoProvider(alias=ALIAS, options={"SECRET_KEY": OFFICIAL_SECRET})
    body = json.dumps(payload).encode()
    inbound = provider.verify_webhook(body, {"X-Iyz-Signature-V3": signature})
    assert inbound.event_type == payload["iyziEventType"]
    assert inbound.signature == signature
    assert str(payload["iyziPaymentId"]) in inbound.event_id
    assert inbound.event_id.endswith(":1727000000000")
    # the fake signs the same way
    if "token" in payload:
        parts = ["CHECKOUT_FORM_AUTH", "22483975", payload["token"], "conversationId", "SUCCESS"]
    else:
        parts = ["API_AUTH", "22484059", "conversationId", "SUCCESS"]
    assert webhook_signature(OFFICIAL_SECRET, parts) == signature
    for wrong in ({**payload, "status": "FAILURE"}, {**payload, "paymentConversationId": "x"}):
        with pytest.raises(SignatureVerificationError):
            provider.verify_webhook(json.dumps(wrong).encode(), {"X-Iyz-Signature-V3": signature})


def test_webhook_without_a_secret_key_is_refused_not_crashed() -> None:
    provider = IyzicoProvider(alias=ALIAS, options={})
    body = json.dumps(HPP_VECTOR[0]).encode()
    with pytest.raises(SignatureVerificationError, match="SECRET_KEY"):
        provider.verify_webhook(body, {"X-Iyz-Signature-V3": HPP_VECTOR[1]})


# -- the provider contract ------------------------------------------------------------------


def _sign(body: bytes, timestamp: int | None = None, secret: str = SECRET_KEY) -> dict[str, str]:
    payload = json.loads(body)
    fields = IyzicoWebhookVerifier.signed_fields(payload)
    parts = [str(payload[name]) for name in fields]
    return {"X-Iyz-Signature-V3": webhook_signature(secret, parts)}


class TestIyzicoContract(ProviderContract):
    @pytest.fixture
    def contract(self, fake: FakeIyzico, iyzico: IyzicoProvider) -> ContractSetup:
        def success_event(provider_payment_id: str, payment_id: str, amount: Money) -> dict:
            # iyzico's webhook carries no amount; the server-side retrieve reads it. The fake
            # holds a paid checkout form for this payment (iyzico's ids are its own).
            payment = fake.seed_paid_form(payment_id, str(amount.amount), amount.currency)
            return json.loads(fake.webhook(payment)[0])

        return ContractSetup(
            alias=ALIAS,
            currency="TRY",
            success_token=fake.store_card("5528790000000008"),
            decline_token=fake.store_card("4111111111111111", outcome="declined"),
            action_token=CHECKOUT_FORM_TOKEN,
            signer=WebhookSigner(
                sign=_sign,
                sign_with_wrong_secret=lambda body: _sign(body, secret="wrong-secret"),
                success_event=success_event,
                unknown_event=lambda: {
                    "iyziEventType": "SOMETHING_NEW",
                    "paymentId": 1,
                    "paymentConversationId": "pay_x",
                    "status": "SUCCESS",
                    "iyziEventTime": 1,
                },
                has_timestamp=False,  # iyziEventTime is not signed; dedup guards replays
                tamper=lambda body: body.replace(b'"SUCCESS"', b'"FAILURE"'),
            ),
        )


# -- create: checkout form ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/payment/iyzipos/checkoutform/initialize/ecom",
        "/payment/iyzipos/checkoutform/initialize/auth/ecom",
    ],
)
def test_checkout_form_initialize_on_either_documented_path(fake: FakeIyzico, path: str) -> None:
    with override_settings(PAYDESK=paydesk_config(iyzico_options(CF_INITIALIZE_PATH=path))):
        provider = install(fake)
        request = payment_request(description="Order 42")
        result = provider.create_payment(request)
    assert result.status == ProviderStatus.REQUIRES_ACTION
    token = result.provider_payment_id
    assert result.next_action is not None
    assert result.next_action.redirect_url.startswith("https://sandbox-cpp.iyzipay.com?token=")
    sent = fake.calls[-1]
    assert sent["path"] == path
    body = sent["body"]
    assert body["conversationId"] == body["basketId"] == "pay_p1"
    assert body["price"] == body["paidPrice"] == "20.00"  # ISO decimals, as strings
    assert body["currency"] == "TRY"
    assert body["callbackUrl"] == f"{BASE}/paydesk/iyzico/callback/{ALIAS}/pay_p1/"
    assert sum(Decimal(i["price"]) for i in body["basketItems"]) == Decimal("20.00")
    assert body["basketItems"][0]["name"] == "Order 42"
    assert "enabledInstallments" not in body
    assert result.raw["initializePath"] == path
    assert result.raw["token"] == token


def test_installments_and_locale_are_sent(fake: FakeIyzico) -> None:
    options = iyzico_options(ENABLED_INSTALLMENTS="1,3,6", LOCALE="en")
    with override_settings(PAYDESK=paydesk_config(options)):
        install(fake).create_payment(payment_request())
    body = fake.calls[-1]["body"]
    assert body["enabledInstallments"] == ["1", "3", "6"]
    assert body["locale"] == "en"


def test_bad_options_are_refused_when_built_but_missing_credentials_are_not() -> None:
    provider = IyzicoProvider(alias=ALIAS, options={})
    problems = provider.configuration_problems()
    assert "OPTIONS['API_KEY'] is not set" in problems
    assert "OPTIONS['SECRET_KEY'] is not set" in problems
    with pytest.raises(ProviderAuthenticationError, match="API_KEY"):
        provider.create_payment(payment_request())
    for bad in (
        {"MODE": "production"},
        {"REFUND_MODE": "items"},
        {"LOCALE": "de"},
        {"ENABLED_INSTALLMENTS": [4]},
        {"CF_INITIALIZE_PATH": "payment/x"},
    ):
        with pytest.raises(ValueError, match="OPTIONS"):
            IyzicoProvider(alias=ALIAS, options=bad)


def test_mode_and_base_url() -> None:
    assert IyzicoProvider(alias=ALIAS).base_url == "https://sandbox-api.iyzipay.com"
    assert IyzicoProvider(alias=ALIAS, options={"MODE": "live"}).base_url == (
        "https://api.iyzipay.com"
    )
    assert IyzicoProvider(alias=ALIAS, options={"BASE_URL": "https://proxy.test/"}).base_url == (
        "https://proxy.test"
    )


def test_the_registry_builds_it_by_short_name() -> None:
    with override_settings(PAYDESK=paydesk_config()):
        provider = get_payment_provider(ALIAS)
    assert isinstance(provider, IyzicoProvider)
    assert provider.supports_currency("TRY")
    assert provider.supports_currency("chf")
    assert not provider.supports_currency("JPY")
    info = provider.info()
    assert info.display_name == "iyzico"
    assert info.webhook_signature_header == "X-Iyz-Signature-V3"
    assert info.webhook_signature_algorithm == "HMAC-SHA256"


def test_callback_url_needs_an_absolute_base(fake: FakeIyzico) -> None:
    config = paydesk_config()
    del config["PUBLIC_BASE_URL"]
    with override_settings(PAYDESK=config):
        provider = install(fake)
        assert any("PUBLIC_BASE_URL" in p for p in provider.configuration_problems())
        with pytest.raises(ProviderRequestError, match="PUBLIC_BASE_URL"):
            provider.create_payment(payment_request())
        provider = install(fake, CALLBACK_BASE_URL="https://shop.example")
        provider.create_payment(payment_request())
    assert fake.calls[-1]["body"]["callbackUrl"].startswith("https://shop.example/paydesk/")


def hook_two_items(request: PaymentRequest) -> dict[str, Any]:
    return {
        "buyer": {"id": "user-7", "identityNumber": "74300864791", "city": "Ankara"},
        "basketItems": [
            {
                "id": "book",
                "name": "Book",
                "category1": "Books",
                "itemType": "PHYSICAL",
                "price": "12.00",
            },
            {
                "id": "ebook",
                "name": "E-book",
                "category1": "Books",
                "itemType": "VIRTUAL",
                "price": Money("8.00", request.amount.currency),
            },
        ],
    }


def hook_wrong_sum(request: PaymentRequest) -> dict[str, Any]:
    return {
        "basketItems": [
            {"id": "a", "name": "A", "category1": "c", "itemType": "VIRTUAL", "price": "19.99"}
        ]
    }


def test_buyer_data_hook_gives_the_basket(fake: FakeIyzico) -> None:
    options = iyzico_options(BUYER_DATA_HOOK=f"{__name__}.hook_two_items")
    with override_settings(PAYDESK=paydesk_config(options)):
        install(fake).create_payment(payment_request())
    body = fake.calls[-1]["body"]
    assert [i["price"] for i in body["basketItems"]] == ["12.00", "8.00"]
    assert body["buyer"]["id"] == "user-7"
    assert body["buyer"]["city"] == "Ankara"
    assert body["buyer"]["email"]  # defaults still fill what the hook left out
    assert body["shippingAddress"]  # a PHYSICAL item needs one: the billing address is used


def test_a_basket_that_does_not_add_up_is_refused_before_iyzico(fake: FakeIyzico) -> None:
    options = iyzico_options(BUYER_DATA_HOOK=f"{__name__}.hook_wrong_sum")
    with (
        override_settings(PAYDESK=paydesk_config(options)),
        pytest.raises(ProviderRequestError, match=r"add up to 19\.99"),
    ):
        install(fake).create_payment(payment_request())
    assert fake.calls == []


def test_initialize_answer_with_a_bad_signature_is_not_trusted(fake: FakeIyzico) -> None:
    def forge(request: httpx.Request) -> httpx.Response:
        response = fake.handler(request)
        data = json.loads(response.content)
        data["token"] = "attacker-token"
        return httpx.Response(200, json=data)

    with override_settings(PAYDESK=paydesk_config()):
        provider = IyzicoProvider(
            alias=ALIAS,
            options=iyzico_options(),
            http_client=httpx.Client(transport=httpx.MockTransport(forge)),
        )
        with pytest.raises(ResponseSignatureError) as caught:
            provider.create_payment(payment_request())
    assert caught.value.retryable
    assert isinstance(caught.value, SignatureVerificationError)


# -- confirm: fraudStatus and failures -----------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status", "code", "provider_code"),
    [
        ("success", ProviderStatus.CAPTURED, None, None),
        ("review", ProviderStatus.PROCESSING, None, None),
        ("rejected", ProviderStatus.FAILED, "card_declined", "fraudStatus:-1"),
        ("fraud", ProviderStatus.FAILED, "card_declined", "6000"),
        ("blacklist", ProviderStatus.FAILED, "card_declined", "6001"),
        ("insufficient", ProviderStatus.FAILED, "insufficient_funds", "10051"),
        ("declined", ProviderStatus.FAILED, "card_declined", "10005"),
    ],
)
def test_checkout_form_outcomes(
    iyzico: IyzicoProvider,
    fake: FakeIyzico,
    outcome: str,
    status: ProviderStatus,
    code: str | None,
    provider_code: str | None,
) -> None:
    request = payment_request()
    token = iyzico.create_payment(request).provider_payment_id
    unfinished = iyzico.confirm_payment(confirm_request(request, token))
    assert unfinished.status == ProviderStatus.NOT_FOUND  # nothing to record yet
    payment_id = fake.pay(token, outcome)
    result = iyzico.confirm_payment(confirm_request(request, token))
    assert result.status == status
    assert result.provider_payment_id == token  # stable for the ledger, whatever happens
    assert result.raw["paymentId"] == payment_id
    if status == ProviderStatus.CAPTURED:
        assert result.amount_captured == Money("20.00", "TRY")
        assert [i["paymentTransactionId"] for i in result.raw["itemTransactions"]] == [
            item.transaction_id for item in fake.payments[payment_id].items
        ]
    if status == ProviderStatus.PROCESSING:
        assert "fraud review" in result.raw["note"]
    if code:
        assert result.failure is not None
        assert result.failure.code == code
        assert result.failure.provider_code == provider_code
    json.dumps(result.raw)  # the ledger stores it as JSON: no Decimal left


def test_installment_fee_is_captured_as_paid_price(iyzico: IyzicoProvider, fake: FakeIyzico):
    request = payment_request()
    token = iyzico.create_payment(request).provider_payment_id
    fake.pay(token, "success", installment_fee="1.50")
    result = iyzico.confirm_payment(confirm_request(request, token))
    assert result.amount_captured == Money("21.50", "TRY")


def tamper_retrieve(fake: FakeIyzico, change: dict[str, Any]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        response = fake.handler(request)
        if request.url.path.endswith("/checkoutform/auth/ecom/detail"):
            data = json.loads(response.content)
            if "paymentStatus" in data:
                data.update(change)
            return httpx.Response(200, content=json.dumps(data).encode())
        return response

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("outcome", "change"),
    [
        ("success", {"paidPrice": 2.0}),
        ("insufficient", {"paymentStatus": "SUCCESS", "fraudStatus": 1}),
        ("success", {"basketId": "pay_other"}),
        ("success", {"paymentId": "1"}),
        ("success", {"signature": "00" * 32}),
        ("success", {"signature": None}),
    ],
)
def test_a_tampered_retrieve_answer_completes_nothing(
    fake: FakeIyzico, outcome: str, change: dict
) -> None:
    # (fraudStatus is not among the fields iyzico signs, so flipping it alone cannot be
    # detected here; TLS protects it. docs/providers/iyzico.md says so.)
    with override_settings(PAYDESK=paydesk_config()):
        provider = IyzicoProvider(
            alias=ALIAS, options=iyzico_options(), http_client=tamper_retrieve(fake, change)
        )
        request = payment_request()
        token = provider.create_payment(request).provider_payment_id
        fake.pay(token, outcome)
        with pytest.raises(ResponseSignatureError) as caught:
            provider.confirm_payment(confirm_request(request, token))
    assert caught.value.retryable  # outcome unknown: recorded as a note, not a failure


def test_a_signed_answer_for_another_amount_is_refused(iyzico: IyzicoProvider, fake: FakeIyzico):
    request = payment_request()
    token = iyzico.create_payment(request).provider_payment_id
    fake.pay(token, "success")
    other = ConfirmRequest(
        payment_id=request.payment_id,
        provider_payment_id=token,
        amount=Money("25.00", "TRY"),
        idempotency_key="k",
    )
    with pytest.raises(ResponseMismatchError, match=r"price is 20\.00 TRY, not 25\.00 TRY"):
        iyzico.confirm_payment(other)


def test_status_reads_payment_detail_by_conversation_id(iyzico: IyzicoProvider, fake: FakeIyzico):
    request = payment_request()
    token = iyzico.create_payment(request).provider_payment_id
    status = StatusRequest(
        payment_id=request.payment_id,
        provider_payment_id=token,
        idempotency_key=request.idempotency_key,
        amount=request.amount,
    )
    assert iyzico.get_payment_status(status).status == ProviderStatus.NOT_FOUND
    payment_id = fake.pay(token, "review")
    assert iyzico.get_payment_status(status).status == ProviderStatus.PROCESSING
    fake.approve(payment_id)
    result = iyzico.get_payment_status(status)
    assert result.status == ProviderStatus.CAPTURED
    assert result.provider_payment_id == token
    detail = [c for c in fake.calls if c["path"] == "/payment/detail"][-1]["body"]
    assert detail["paymentConversationId"] == "pay_p1"


# -- stored cards ----------------------------------------------------------------------------


def test_stored_card_charge_is_not_repeated(iyzico: IyzicoProvider, fake: FakeIyzico) -> None:
    request = payment_request(token=fake.store_card())
    first = iyzico.create_payment(request)
    second = iyzico.create_payment(request)
    assert first.status == second.status == ProviderStatus.CAPTURED
    assert first.provider_payment_id == second.provider_payment_id
    assert fake.paths().count("/payment/auth") == 1
    assert len(fake.payments) == 1
    body = next(c for c in fake.calls if c["path"] == "/payment/auth")["body"]
    assert body["paymentCard"]["cardUserKey"]
    assert body["installment"] == 1


def test_declined_stored_card(iyzico: IyzicoProvider, fake: FakeIyzico) -> None:
    result = iyzico.create_payment(payment_request(token=fake.store_card(outcome="insufficient")))
    assert result.status == ProviderStatus.FAILED
    assert result.failure is not None
    assert result.failure.code == "insufficient_funds"
    fraud = iyzico.create_payment(payment_request("p2", token=fake.store_card(outcome="fraud")))
    assert fraud.failure is not None
    assert (fraud.failure.code, fraud.failure.provider_code) == ("card_declined", "6000")


# -- transport failures ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["timeout", "connect", "500", "503", "429"])
def test_transport_failures_are_retryable(iyzico: IyzicoProvider, fake: FakeIyzico, kind: str):
    fake.fail("/payment/iyzipos/checkoutform/initialize/ecom", kind)
    with pytest.raises(ProviderUnavailable) as caught:
        iyzico.create_payment(payment_request())
    assert caught.value.retryable
    assert caught.value.provider == ALIAS
    assert caught.value.code == ("rate_limited" if kind == "429" else "provider_unavailable")


def test_http_401_is_a_credentials_error(fake: FakeIyzico, iyzico: IyzicoProvider) -> None:
    fake.fail("/payment/iyzipos/checkoutform/initialize/ecom", "401")
    with pytest.raises(ProviderAuthenticationError):
        iyzico.create_payment(payment_request())


def test_wrong_credentials_through_the_provider(fake: FakeIyzico) -> None:
    with override_settings(PAYDESK=paydesk_config(iyzico_options(API_KEY="someone-else"))):
        provider = install(fake)
        with pytest.raises(ProviderAuthenticationError) as caught:
            provider.create_payment(payment_request())
        assert caught.value.provider_code == "1001"
        health = provider.health_check()
    assert not health.ok
    assert "API_KEY" in health.detail


def test_reading_an_outcome_with_bad_credentials_leaves_it_unknown(fake: FakeIyzico) -> None:
    with override_settings(PAYDESK=paydesk_config()):
        good = install(fake)
        request = payment_request()
        token = good.create_payment(request).provider_payment_id
        fake.pay(token)
        bad = install(fake, SECRET_KEY="rotated-badly")
        with pytest.raises(ProviderAuthenticationError) as caught:
            bad.confirm_payment(confirm_request(request, token))
    assert caught.value.retryable  # the customer may have paid: do not fail the payment


def test_health_check(iyzico: IyzicoProvider, fake: FakeIyzico) -> None:
    health = iyzico.health_check()
    assert health.ok, health.detail
    assert fake.calls[-1]["path"] == "/payment/test"
    assert fake.calls[-1]["method"] == "GET"
    fake.fail("/payment/test", "503")
    assert not iyzico.health_check().ok


@pytest.mark.parametrize(
    ("code", "group", "expected"),
    [
        ("1", None, "provider_unavailable"),
        ("1000", None, "provider_authentication"),
        ("1001", None, "provider_authentication"),
        ("6000", None, "card_declined"),
        ("6001", None, "card_declined"),
        ("10051", "NOT_SUFFICIENT_FUNDS", "insufficient_funds"),
        ("10054", "EXPIRED_CARD", "expired_card"),
        ("10084", "INVALID_CVC2", "incorrect_cvc"),
        ("10043", "STOLEN_CARD", "stolen_card"),
        ("10005", "DO_NOT_HONOUR", "card_declined"),
        ("10999", None, "card_declined"),
        ("10217", None, "authentication_required"),
        ("12", None, "invalid_request"),
        ("5", None, "invalid_request"),
    ],
)
def test_error_taxonomy(code: str, group: str | None, expected: str) -> None:
    assert taxonomy_code(code, group) == expected
    error = error_from_failure(
        {"errorCode": code, "errorGroup": group, "errorMessage": "m"},
        alias=ALIAS,
        operation="do it",
    )
    assert error.code == expected
    assert error.provider_code == code
    assert error.provider == ALIAS
    assert error.retryable == (expected == "provider_unavailable")
    if expected in ("card_declined", "insufficient_funds"):
        assert isinstance(error, PaymentDeclined)


def test_refund_of_an_unpaid_checkout_form_is_refused(iyzico: IyzicoProvider) -> None:
    request = payment_request()
    token = iyzico.create_payment(request).provider_payment_id
    with pytest.raises(ProviderError, match="nothing to refund"):
        iyzico.create_refund(
            RefundRequest(
                refund_id="r",
                payment_id=request.payment_id,
                provider_payment_id=token,
                amount=Money("1.00", "TRY"),
                idempotency_key="paydesk:r:refund",
            )
        )
