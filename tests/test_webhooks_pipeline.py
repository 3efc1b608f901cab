"""The webhook pipeline's checks, in order, for the sandbox provider and any provider.

Every refusal (404, 413, 403, 429, 400) must leave no trace: no ``WebhookEvent`` row, no
ledger entry, no change to a stored delivery. The helpers at the top are shared by the other
``test_webhooks_*`` modules (they import them from here).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from paydesk import services
from paydesk.models import Payment, SandboxCharge, TransactionLog, WebhookEvent
from paydesk.providers.base import PaymentProvider
from paydesk.providers.registry import get_payment_provider
from paydesk.providers.sandbox.webhooks import build_event, charge_snapshot, signed_delivery
from paydesk.security import signatures
from paydesk.security.ratelimit import RateLimiter
from paydesk.security.signatures import SandboxWebhookVerifier
from paydesk.types import Capability
from paydesk.webhooks import pipeline
from paydesk.webhooks import views as webhook_views
from paydesk.webhooks.pipeline import WebhookRequest, handle

# -- shared helpers ---------------------------------------------------------------------------

SECRET = "whsec_test_current"
URL = "/paydesk/webhooks/sandbox/"


def paydesk_config(
    *,
    options: Mapping[str, Any] | None = None,
    webhooks: Mapping[str, Any] | None = None,
    security: Mapping[str, Any] | None = None,
    extra_providers: Mapping[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A ``PAYDESK`` dict with the sandbox signing with ``SECRET``; delivery stays "off"
    unless ``options`` turn it on, processing is inline unless ``webhooks`` say otherwise."""
    sandbox_options = {"WEBHOOK_DELIVERY": "off", "WEBHOOK_SECRET": SECRET, **(options or {})}
    return {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": sandbox_options,
            },
            **(extra_providers or {}),
        },
        "WEBHOOKS": {"PROCESS": "inline", **(webhooks or {})},
        "SECURITY": dict(security or {}),
        **top,
    }


def sandbox() -> Any:
    return get_payment_provider("sandbox")


def post(
    client: Client,
    body: bytes,
    headers: Mapping[str, str],
    *,
    url: str = URL,
    **meta: Any,
) -> Any:
    """POST ``body`` as a provider would; ``meta`` sets WSGI keys (``REMOTE_ADDR`` ...)."""
    sent = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return client.post(url, data=body, content_type="application/json", headers=sent, **meta)


def awaiting_payment(amount: str = "10.00", alias: str = "sandbox") -> tuple[Payment, Any]:
    """A sandbox payment waiting for 3-D Secure, and the sandbox's charge behind it."""
    payment = services.create_payment(amount=amount, currency="USD", provider=alias)
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_3ds")
    assert payment.status == "requires_action"
    return payment, SandboxCharge.objects.get(pk=payment.provider_payment_id)


def charge_event(charge: Any, status: str, event_type: str, **extra: Any) -> dict[str, Any]:
    """The event the sandbox would send once ``charge`` reached ``status``."""
    charge.status = status
    if status == "captured":
        charge.captured_amount = charge.amount
    if status == "failed":
        charge.failure_code = "card_declined"
    charge.save()
    return build_event(event_type, charge_snapshot(charge), **extra)


def succeeded_event(charge: Any) -> dict[str, Any]:
    return charge_event(charge, "captured", "payment.succeeded")


def completed_payment(amount: str = "10.00") -> tuple[Payment, Any]:
    """A captured sandbox payment (the API answer recorded it; no webhook was sent)."""
    payment = services.create_payment(amount=amount, currency="USD", provider="sandbox")
    payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "completed"
    return payment, SandboxCharge.objects.get(pk=payment.provider_payment_id)


def ledger_kinds(payment: Payment) -> list[str]:
    return list(
        TransactionLog.objects.filter(payment=payment).order_by("id").values_list("kind", flat=True)
    )


def ledger_snapshot() -> list[tuple[Any, ...]]:
    return list(TransactionLog.objects.order_by("id").values_list("id", "kind", "amount"))


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """Rate-limit counters live in the (local-memory) cache: start every test at zero."""
    cache.clear()
    yield
    cache.clear()


# -- the tests --------------------------------------------------------------------------------

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


@override_settings(PAYDESK=paydesk_config())
def test_valid_signature_is_accepted_stored_and_applied(client):
    payment, charge = awaiting_payment()
    event = succeeded_event(charge)
    body, headers = signed_delivery(sandbox(), event)

    response = post(client, body, headers, REMOTE_ADDR="198.51.100.20")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "processed", "id": event["id"]}
    delivery = WebhookEvent.objects.get()
    assert (delivery.provider, delivery.event_id, delivery.event_type) == (
        "sandbox",
        event["id"],
        "payment.succeeded",
    )
    assert delivery.body == body.decode()  # the raw bytes, not a re-serialization
    assert delivery.payload == event
    assert delivery.signature == headers["Paydesk-Sandbox-Signature"]
    assert delivery.headers["Paydesk-Sandbox-Signature"] == delivery.signature
    assert delivery.ip_address == "198.51.100.20"
    assert (delivery.status, delivery.processed, delivery.success) == ("processed", True, True)
    assert delivery.attempts == 1
    assert delivery.deliveries == 1
    assert delivery.payment_id == payment.pk
    assert delivery.processed_at is not None
    assert delivery.error_message == ""
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert ledger_kinds(payment).count("capture") == 1


def _refused(client, body: bytes, headers: Mapping[str, str], status: int = 400) -> Any:
    before = ledger_snapshot()
    response = post(client, body, headers)
    assert response.status_code == status, response.content
    assert WebhookEvent.objects.count() == 0
    assert ledger_snapshot() == before
    return response


def _tampered(body: bytes) -> bytes:
    return body.replace(b'"captured"', b'"authorized"', 1)


@override_settings(PAYDESK=paydesk_config())
@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body, headers: (_tampered(body), headers), id="tampered-body"),
        pytest.param(lambda body, headers: (body + b" ", headers), id="trailing-whitespace"),
        pytest.param(
            lambda body, headers: (
                body,
                {"Paydesk-Sandbox-Signature": SandboxWebhookVerifier("whsec_wrong").sign(body)},
            ),
            id="wrong-secret",
        ),
        pytest.param(lambda body, headers: (body, {}), id="missing-header"),
        pytest.param(
            lambda body, headers: (body, {"Paydesk-Sandbox-Signature": ""}), id="empty-header"
        ),
        pytest.param(
            lambda body, headers: (body, {"Paydesk-Sandbox-Signature": "garbage"}),
            id="malformed-header",
        ),
        pytest.param(
            lambda body, headers: (body, {"Paydesk-Sandbox-Signature": "t=notanumber,v1=00"}),
            id="malformed-timestamp",
        ),
        pytest.param(
            lambda body, headers: (
                body,
                {"Paydesk-Sandbox-Signature": headers["Paydesk-Sandbox-Signature"].split(",")[0]},
            ),
            id="no-v1-signature",
        ),
        pytest.param(
            lambda body, headers: (
                body,
                {"Paydesk-Sandbox-Signature": headers["Paydesk-Sandbox-Signature"][:-2] + "zz"},
            ),
            id="signature-not-hex",
        ),
        pytest.param(
            lambda body, headers: (
                body,
                {
                    "Paydesk-Sandbox-Signature": SandboxWebhookVerifier(SECRET).sign(
                        body, timestamp=int(time.time()) - 301
                    )
                },
            ),
            id="stale-timestamp",
        ),
        pytest.param(
            lambda body, headers: (
                body,
                {
                    "Paydesk-Sandbox-Signature": SandboxWebhookVerifier(SECRET).sign(
                        body, timestamp=int(time.time()) + 3600
                    )
                },
            ),
            id="future-timestamp",
        ),
        pytest.param(
            lambda body, headers: (
                body,
                {"Stripe-Signature": headers["Paydesk-Sandbox-Signature"]},
            ),
            id="signature-under-another-header",
        ),
    ],
)
def test_an_unauthentic_delivery_is_refused_with_400_and_changes_nothing(client, forge):
    payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    forged_body, forged_headers = forge(body, headers)

    response = _refused(client, forged_body, forged_headers)

    assert response.json()["code"] == "invalid_signature"
    assert response.json()["message"]
    payment.refresh_from_db()
    assert payment.status == "requires_action"


@override_settings(PAYDESK=paydesk_config())
def test_a_refusal_never_echoes_the_expected_signature(client):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    genuine = headers["Paydesk-Sandbox-Signature"].split("v1=")[1]

    response = _refused(client, _tampered(body), headers)

    expected_for_tampered = SandboxWebhookVerifier(SECRET).sign(_tampered(body)).split("v1=")[1]
    assert genuine not in response.content.decode()
    assert expected_for_tampered not in response.content.decode()


@override_settings(PAYDESK=paydesk_config())
def test_replaying_an_old_valid_delivery_after_the_tolerance_is_refused(client, monkeypatch):
    _payment, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    assert post(client, body, headers).status_code == 200
    stored = WebhookEvent.objects.values().get()
    before = ledger_snapshot()

    # An attacker captured the delivery and sends it again, 301 s later (tolerance 300 s).
    later = time.time() + 301
    monkeypatch.setattr(signatures, "time", SimpleNamespace(time=lambda: later))
    response = post(client, body, headers)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    assert WebhookEvent.objects.values().get() == stored  # not even the delivery count moved
    assert ledger_snapshot() == before


@override_settings(PAYDESK=paydesk_config(options={"WEBHOOK_TOLERANCE": 60}))
def test_the_timestamp_tolerance_is_configurable(client):
    _, charge = awaiting_payment()
    event = succeeded_event(charge)
    body = json.dumps(event).encode()
    stale = {
        "Paydesk-Sandbox-Signature": SandboxWebhookVerifier(SECRET).sign(
            body, timestamp=int(time.time()) - 61
        )
    }
    _refused(client, body, stale)
    fresh = {
        "Paydesk-Sandbox-Signature": SandboxWebhookVerifier(SECRET).sign(
            body, timestamp=int(time.time()) - 50
        )
    }
    assert post(client, body, fresh).status_code == 200


@override_settings(PAYDESK=paydesk_config(options={"WEBHOOK_SECRETS": ["whsec_new", "whsec_old"]}))
def test_secret_rotation_accepts_the_old_and_the_new_secret(client):
    payment, charge = awaiting_payment()
    first = charge_event(charge, "requires_action", "payment.requires_action")
    second = succeeded_event(charge)
    for event, secret in ((first, "whsec_old"), (second, "whsec_new")):
        body = json.dumps(event).encode()
        header = SandboxWebhookVerifier(secret).sign(body)
        response = post(client, body, {"Paydesk-Sandbox-Signature": header})
        assert response.status_code == 200, (secret, response.content)
    assert WebhookEvent.objects.count() == 2

    # The sandbox itself signs with the first (current) secret.
    body, headers = signed_delivery(sandbox(), build_event("payment.unknown", {}))
    SandboxWebhookVerifier("whsec_new").verify_request(body, headers)

    # A secret outside the configured set is still refused.
    third = build_event("payment.succeeded", charge_snapshot(charge))
    body = json.dumps(third).encode()
    forged = {"Paydesk-Sandbox-Signature": SandboxWebhookVerifier("whsec_older").sign(body)}
    assert post(client, body, forged).status_code == 400
    assert WebhookEvent.objects.count() == 2
    payment.refresh_from_db()
    assert payment.status == "completed"


@override_settings(PAYDESK=paydesk_config())
def test_a_sender_signing_with_two_secrets_at_once_is_accepted(client):
    # Stripe-style rotation on the sender's side: one v1= per active secret.
    _, charge = awaiting_payment()
    body = json.dumps(succeeded_event(charge)).encode()
    stamp = int(time.time())
    old = SandboxWebhookVerifier("whsec_retired").sign(body, timestamp=stamp)
    new = SandboxWebhookVerifier(SECRET).sign(body, timestamp=stamp)
    header = f"{old},v1={new.split('v1=')[1]}"
    assert post(client, body, {"Paydesk-Sandbox-Signature": header}).status_code == 200


# -- size -------------------------------------------------------------------------------------

SMALL = paydesk_config(webhooks={"MAX_BODY_SIZE": 512})


def _padded_event(charge: Any, size: int) -> bytes:
    event = succeeded_event(charge)
    event["padding"] = ""
    bare = len(json.dumps(event, separators=(",", ":")).encode())
    event["padding"] = "x" * (size - bare)
    body = json.dumps(event, separators=(",", ":")).encode()
    assert len(body) == size
    return body


@override_settings(PAYDESK=SMALL)
def test_a_body_over_the_limit_is_refused_with_413(client):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), json.loads(_padded_event(charge, 513)))
    assert len(body) == 513
    response = _refused(client, body, headers, status=413)
    assert response.json()["code"] == "payload_too_large"


@override_settings(PAYDESK=SMALL)
def test_a_declared_content_length_over_the_limit_is_refused_before_reading(client, monkeypatch):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    assert len(body) < 512

    def never(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("the body must not be read")

    monkeypatch.setattr("django.core.handlers.wsgi.WSGIRequest.read", never)
    before = ledger_snapshot()
    response = post(client, body, headers, CONTENT_LENGTH="10000000")
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0
    assert ledger_snapshot() == before


@override_settings(PAYDESK=SMALL)
def test_a_body_exactly_at_the_limit_is_accepted(client):
    _, charge = awaiting_payment()
    body = _padded_event(charge, 512)
    header = SandboxWebhookVerifier(SECRET).sign(body)
    response = post(client, body, {"Paydesk-Sandbox-Signature": header})
    assert response.status_code == 200, response.content


@override_settings(PAYDESK=SMALL)
def test_the_pipeline_refuses_an_oversized_or_truncated_body_without_a_declared_length():
    big = b"{" + b" " * 600 + b"}"
    header = SandboxWebhookVerifier(SECRET).sign(big)
    for request in (
        WebhookRequest(alias="sandbox", body=big, headers={}, remote_addr="127.0.0.1"),
        WebhookRequest(
            alias="sandbox", body=big[:513], headers={}, remote_addr="127.0.0.1", truncated=True
        ),
        WebhookRequest(
            alias="sandbox",
            body=b"{}",
            headers={"Paydesk-Sandbox-Signature": header},
            remote_addr="127.0.0.1",
            content_length=600,
        ),
    ):
        assert handle(request).status == 413
    assert WebhookEvent.objects.count() == 0


# -- what the body says -----------------------------------------------------------------------


@override_settings(PAYDESK=paydesk_config())
@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2, 3]", b'"a string"', b"\xff\xfe{}"], ids=repr
)
def test_an_authentic_body_that_is_not_a_json_object_is_stored_dead_and_answered_400(client, body):
    header = SandboxWebhookVerifier(SECRET).sign(body)
    before = ledger_snapshot()

    response = post(client, body, {"Paydesk-Sandbox-Signature": header})

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_payload"
    delivery = WebhookEvent.objects.get()
    assert delivery.status == "dead"
    assert (delivery.processed, delivery.success) == (True, False)
    assert delivery.payload is None
    assert "JSON" in delivery.error_message
    assert delivery.event_id.startswith("malformed:")
    assert ledger_snapshot() == before

    # The provider sending it again changes nothing but the delivery count; still no 500.
    again = post(client, body, {"Paydesk-Sandbox-Signature": header})
    assert again.status_code == 400
    delivery.refresh_from_db()
    assert (delivery.status, delivery.deliveries, delivery.attempts) == ("dead", 2, 0)


@override_settings(PAYDESK=paydesk_config())
def test_an_unknown_provider_alias_is_404(client):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    response = post(client, body, headers, url="/paydesk/webhooks/nosuchprovider/")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_provider"
    assert WebhookEvent.objects.count() == 0


class NoWebhooksProvider(PaymentProvider):
    """A provider that sends no webhooks at all."""

    capabilities = frozenset({Capability.REFUND})


@override_settings(
    PAYDESK=paydesk_config(
        extra_providers={
            "quiet": {"BACKEND": "tests.test_webhooks_pipeline.NoWebhooksProvider"},
        }
    )
)
def test_a_provider_without_webhooks_is_404(client):
    response = post(client, b"{}", {}, url="/paydesk/webhooks/quiet/")
    assert response.status_code == 404
    assert response.json()["code"] == "webhooks_not_supported"
    assert WebhookEvent.objects.count() == 0


@override_settings(PAYDESK=paydesk_config())
def test_an_unknown_event_type_is_stored_as_ignored_and_answered_2xx(client):
    _payment, charge = awaiting_payment()
    event = build_event("customer.updated", charge_snapshot(charge))
    body, headers = signed_delivery(sandbox(), event)
    before = ledger_snapshot()

    response = post(client, body, headers)

    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "id": event["id"]}
    delivery = WebhookEvent.objects.get()
    assert (delivery.status, delivery.processed, delivery.success) == ("ignored", True, True)
    assert delivery.event_type == "customer.updated"
    assert ledger_snapshot() == before
    assert post(client, body, headers).json()["status"] == "duplicate"


@override_settings(PAYDESK=paydesk_config())
def test_the_endpoint_only_takes_post_and_needs_no_csrf_token():
    client = Client(enforce_csrf_checks=True)
    assert client.get(URL).status_code == 405
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    assert post(client, body, headers).status_code == 200


def test_the_stored_headers_are_request_headers_items(rf):
    # The view copies headers from META itself (cheaper than request.headers); names, values
    # and order must be exactly what request.headers.items() gives.
    request = rf.post(
        URL,
        data=b"{}",
        content_type="application/json; charset=utf-8",
        HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.1",
        HTTP_PAYDESK_SANDBOX_SIGNATURE="t=1,v1=ab",
        HTTP_X_ODD_NAME_ALL_CAPS="1",
        HTTP_AUTHORIZATION="Bearer x",
    )
    request.META["NOT_A_HEADER"] = "ignored"
    assert list(webhook_views._headers(request).items()) == list(request.headers.items())


@override_settings(PAYDESK=paydesk_config())
def test_the_answer_is_the_json_it_always_was(client):
    _, charge = awaiting_payment()
    event = succeeded_event(charge)
    body, headers = signed_delivery(sandbox(), event)
    response = post(client, body, headers)
    assert response["Content-Type"] == "application/json"
    assert response.content == json.dumps({"status": "processed", "id": event["id"]}).encode()


@override_settings(PAYDESK=paydesk_config())
def test_save_signals_reach_connected_receivers_once_per_stored_delivery(client):
    # Without receivers the accept path skips pre_save/post_save; with them, both are sent
    # as before (pre_save before the INSERT, so a receiver may still change the row).
    from django.db.models.signals import post_save, pre_save

    seen: list[tuple[str, Any]] = []

    def before(sender: Any, instance: Any, **kwargs: Any) -> None:
        if kwargs["update_fields"] is None:  # not processing's own saves
            assert instance.pk is None
            instance.payment_id = "set-by-pre-save"
            seen.append(("pre", kwargs["raw"]))

    def after(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        if kwargs["update_fields"] is None:
            seen.append(("post", created))

    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    pre_save.connect(before, sender=WebhookEvent)
    post_save.connect(after, sender=WebhookEvent)
    try:
        assert post(client, body, headers).status_code == 200
        assert post(client, body, headers).status_code == 200  # a resend: no post_save
    finally:
        pre_save.disconnect(before, sender=WebhookEvent)
        post_save.disconnect(after, sender=WebhookEvent)
    # pre_save goes out before the statement, so a resend gets one too (as it always did).
    assert seen == [("pre", False), ("post", True), ("pre", False)]
    stored = WebhookEvent.objects.get()
    assert stored.deliveries == 2
    # Stored by the INSERT (processing, if an immediate backend ran it, sets its own).
    assert stored.payment_id in ("set-by-pre-save", charge.payment_ref)


def test_the_endpoint_is_exempt_from_atomic_requests():
    # A processing failure must never roll back the stored delivery.
    assert "default" in getattr(webhook_views.webhook, "_non_atomic_requests", set())
    assert getattr(webhook_views.webhook, "csrf_exempt", False)


# -- who may send -----------------------------------------------------------------------------

ALLOWLISTED = paydesk_config(options={"WEBHOOK_IP_ALLOWLIST": ["203.0.113.0/24"]})
BEHIND_PROXY = paydesk_config(
    options={"WEBHOOK_IP_ALLOWLIST": ["203.0.113.0/24"]},
    security={"TRUSTED_PROXIES": ["10.0.0.0/8"]},
)


@override_settings(PAYDESK=ALLOWLISTED)
def test_an_address_outside_the_allowlist_is_refused_with_403(client):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    before = ledger_snapshot()

    refused = post(client, body, headers, REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 403
    assert refused.json()["code"] == "ip_not_allowed"
    assert WebhookEvent.objects.count() == 0
    assert ledger_snapshot() == before

    allowed = post(client, body, headers, REMOTE_ADDR="203.0.113.9")
    assert allowed.status_code == 200
    assert WebhookEvent.objects.get().ip_address == "203.0.113.9"


@override_settings(PAYDESK=ALLOWLISTED)
def test_x_forwarded_for_is_ignored_without_trusted_proxies(client):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))
    for peer in ("10.1.2.3", "198.51.100.7"):
        response = post(client, body, headers, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR="203.0.113.9")
        assert response.status_code == 403, peer
    assert WebhookEvent.objects.count() == 0


@override_settings(PAYDESK=BEHIND_PROXY)
def test_x_forwarded_for_is_honoured_only_from_a_trusted_proxy(client):
    _, charge = awaiting_payment()
    body, headers = signed_delivery(sandbox(), succeeded_event(charge))

    # Straight from an untrusted peer: its own claim is ignored.
    spoofed = post(
        client, body, headers, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert spoofed.status_code == 403
    # Through the trusted proxy, with a client that forged an allowed address in front.
    forged = post(
        client,
        body,
        headers,
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7",
    )
    assert forged.status_code == 403
    assert WebhookEvent.objects.count() == 0

    # Through the trusted proxy (and another trusted hop) from an allowed address.
    through = post(
        client,
        body,
        headers,
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9, 10.9.9.9",
    )
    assert through.status_code == 200
    assert WebhookEvent.objects.get().ip_address == "203.0.113.9"


# -- how often --------------------------------------------------------------------------------

LIMITED = paydesk_config(security={"RATE_LIMIT_REQUESTS": 2, "RATE_LIMIT_WINDOW": 60})
FROZEN_NOW = 60 * 1_000_000 + 10.0  # 10 s into a 60 s window: no test straddles two windows


@pytest.fixture
def frozen_rate_clock(monkeypatch):
    """Counting windows are fixed (``now // window``); freeze the limiter's clock so a test
    never sees its counter reset at a window edge."""

    class FrozenLimiter(RateLimiter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["clock"] = lambda: FROZEN_NOW
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pipeline, "RateLimiter", FrozenLimiter)


def _deliveries(count: int) -> list[tuple[bytes, dict[str, str]]]:
    return [
        signed_delivery(sandbox(), build_event("customer.updated", {"n": n, "currency": "USD"}))
        for n in range(count)
    ]


@override_settings(PAYDESK=LIMITED)
@pytest.mark.usefixtures("frozen_rate_clock")
def test_over_the_rate_limit_is_429_with_retry_after(client):
    first, second, third = _deliveries(3)
    assert post(client, *first).status_code == 200
    assert post(client, *second).status_code == 200

    response = post(client, *third)

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert response["Retry-After"] == "50"  # seconds left in the window
    assert WebhookEvent.objects.count() == 2
    # Another client has its own allowance.
    assert post(client, *third, REMOTE_ADDR="198.51.100.50").status_code == 200


@override_settings(PAYDESK=LIMITED)
@pytest.mark.usefixtures("frozen_rate_clock")
def test_the_rate_limit_counts_before_the_signature_check(client):
    # A flood of forged deliveries is cut off without computing an HMAC for each.
    body, headers = _deliveries(1)[0]
    forged = {"Paydesk-Sandbox-Signature": "t=1,v1=00"}
    assert post(client, body, forged).status_code == 400
    assert post(client, body, forged).status_code == 400
    assert post(client, body, headers).status_code == 429
    assert WebhookEvent.objects.count() == 0


@override_settings(
    PAYDESK=paydesk_config(
        security={"RATE_LIMIT_REQUESTS": 1},
        extra_providers={
            "sandbox_eu": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {
                    "WEBHOOK_DELIVERY": "off",
                    "WEBHOOK_SECRET": SECRET,
                    "RATE_LIMIT_REQUESTS": 3,
                },
            }
        },
    )
)
@pytest.mark.usefixtures("frozen_rate_clock")
def test_each_provider_has_its_own_counter_and_may_override_the_limit(client):
    eu = get_payment_provider("sandbox_eu")
    url = "/paydesk/webhooks/sandbox_eu/"
    assert post(client, *_deliveries(1)[0]).status_code == 200
    assert post(client, *_deliveries(1)[0]).status_code == 429
    events = [build_event("x.y", {"currency": "USD"}) for _ in range(4)]
    answers = [post(client, *signed_delivery(eu, e), url=url).status_code for e in events]
    assert answers == [200, 200, 200, 429]


@override_settings(
    PAYDESK=paydesk_config(security={"ENABLE_RATE_LIMITING": False, "RATE_LIMIT_REQUESTS": 1})
)
def test_rate_limiting_can_be_switched_off(client):
    assert [post(client, *d).status_code for d in _deliveries(3)] == [200, 200, 200]


# -- the order of the checks ------------------------------------------------------------------


@override_settings(
    PAYDESK=paydesk_config(
        options={"WEBHOOK_IP_ALLOWLIST": ["203.0.113.0/24"]},
        webhooks={"MAX_BODY_SIZE": 512},
        security={"RATE_LIMIT_REQUESTS": 1},
    )
)
@pytest.mark.usefixtures("frozen_rate_clock")
def test_checks_run_in_the_documented_order(client):
    big = b"{" + b" " * 600 + b"}"
    small = b"{}"
    forged = {"Paydesk-Sandbox-Signature": "t=1,v1=00"}
    # 404 before the size limit
    assert post(client, big, forged, url="/paydesk/webhooks/nope/").status_code == 404
    # 413 before the IP allowlist
    assert post(client, big, forged, REMOTE_ADDR="198.51.100.7").status_code == 413
    # 403 before the rate limit (a refused address does not use up an allowance)
    for _ in range(3):
        assert post(client, small, forged, REMOTE_ADDR="198.51.100.7").status_code == 403
    # 429 before the signature: the first forged one is counted and refused as forged...
    assert post(client, small, forged, REMOTE_ADDR="203.0.113.1").status_code == 400
    # ... the next one never reaches the signature check.
    assert post(client, small, forged, REMOTE_ADDR="203.0.113.1").status_code == 429
    assert WebhookEvent.objects.count() == 0


# -- a provider that cannot check signatures --------------------------------------------------


@override_settings(PAYDESK=paydesk_config(options={"WEBHOOK_SECRETS": ["", "whsec_x"]}))
def test_a_provider_with_an_unusable_secret_answers_503_and_stores_nothing(client):
    response = post(client, b"{}", {"Paydesk-Sandbox-Signature": "t=1,v1=00"})
    assert response.status_code == 503  # our fault: the provider retries once it is fixed
    assert response.json()["code"] == "provider_misconfigured"
    assert WebhookEvent.objects.count() == 0


def test_a_provider_that_cannot_verify_webhooks_is_not_a_500(mock):
    client = Client(raise_request_exception=False)
    response = post(client, b"{}", {}, url="/paydesk/webhooks/mock/")
    assert response.status_code == 404
    assert WebhookEvent.objects.count() == 0
