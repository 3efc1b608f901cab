"""Stripe webhooks: signatures cross-checked with the SDK, events mapped onto the ledger.

Events come from tests/fixtures/stripe/*.json (shapes of the 2023-08-16 API) with the ids of
objects the fake made, and go through paydesk's real endpoint, ``POST /paydesk/webhooks/stripe/``.
"""

from __future__ import annotations

import json
import time

import pytest
import stripe
from django.test import override_settings
from django.urls import reverse

from paydesk import services
from paydesk.exceptions import SignatureVerificationError, WebhookError
from paydesk.models import WebhookEvent
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.security.signatures import StripeSignatureVerifier
from paydesk.states import LedgerKind
from paydesk.types import (
    DisputeEvent,
    InboundWebhook,
    PaymentEvent,
    PaymentRequest,
    ProviderStatus,
    RefundEvent,
)

from .fakes.stripe_server import (
    WEBHOOK_SECRET,
    FakeStripe,
    fixture,
    fixture_event,
    paydesk_settings,
    signed,
)


@pytest.fixture
def fake_stripe():
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def provider(fake_stripe):
    with override_settings(PAYDESK=paydesk_settings(fake_stripe)):
        yield get_payment_provider("stripe")


def _inbound(provider, event: dict) -> InboundWebhook:
    body, headers = signed(event)
    return provider.verify_webhook(body, headers)


# -- signatures, both ways -------------------------------------------------------------------


def test_stripes_sdk_accepts_what_paydesk_signs():
    body = json.dumps(fixture("payment_intent.succeeded")).encode()
    header = StripeSignatureVerifier([WEBHOOK_SECRET]).sign(body)
    assert stripe.WebhookSignature.verify_header(body, header, WEBHOOK_SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", header, WEBHOOK_SECRET, tolerance=300)


def test_paydesk_accepts_what_stripes_sdk_signs(provider):
    body = json.dumps(fixture("payment_intent.succeeded"), indent=2).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    inbound = provider.verify_webhook(body, {"Stripe-Signature": header})
    assert (inbound.event_id, inbound.event_type) == (
        "evt_3NvFixtureSucceeded01",
        "payment_intent.succeeded",
    )
    assert inbound.signature == header
    assert inbound.payload == json.loads(body)


def test_the_documented_vector_matches_both_signers():
    # ../shared/docs/providers.md 1.6, computed with stripe-python.
    body = b'{"id":"evt_test_1","object":"event","type":"payment_intent.succeeded"}'
    expected = "t=1700000000,v1=871acfe933554b446cc41d791076dd56a10c0553cc61aafbeb881d0082b45043"
    assert (
        StripeSignatureVerifier(["whsec_test_secret"]).sign(body, timestamp=1700000000) == expected
    )
    computed = stripe.WebhookSignature._compute_signature(
        f"1700000000.{body.decode()}", "whsec_test_secret"
    )
    assert expected.endswith(computed)
    # The vector's timestamp is old: verify it with a tolerance that reaches back to it.
    tolerance = int(time.time()) - 1700000000 + 60
    stripe_provider = _provider(
        {"WEBHOOK_SECRET": "whsec_test_secret", "WEBHOOK_TOLERANCE": tolerance}
    )
    inbound = stripe_provider.verify_webhook(body, {"Stripe-Signature": expected + ",v1=deadbeef"})
    assert inbound.event_id == "evt_test_1"


def _provider(options: dict):
    from paydesk.providers.stripe import StripeProvider

    return StripeProvider(alias="stripe", options={"SECRET_KEY": "sk_test_x", **options})


def test_rotation_several_signatures_and_several_secrets():
    body = json.dumps(fixture("payment_intent.succeeded")).encode()
    now = int(time.time())
    old, new = "whsec_old_secret", "whsec_new_secret"
    both = (
        f"t={now},v1={stripe.WebhookSignature._compute_signature(f'{now}.{body.decode()}', old)}"
        f",v1={stripe.WebhookSignature._compute_signature(f'{now}.{body.decode()}', new)}"
    )
    # Stripe signs with both endpoint secrets during its rotation: either one is enough here.
    assert _provider({"WEBHOOK_SECRET": new}).verify_webhook(body, {"Stripe-Signature": both})
    assert _provider({"WEBHOOK_SECRET": old}).verify_webhook(body, {"Stripe-Signature": both})
    # paydesk's own rotation: several secrets configured, the delivery signed with one.
    only_new = stripe.WebhookSignature.generate_signature_header(body.decode(), new)
    rotating = _provider({"WEBHOOK_SECRETS": [old, new]})
    assert rotating.verify_webhook(body, {"stripe-signature": only_new})
    with pytest.raises(SignatureVerificationError):
        _provider({"WEBHOOK_SECRETS": [old]}).verify_webhook(body, {"Stripe-Signature": only_new})


def test_tolerance_is_an_option():
    body = json.dumps(fixture("payment_intent.succeeded")).encode()
    old = int(time.time()) - 400
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=old
    )
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        _provider({"WEBHOOK_SECRET": WEBHOOK_SECRET}).verify_webhook(
            body, {"Stripe-Signature": header}
        )
    lenient = _provider({"WEBHOOK_SECRET": WEBHOOK_SECRET, "WEBHOOK_TOLERANCE": 600})
    assert lenient.verify_webhook(body, {"Stripe-Signature": header})


def test_an_unset_tolerance_means_the_default_not_no_check():
    body = json.dumps(fixture("payment_intent.succeeded")).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=int(time.time()) - 301
    )
    for unset in (None, ""):  # env("PAYDESK_STRIPE_WEBHOOK_TOLERANCE") without the variable
        provider = _provider({"WEBHOOK_SECRET": WEBHOOK_SECRET, "WEBHOOK_TOLERANCE": unset})
        with pytest.raises(SignatureVerificationError, match="tolerance"):
            provider.verify_webhook(body, {"Stripe-Signature": header})


def test_no_webhook_secret_refuses_every_delivery_with_a_clear_message():
    body, headers = signed(fixture("payment_intent.succeeded"))
    with pytest.raises(SignatureVerificationError, match="OPTIONS\\['WEBHOOK_SECRET'\\]"):
        _provider({}).verify_webhook(body, headers)


def test_an_authentic_body_that_is_not_json_is_returned_with_an_error(provider):
    body = b"{not json"
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    inbound = provider.verify_webhook(body, {"Stripe-Signature": header})
    assert inbound.payload is None
    assert inbound.error.startswith("The body is not valid JSON")
    assert inbound.event_id.startswith("malformed:")


# -- parsing each event ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("payment_intent.succeeded", ProviderStatus.CAPTURED),
        ("payment_intent.processing", ProviderStatus.PROCESSING),
        ("payment_intent.payment_failed", ProviderStatus.FAILED),
        ("payment_intent.requires_action", ProviderStatus.REQUIRES_ACTION),
        ("payment_intent.canceled", ProviderStatus.CANCELLED),
        ("payment_intent.amount_capturable_updated", ProviderStatus.AUTHORIZED),
    ],
)
def test_payment_intent_events_map_like_api_answers(provider, name, status):
    (effect,) = provider.parse_webhook(_inbound(provider, fixture(name)))
    assert isinstance(effect, PaymentEvent)
    assert effect.result.status == status
    assert (effect.payment_id, effect.provider_payment_id) == (
        "pay_fixture",
        "pi_3NvFixture0000000000001",
    )
    if status == ProviderStatus.FAILED:
        assert effect.result.failure.code == "insufficient_funds"
    if status == ProviderStatus.REQUIRES_ACTION:
        assert effect.result.next_action.client_secret.startswith("pi_3NvFixture")
    if status == ProviderStatus.CAPTURED:
        assert effect.result.amount_captured == Money("20.00", "USD")


def test_intents_paydesk_did_not_create_are_ignored(provider, fake_stripe):
    event = fixture("payment_intent.succeeded")
    event["data"]["object"]["metadata"] = {"order": "from-another-app"}
    assert provider.parse_webhook(_inbound(provider, event)) == []
    assert fake_stripe.requests == []


@pytest.mark.parametrize(
    ("name", "status", "failure"),
    [
        ("refund.created", "pending", None),
        ("refund.updated", "completed", None),
        ("refund.failed", "failed", "expired_card"),
    ],
)
def test_refund_events(provider, fake_stripe, name, status, failure):
    (effect,) = provider.parse_webhook(_inbound(provider, fixture(name)))
    assert isinstance(effect, RefundEvent)
    assert (effect.status, effect.refund_id, effect.payment_id) == (
        status,
        "ref_fixture",
        "pay_fixture",
    )
    assert effect.amount == Money("5.00", "USD")
    assert effect.provider_refund_id == "re_3NvFixture0000000000001"
    assert (effect.failure.code if effect.failure else None) == failure
    assert fake_stripe.requests == []  # paydesk's metadata was enough


def test_charge_refunded_with_its_refunds_listed_in_the_event(provider, fake_stripe):
    event = fixture("charge.refunded")
    refund = fixture("refund.updated")["data"]["object"]
    event["data"]["object"]["refunds"] = {"object": "list", "data": [refund], "has_more": False}
    (effect,) = provider.parse_webhook(_inbound(provider, event))
    assert (effect.status, effect.refund_id) == ("completed", "ref_fixture")
    assert fake_stripe.requests == []


def test_unknown_and_thin_events_are_ignored(provider):
    assert provider.parse_webhook(_inbound(provider, fixture("customer.created"))) == []
    thin = {"id": "evt_thin", "object": "v2.core.event", "type": "v1.billing.meter.error"}
    assert provider.parse_webhook(_inbound(provider, thin)) == []


def test_a_known_event_missing_its_object_is_a_webhook_error(provider):
    event = fixture("payment_intent.succeeded")
    del event["data"]
    with pytest.raises(WebhookError, match="lacks the field"):
        provider.parse_webhook(_inbound(provider, event))


# -- end to end through POST /paydesk/webhooks/stripe/ ---------------------------------------


def _deliver(client, event: dict):
    body, headers = signed(event)
    return client.post(
        reverse("paydesk:webhook", args=["stripe"]),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
    )


def _intent_event(name: str, intent: dict, **extra) -> dict:
    fields = {
        key: intent[key]
        for key in (
            "id",
            "amount",
            "amount_received",
            "amount_capturable",
            "currency",
            "capture_method",
            "client_secret",
            "latest_charge",
            "metadata",
        )
    }
    return fixture_event(name, **{**fields, **extra})


def _kinds(payment) -> list[str]:
    return list(payment.ledger.values_list("kind", flat=True))


@pytest.mark.django_db
def test_succeeded_completes_once_despite_duplicates_and_disorder(provider, fake_stripe, client):
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    payment = services.process_payment(
        payment=payment, payment_method_token="pm_card_threeDSecure2Required"
    )
    assert payment.status == "requires_action"
    intent = fake_stripe.complete_3ds(payment.provider_payment_id)
    succeeded = _intent_event("payment_intent.succeeded", intent)
    processing = _intent_event("payment_intent.processing", intent, status="processing")

    assert _deliver(client, succeeded).json()["status"] == "processed"
    assert _deliver(client, processing).status_code == 200  # late: the fold ignores it
    again = _deliver(client, succeeded)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")

    payment.refresh_from_db()
    assert payment.status == "completed"
    assert _kinds(payment).count(LedgerKind.CAPTURE) == 1
    assert payment.captured_amount == Money("20.00", "USD").amount
    assert WebhookEvent.objects.filter(provider="stripe").count() == 2
    # The customer's return also confirms: already completed, nothing new.
    assert services.confirm_payment(payment=payment).status == "completed"
    assert _kinds(payment).count(LedgerKind.CAPTURE) == 1


@pytest.mark.django_db
def test_failed_and_cancelled_intents(provider, fake_stripe, client):
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment)  # no card yet: Stripe.js collects it
    assert payment.status == "requires_action"
    assert payment.next_action["client_secret"]
    intent = fake_stripe.client_confirm(
        payment.provider_payment_id, "pm_card_chargeDeclinedInsufficientFunds"
    )
    assert (
        _deliver(client, _intent_event("payment_intent.payment_failed", intent)).status_code == 200
    )
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "insufficient_funds")

    other = services.create_payment(
        amount="20.00", currency="USD", provider="stripe", capture=False
    )
    other = services.process_payment(payment=other, payment_method_token="pm_card_visa")
    assert other.status == "authorized"
    intent = fake_stripe.intent(other.provider_payment_id)
    assert (
        _deliver(client, _intent_event("payment_intent.amount_capturable_updated", intent)).json()[
            "status"
        ]
        == "processed"
    )
    cancelled = _intent_event(
        "payment_intent.canceled", intent, status="canceled", amount_capturable=0
    )
    assert _deliver(client, cancelled).status_code == 200
    other.refresh_from_db()
    assert other.status == "cancelled"


@pytest.mark.django_db
def test_refund_events_complete_paydesk_refunds(provider, fake_stripe, client):
    fake_stripe.refund_status = "pending"
    payment = services.create_payment(amount="50.00", currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    first = services.create_refund(payment=payment, amount="10.00", reason="requested_by_customer")
    second = services.create_refund(payment=payment, amount="5.00")
    assert (first.status, second.status) == ("processing", "processing")

    settled = fake_stripe.settle_refund(first.provider_refund_id)
    assert _deliver(client, fixture_event("refund.updated", **settled)).status_code == 200
    first.refresh_from_db()
    assert first.status == "completed"

    # charge.refunded carries no refund list in this API version: the provider asks Stripe.
    fake_stripe.settle_refund(second.provider_refund_id)
    charge = fake_stripe.charges[fake_stripe.intent(payment.provider_payment_id)["latest_charge"]]
    response = _deliver(client, fixture_event("charge.refunded", **charge))
    assert response.json()["status"] == "processed"
    assert ("GET", "/v1/refunds") in [(r.method, r.path) for r in fake_stripe.requests]
    second.refresh_from_db()
    assert second.status == "completed"
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Money("15.00", "USD").amount
    assert _kinds(payment).count(LedgerKind.REFUND_COMPLETED) == 2


@pytest.mark.django_db
def test_a_failed_refund_releases_its_reservation(provider, fake_stripe, client):
    fake_stripe.refund_status = "pending"
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    refund = services.create_refund(payment=payment, amount="20.00")
    failed = fake_stripe.settle_refund(
        refund.provider_refund_id, "failed", failure_reason="lost_or_stolen_card"
    )
    assert _deliver(client, fixture_event("refund.failed", **failed)).status_code == 200
    refund.refresh_from_db()
    assert (refund.status, refund.failure_code) == ("failed", "lost_card")
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.refundable_amount == Money("20.00", "USD").amount


@pytest.mark.django_db
def test_a_dashboard_refund_is_recorded(provider, fake_stripe, client):
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    # Made in the Dashboard: no paydesk metadata, so the intent is looked up.
    dashboard = provider.client.v1.refunds.create(
        params={"payment_intent": payment.provider_payment_id, "amount": 800}
    ).to_dict()
    assert _deliver(client, fixture_event("refund.created", **dashboard)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Money("8.00", "USD").amount
    refund = payment.refunds.get()
    assert refund.provider_refund_id == dashboard["id"]


@pytest.mark.django_db
def test_disputes_open_and_close(provider, fake_stripe, client):
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    payment = services.process_payment(payment=payment, payment_method_token="pm_card_visa")
    dispute = fake_stripe.open_dispute(payment.provider_payment_id)
    dispute["payment_intent"] = None  # older API versions: only the charge; the provider asks
    assert _deliver(client, fixture_event("charge.dispute.created", **dispute)).status_code == 200
    closed = fake_stripe.close_dispute(dispute["id"], "won")
    assert _deliver(client, fixture_event("charge.dispute.closed", **closed)).status_code == 200
    payment.refresh_from_db()
    entries = payment.ledger.filter(kind__in=[LedgerKind.DISPUTE_OPENED, LedgerKind.DISPUTE_CLOSED])
    assert [(e.kind, e.ref, e.message) for e in entries.order_by("id")] == [
        (LedgerKind.DISPUTE_OPENED, dispute["id"], "fraudulent"),
        (LedgerKind.DISPUTE_CLOSED, dispute["id"], "fraudulent (won)"),
    ]
    assert payment.status == "completed"


def test_dispute_effect_fields(provider, fake_stripe):
    paid = provider.create_payment(
        PaymentRequest(
            payment_id="pay_dispute",
            amount=Money("20.00", "USD"),
            idempotency_key="paydesk:pay_dispute:attempt-1:create",
            payment_method_token="pm_card_visa",
        )
    )
    dispute = fake_stripe.open_dispute(paid.provider_payment_id)
    (effect,) = provider.parse_webhook(
        _inbound(provider, fixture_event("charge.dispute.created", **dispute))
    )
    assert isinstance(effect, DisputeEvent)
    assert (effect.opened, effect.payment_id, effect.amount) == (
        True,
        "pay_dispute",
        Money("20.00", "USD"),
    )


@pytest.mark.django_db
def test_the_endpoint_ignores_unknown_events_and_refuses_bad_signatures(provider, client):
    response = _deliver(client, fixture("customer.created"))
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    body, headers = signed(fixture("payment_intent.succeeded"), secret="whsec_not_ours")
    refused = client.post(
        reverse("paydesk:webhook", args=["stripe"]),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_signature"
    assert WebhookEvent.objects.filter(provider="stripe").count() == 1


@pytest.mark.django_db
def test_an_authentic_non_json_body_is_stored_dead(provider, client):
    body = b"not json at all"
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    response = client.post(
        reverse("paydesk:webhook", args=["stripe"]),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 400
    assert WebhookEvent.objects.get(provider="stripe").status == "dead"


def test_the_docs_name_every_event_to_subscribe_and_every_option():
    from pathlib import Path

    from paydesk.providers.stripe.webhooks import SUBSCRIBED_EVENTS

    docs = Path(__file__).resolve().parent.parent / "docs"
    page = (docs / "providers" / "stripe.md").read_text()
    steps = page.split("## Webhooks", 1)[1].split("##", 1)[0]
    listed = {line.strip()[3:-1] for line in steps.splitlines() if line.strip().startswith("- `")}
    assert listed == set(SUBSCRIBED_EVENTS)
    for option in (
        "SECRET_KEY",
        "PUBLISHABLE_KEY",
        "WEBHOOK_SECRET",
        "WEBHOOK_SECRETS",
        "WEBHOOK_TOLERANCE",
        "API_VERSION",
        "CAPTURE_METHOD",
        "MAX_NETWORK_RETRIES",
        "TIMEOUT",
        "BASE_ADDRESSES",
    ):
        assert f"| `{option}` |" in page, option
    assert "(providers/stripe.md)" in (docs / "index.md").read_text()


@pytest.mark.django_db
def test_a_late_event_about_an_earlier_attempts_intent_does_not_touch_the_retry(
    provider, fake_stripe, client
):
    payment = services.create_payment(amount="20.00", currency="USD", provider="stripe")
    payment = services.process_payment(
        payment=payment, payment_method_token="pm_card_chargeDeclined"
    )
    first = fake_stripe.intent(payment.provider_payment_id)
    payment = services.retry_payment(
        payment=payment, payment_method_token="pm_card_threeDSecure2Required"
    )
    assert payment.status == "requires_action"
    # Stripe's payment_failed for the first intent arrives only now (its deliveries retry).
    response = _deliver(client, _intent_event("payment_intent.payment_failed", first))
    assert response.json()["status"] == "processed"
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    fake_stripe.complete_3ds(payment.provider_payment_id)
    assert services.confirm_payment(payment=payment).status == "completed"
