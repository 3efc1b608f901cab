"""PayPal webhooks: real RSA signatures over test certificates, event mapping, the pipeline.

The signing certificate is a leaf issued to ``messageverificationcerts.sandbox.paypal.com`` by
a test root CA that the provider is told to trust (``WEBHOOK_TRUSTED_ROOTS``); the fake PayPal
serves it at a PayPal certificate URL, fetched through the provider's own ``httpx`` client.
"""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import ProviderUnavailable, SignatureVerificationError, WebhookError
from paydesk.models import Payment, Refund, TransactionLog, WebhookEvent
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.providers.paypal import PayPalProvider
from paydesk.providers.paypal.webhooks import HANDLED_EVENTS
from paydesk.states import LedgerKind
from paydesk.types import InboundWebhook, PaymentEvent, ProviderStatus, RefundEvent

from .fakes.paypal_api import (
    CERT_PATH,
    REDIRECT,
    VAULT_APPROVED,
    FakePayPal,
    PayPalWebhookKit,
    load_fixture,
    paydesk_settings,
    provider_options,
)

URL = "/paydesk/webhooks/paypal/"


@pytest.fixture
def fake() -> FakePayPal:
    return FakePayPal()


@pytest.fixture
def kit(fake: FakePayPal) -> PayPalWebhookKit:
    return PayPalWebhookKit(fake=fake)


def make(fake: FakePayPal, kit: PayPalWebhookKit, **options) -> PayPalProvider:
    return PayPalProvider(alias="paypal", options=provider_options(fake, kit, **options))


def body_of(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def capture_completed(kit: PayPalWebhookKit, **overrides) -> bytes:
    fields = {"order_id": "5O190127TN364715T", "payment_id": "pay_1", "value": "20.00"}
    fields.update(overrides)
    return body_of(kit.capture_event("PAYMENT.CAPTURE.COMPLETED", currency="USD", **fields))


# -- verification -----------------------------------------------------------------------------


def test_a_genuine_delivery_is_accepted_and_the_certificate_cached(
    fake: FakePayPal, kit: PayPalWebhookKit
) -> None:
    provider = make(fake, kit)
    for _ in range(3):
        body = capture_completed(kit)
        inbound = provider.verify_webhook(body, kit.sign(body))
        assert inbound.event_type == "PAYMENT.CAPTURE.COMPLETED"
        assert inbound.event_id.startswith("WH-")
        assert inbound.signature
    assert len(fake.calls("GET", CERT_PATH)) == 1  # fetched once, then cached
    assert fake.calls("GET", CERT_PATH)[0].headers.get("authorization") is None


def test_headers_are_matched_in_any_case(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    body = capture_completed(kit)
    headers = {key.lower(): value for key, value in kit.sign(body).items()}
    make(fake, kit).verify_webhook(body, headers)
    meta = {"HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()}
    make(fake, kit).verify_webhook(body, meta)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chain": "untrusted"}, "does not chain to a trusted root"),
        ({"chain": "expired"}, "expired"),
        ({"chain": "foreign"}, "not issued to a PayPal host"),
        ({"webhook_id": "WH-SOMEONE-ELSE"}, "does not match"),
        ({"cert_url": "https://evil.example.com/v1/notifications/certs/CERT-1"}, "not at a host"),
        ({"cert_url": "https://api.sandbox.paypal.com.evil.example/cert"}, "not at a host"),
        ({"cert_url": "http://api.sandbox.paypal.com" + CERT_PATH}, "not an https URL"),
        ({"algorithm": "MD5withRSA"}, "not supported"),
    ],
)
def test_refused_deliveries(fake: FakePayPal, kit: PayPalWebhookKit, change, message) -> None:
    body = capture_completed(kit)
    with pytest.raises(SignatureVerificationError, match=message):
        make(fake, kit).verify_webhook(body, kit.sign(body, **change))
    # A certificate URL off PayPal's hosts is never fetched.
    assert not [c for c in fake.requests if "evil" in c.path or "CERT-1" in c.path]


def test_a_tampered_body_is_refused(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    body = capture_completed(kit)
    headers = kit.sign(body)
    with pytest.raises(SignatureVerificationError, match="does not match"):
        make(fake, kit).verify_webhook(body.replace(b'"20.00"', b'"2000.00"'), headers)
    with pytest.raises(SignatureVerificationError, match="does not match"):
        make(fake, kit).verify_webhook(body + b" ", headers)


def test_missing_headers_are_refused(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    body = capture_completed(kit)
    headers = kit.sign(body)
    for name in list(headers):
        if name.startswith("PAYPAL-"):
            partial = {k: v for k, v in headers.items() if k != name}
            with pytest.raises(SignatureVerificationError, match=name):
                make(fake, kit).verify_webhook(body, partial)


def test_stale_and_future_transmissions_are_refused(
    fake: FakePayPal, kit: PayPalWebhookKit
) -> None:
    provider = make(fake, kit)
    body = capture_completed(kit)
    with pytest.raises(SignatureVerificationError, match="beyond the 300 s tolerance"):
        provider.verify_webhook(body, kit.sign(body, timestamp=time.time() - 301 - 5))
    with pytest.raises(SignatureVerificationError, match="in the future"):
        provider.verify_webhook(body, kit.sign(body, timestamp=time.time() + 400))
    provider.verify_webhook(body, kit.sign(body, timestamp=time.time() - 250))
    lenient = make(fake, kit, WEBHOOK_TOLERANCE=3600)
    lenient.verify_webhook(body, kit.sign(body, timestamp=time.time() - 1800))
    off = make(fake, kit, WEBHOOK_TOLERANCE=None)
    off.verify_webhook(body, kit.sign(body, timestamp=time.time() - 86400))


def test_the_transmission_time_is_signed(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    body = capture_completed(kit)
    headers = kit.sign(body, timestamp=time.time() - 3600)
    fresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with pytest.raises(SignatureVerificationError, match="does not match"):
        make(fake, kit).verify_webhook(body, {**headers, "PAYPAL-TRANSMISSION-TIME": fresh})


def test_without_a_webhook_id_nothing_verifies(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    provider = make(fake, kit, WEBHOOK_ID=None)
    body = capture_completed(kit)
    with pytest.raises(SignatureVerificationError, match=r"OPTIONS\['WEBHOOK_ID'\] is not set"):
        provider.verify_webhook(body, kit.sign(body))


def test_webhook_id_rotation(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    provider = make(fake, kit, WEBHOOK_ID=["OLD-WEBHOOK-ID", kit.webhook_id])
    body = capture_completed(kit)
    provider.verify_webhook(body, kit.sign(body))
    provider.verify_webhook(body, kit.sign(body, webhook_id="OLD-WEBHOOK-ID"))


def test_trusted_roots_from_a_pem_file(fake: FakePayPal, kit: PayPalWebhookKit, tmp_path) -> None:
    path = tmp_path / "roots.pem"
    path.write_text(kit.root_pem)
    provider = make(fake, kit, WEBHOOK_TRUSTED_ROOTS=str(path))
    body = capture_completed(kit)
    provider.verify_webhook(body, kit.sign(body))


def test_default_roots_do_not_trust_the_test_ca(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    provider = make(fake, kit, WEBHOOK_TRUSTED_ROOTS=None)  # certifi's bundle
    body = capture_completed(kit)
    with pytest.raises(SignatureVerificationError, match="trusted root"):
        provider.verify_webhook(body, kit.sign(body))


def test_cert_hosts_can_be_configured_for_tests(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    url = "https://certs.paydesk.test" + CERT_PATH
    body = capture_completed(kit)
    with pytest.raises(SignatureVerificationError, match="not at a host"):
        make(fake, kit).verify_webhook(body, kit.sign(body, cert_url=url))
    provider = make(fake, kit, WEBHOOK_CERT_HOSTS="certs.paydesk.test, .paypal.com")
    provider.verify_webhook(body, kit.sign(body, cert_url=url))


def test_online_verification(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    provider = make(fake, kit, WEBHOOK_VERIFICATION="online")
    body = capture_completed(kit)
    inbound = provider.verify_webhook(body, kit.sign(body))
    assert inbound.event_type == "PAYMENT.CAPTURE.COMPLETED"
    [call] = fake.calls("POST", "/v1/notifications/verify-webhook-signature")
    assert call.body["webhook_id"] == kit.webhook_id
    assert call.body["webhook_event"] == json.loads(body)
    assert call.body["auth_algo"] == "SHA256withRSA"
    assert fake.calls("GET", CERT_PATH) == []  # PayPal checks the certificate, not paydesk
    with pytest.raises(SignatureVerificationError, match="FAILURE"):
        provider.verify_webhook(body, kit.sign(body, webhook_id="WRONG"))
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        provider.verify_webhook(body, kit.sign(body, timestamp=time.time() - 900))
    fake.inject("503", path="verify-webhook-signature")
    broken = make(fake, kit, WEBHOOK_VERIFICATION="online", MAX_RETRIES=0)
    with pytest.raises(SignatureVerificationError, match="PayPal will send it again"):
        broken.verify_webhook(body, kit.sign(body))


def test_an_authentic_body_that_is_not_json_is_flagged(
    fake: FakePayPal, kit: PayPalWebhookKit
) -> None:
    inbound = make(fake, kit).verify_webhook(b"not json", kit.sign(b"not json"))
    assert inbound.payload is None
    assert inbound.error
    assert inbound.event_id.startswith("malformed:")


# -- parsing ----------------------------------------------------------------------------------


def inbound(event: dict) -> InboundWebhook:
    return InboundWebhook(event_id=event["id"], event_type=event["event_type"], payload=event)


def test_the_documented_capture_event_maps_to_a_capture(fake, kit) -> None:
    event = load_fixture("event_capture_completed.json")
    [effect] = make(fake, kit).parse_webhook(inbound(event))
    assert isinstance(effect, PaymentEvent)
    assert effect.payment_id == "pay_fixture"
    assert effect.provider_payment_id == "5O190127TN364715T"
    assert effect.result.status == ProviderStatus.CAPTURED
    assert effect.result.amount_captured == Money("20.00", "USD")


@pytest.mark.parametrize(
    ("event_type", "status", "failure"),
    [
        ("PAYMENT.CAPTURE.COMPLETED", ProviderStatus.CAPTURED, None),
        ("PAYMENT.CAPTURE.PENDING", ProviderStatus.PROCESSING, None),
        ("PAYMENT.CAPTURE.DENIED", ProviderStatus.FAILED, "card_declined"),
        ("PAYMENT.CAPTURE.DECLINED", ProviderStatus.FAILED, "card_declined"),
    ],
)
def test_capture_events(fake, kit, event_type, status, failure) -> None:
    event = kit.capture_event(event_type, order_id="ORD1", value="500", currency="JPY")
    [effect] = make(fake, kit).parse_webhook(inbound(event))
    assert effect.result.status == status
    assert effect.provider_payment_id == "ORD1"
    assert effect.payment_id == ""  # an authorization's capture carries no custom_id
    assert (effect.result.failure.code if effect.result.failure else None) == failure
    if status == ProviderStatus.CAPTURED:
        assert effect.result.amount_captured == Money("500", "JPY")


def test_authorization_events(fake, kit) -> None:
    resource = load_fixture("authorization.json")
    [created] = make(fake, kit).parse_webhook(
        inbound(kit.event("PAYMENT.AUTHORIZATION.CREATED", resource))
    )
    assert created.result.status == ProviderStatus.AUTHORIZED
    assert created.result.amount_authorized == Money("20.00", "USD")
    assert created.payment_id == "pay_fixture"
    resource["status"] = "VOIDED"
    [voided] = make(fake, kit).parse_webhook(
        inbound(kit.event("PAYMENT.AUTHORIZATION.VOIDED", resource))
    )
    assert voided.result.status == ProviderStatus.CANCELLED
    assert voided.provider_payment_id == "5O190127TN364715T"


def test_refund_events_find_their_payment_through_the_capture(fake, kit) -> None:
    provider = make(fake, kit)
    created = provider.create_payment(_request("pay_r"))
    capture_id = fake.order(created.provider_payment_id)["purchase_units"][0]["payments"][
        "captures"
    ][0]["id"]
    resource = load_fixture("refund.json")
    resource["links"][1]["href"] = (
        f"https://api.sandbox.paypal.com/v2/payments/captures/{capture_id}"
    )
    [refund] = provider.parse_webhook(inbound(kit.event("PAYMENT.CAPTURE.REFUNDED", resource)))
    assert isinstance(refund, RefundEvent)
    assert refund.status == "completed"
    assert refund.amount == Money("5.00", "USD")
    assert refund.refund_id == "re_fixture"
    assert refund.provider_refund_id == "1JU08902781691411"
    assert refund.payment_id == "pay_r"
    assert refund.provider_payment_id == created.provider_payment_id
    assert fake.calls("GET", f"/v2/payments/captures/{capture_id}")

    [reversal] = provider.parse_webhook(inbound(kit.event("PAYMENT.CAPTURE.REVERSED", resource)))
    assert isinstance(reversal, RefundEvent)
    assert reversal.status == "completed"
    assert reversal.refund_id == ""  # money PayPal took back: an external refund
    assert "reversed" in reversal.reason

    resource["links"] = []
    with pytest.raises(WebhookError, match="names no capture"):
        provider.parse_webhook(inbound(kit.event("PAYMENT.CAPTURE.REFUNDED", resource)))


def test_unknown_and_malformed_events(fake, kit) -> None:
    provider = make(fake, kit)
    assert provider.parse_webhook(inbound(kit.event("CUSTOMER.DISPUTE.CREATED", {}))) == []
    assert provider.parse_webhook(inbound(kit.event("BILLING.PLAN.CREATED", {"id": "P"}))) == []
    broken = kit.event("PAYMENT.CAPTURE.COMPLETED", {"id": "C"})
    with pytest.raises(WebhookError, match="lacks a field"):
        provider.parse_webhook(inbound(broken))
    assert "PAYMENT.CAPTURE.REFUNDED" in HANDLED_EVENTS


def _request(payment_id: str, token: str = VAULT_APPROVED, capture: bool = True):
    from paydesk.types import PaymentRequest

    return PaymentRequest(
        payment_id=payment_id,
        amount=Money("20.00", "USD"),
        idempotency_key=f"paydesk:{payment_id}:attempt-1:create",
        payment_method_token=token,
        capture=capture,
        return_url="https://shop.example.com/done/",
    )


def test_order_approved_is_captured_once(fake: FakePayPal, kit: PayPalWebhookKit) -> None:
    provider = make(fake, kit)
    created = provider.create_payment(_request("pay_ap", token=REDIRECT))
    fake.approve(created.provider_payment_id)
    event = kit.event("CHECKOUT.ORDER.APPROVED", fake.order(created.provider_payment_id))
    [first] = provider.parse_webhook(inbound(event))
    [second] = provider.parse_webhook(inbound(event))  # redelivered
    assert first.result.status == second.result.status == ProviderStatus.CAPTURED
    assert first.payment_id == "pay_ap"
    assert first.provider_payment_id == created.provider_payment_id
    assert fake.count("capture") == 1
    ids = {c.headers["paypal-request-id"] for c in fake.calls("POST", "/capture$")}
    assert ids == {f"paydesk:{created.provider_payment_id}:capture"}


def test_order_approved_for_an_authorize_order(fake, kit) -> None:
    provider = make(fake, kit)
    created = provider.create_payment(_request("pay_aa", token=REDIRECT, capture=False))
    fake.approve(created.provider_payment_id)
    event = kit.event("CHECKOUT.ORDER.APPROVED", fake.order(created.provider_payment_id))
    [effect] = provider.parse_webhook(inbound(event))
    assert effect.result.status == ProviderStatus.AUTHORIZED
    assert fake.count("authorization") == 1
    assert fake.count("capture") == 0


def test_order_approved_with_capture_on_approval_off(fake, kit) -> None:
    provider = make(fake, kit, CAPTURE_ON_APPROVAL="false")
    created = provider.create_payment(_request("pay_off", token=REDIRECT))
    fake.approve(created.provider_payment_id)
    event = kit.event("CHECKOUT.ORDER.APPROVED", fake.order(created.provider_payment_id))
    assert provider.parse_webhook(inbound(event)) == []
    assert fake.calls("POST", "/capture$") == []


def test_order_approved_but_declined_at_capture(fake, kit) -> None:
    provider = make(fake, kit, MAX_RETRIES=0)
    created = provider.create_payment(_request("pay_dec", token=REDIRECT))
    fake.approve(created.provider_payment_id, "instrument_declined")
    event = kit.event("CHECKOUT.ORDER.APPROVED", fake.order(created.provider_payment_id))
    [effect] = provider.parse_webhook(inbound(event))
    assert effect.result.status == ProviderStatus.FAILED
    assert effect.result.failure.code == "card_declined"
    fake.inject("500", path="/capture$")
    with pytest.raises(ProviderUnavailable):  # the delivery fails and is retried later
        provider.parse_webhook(inbound(event))


# -- end to end through POST /paydesk/webhooks/paypal/ ----------------------------------------


@pytest.fixture
def configured(fake: FakePayPal, kit: PayPalWebhookKit):
    with override_settings(PAYDESK=paydesk_settings(fake, kit)):
        yield get_payment_provider("paypal")


def post(client, kit: PayPalWebhookKit, event: dict, **sign):
    body = body_of(event)
    headers = kit.sign(body, **sign)
    return client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def _waiting_payment(**kwargs) -> Payment:
    payment = services.create_payment(amount="20.00", currency="USD", provider="paypal", **kwargs)
    payment = services.process_payment(payment=payment, payment_method_token=REDIRECT)
    assert payment.status == "requires_action"
    return payment


def _kinds(payment: Payment) -> list[str]:
    return list(
        TransactionLog.objects.filter(payment=payment).order_by("pk").values_list("kind", flat=True)
    )


@pytest.mark.django_db
def test_capture_completed_applied_once_even_if_delivered_twice_or_late(
    client, configured, kit, fake
) -> None:
    payment = _waiting_payment()
    order_id = payment.provider_payment_id
    completed = kit.capture_event(
        "PAYMENT.CAPTURE.COMPLETED",
        order_id=order_id,
        payment_id=payment.pk,
        value="20.00",
        currency="USD",
    )
    pending = kit.capture_event(
        "PAYMENT.CAPTURE.PENDING",
        order_id=order_id,
        payment_id=payment.pk,
        value="20.00",
        currency="USD",
    )
    first = post(client, kit, completed)
    assert first.status_code == 200, first.content
    again = post(client, kit, completed)
    assert again.json()["status"] == "duplicate"
    late = post(client, kit, pending)  # an older event arriving after the newer one
    assert late.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.captured_amount == 20
    assert _kinds(payment).count(LedgerKind.CAPTURE) == 1
    assert WebhookEvent.objects.filter(provider="paypal").count() == 2


@pytest.mark.django_db
def test_approval_webhook_and_return_view_capture_once(client, configured, kit, fake) -> None:
    payment = _waiting_payment(return_url="/orders/42/")
    back = fake.approve(payment.next_action["redirect_url"])
    assert back.startswith(f"https://shop.example.com/paydesk/return/{payment.pk}/?token=")
    response = post(
        client, kit, kit.event("CHECKOUT.ORDER.APPROVED", fake.order(payment.provider_payment_id))
    )
    assert response.status_code == 200, response.content
    view = client.get(back.removeprefix("https://shop.example.com"))
    assert view.status_code == 302
    assert view["Location"] == "/orders/42/"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert fake.count("capture") == 1
    assert _kinds(payment).count(LedgerKind.CAPTURE) == 1


@pytest.mark.django_db
def test_refund_completed_by_webhook(client, configured, kit, fake) -> None:
    fake.refund_status = "PENDING"
    payment = services.create_payment(amount="20.00", currency="USD", provider="paypal")
    payment = services.process_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    refund = services.create_refund(payment=payment, amount="5.00", reason="late delivery")
    assert refund.status == "processing"
    paypal_refund = fake.refunds[refund.provider_refund_id]
    paypal_refund["status"] = "COMPLETED"
    event = kit.event("PAYMENT.CAPTURE.REFUNDED", paypal_refund)
    assert post(client, kit, event).status_code == 200
    assert post(client, kit, event).json()["status"] == "duplicate"
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == "completed"
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == 5


@pytest.mark.django_db
def test_dashboard_refund_and_reversal_are_recorded(client, configured, kit, fake) -> None:
    payment = services.create_payment(amount="20.00", currency="USD", provider="paypal")
    payment = services.process_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    order = fake.order(payment.provider_payment_id)
    capture_id = order["purchase_units"][0]["payments"]["captures"][0]["id"]
    resource = load_fixture("refund.json")
    resource.pop("custom_id")
    resource["links"][1]["href"] = (
        f"https://api.sandbox.paypal.com/v2/payments/captures/{capture_id}"
    )
    assert post(client, kit, kit.event("PAYMENT.CAPTURE.REFUNDED", resource)).status_code == 200
    resource = {
        **resource,
        "id": "REVERSAL0000001",
        "amount": {"currency_code": "USD", "value": "15.00"},
    }
    assert post(client, kit, kit.event("PAYMENT.CAPTURE.REVERSED", resource)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "refunded"
    refunds = Refund.objects.filter(payment=payment).order_by("amount")
    assert [(r.amount, r.status) for r in refunds] == [(5, "completed"), (15, "completed")]
    assert "reversed" in refunds[1].reason


@pytest.mark.django_db
def test_authorization_voided_cancels(client, configured, kit, fake) -> None:
    payment = services.create_payment(
        amount="20.00", currency="USD", provider="paypal", capture=False
    )
    payment = services.process_payment(payment=payment, payment_method_token=VAULT_APPROVED)
    assert payment.status == "authorized"
    order = fake.order(payment.provider_payment_id)
    authorization = order["purchase_units"][0]["payments"]["authorizations"][0]
    authorization["status"] = "VOIDED"
    assert (
        post(client, kit, kit.event("PAYMENT.AUTHORIZATION.VOIDED", authorization)).status_code
        == 200
    )
    payment.refresh_from_db()
    assert payment.status == "cancelled"


@pytest.mark.django_db
def test_unknown_events_are_stored_and_ignored(client, configured, kit) -> None:
    response = post(client, kit, kit.event("CUSTOMER.DISPUTE.CREATED", {"dispute_id": "PP-D-1"}))
    assert response.status_code == 200
    stored = WebhookEvent.objects.get(provider="paypal")
    assert stored.event_type == "CUSTOMER.DISPUTE.CREATED"
    assert stored.success


@pytest.mark.django_db
def test_forged_and_stale_deliveries_leave_no_trace(client, configured, kit) -> None:
    payment = _waiting_payment()
    event = kit.capture_event(
        "PAYMENT.CAPTURE.COMPLETED",
        order_id=payment.provider_payment_id,
        payment_id=payment.pk,
        value="20.00",
        currency="USD",
    )
    assert post(client, kit, event, chain="untrusted").status_code == 400
    assert post(client, kit, event, timestamp=time.time() - 3600).status_code == 400
    response = post(client, kit, event, cert_url="https://evil.example.com/cert.pem")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    assert WebhookEvent.objects.count() == 0
    payment.refresh_from_db()
    assert payment.status == "requires_action"


def test_order_completed_event_is_decided_by_its_capture(fake, kit) -> None:
    order = load_fixture("order_approved.json")
    provider = make(fake, kit, CAPTURE_ON_APPROVAL=False)
    assert provider.parse_webhook(inbound(kit.event("CHECKOUT.ORDER.APPROVED", order))) == []
    order["status"] = "COMPLETED"
    capture = load_fixture("capture.json")
    order["purchase_units"][0]["payments"] = {"captures": [capture]}
    [effect] = provider.parse_webhook(inbound(kit.event("CHECKOUT.ORDER.COMPLETED", order)))
    assert effect.payment_id == "pay_fixture"
    assert effect.provider_payment_id == "5O190127TN364715T"
    assert effect.result.status == ProviderStatus.CAPTURED
    capture["status"] = "DECLINED"
    [declined] = provider.parse_webhook(inbound(kit.event("CHECKOUT.ORDER.COMPLETED", order)))
    assert declined.result.status == ProviderStatus.FAILED
    assert fake.requests == []  # nothing needed from PayPal for these
