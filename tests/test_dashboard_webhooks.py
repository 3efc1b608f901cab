"""The dashboard's webhook monitor: cards, public URL, deliveries, replays and test webhooks.

Test webhooks go through the real pipeline (``paydesk.webhooks.pipeline.handle``) with each
provider's own ``verify_webhook``; the tests prove the verifier ran (a spy, and a tampered
body that is refused and leaves nothing behind) and that a test delivery changes no payment.
"""

from __future__ import annotations

import html
import re
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from paydesk.dashboard.views.webhooks import public_url_info
from paydesk.models import AuditLog, Payment, WebhookEvent
from paydesk.providers.base import TEST_WEBHOOK_EVENT_TYPE
from paydesk.providers.registry import get_payment_provider

from .test_webhooks_pipeline import (
    awaiting_payment,
    completed_payment,
    fresh_cache,  # noqa: F401  (a fixture, used through usefixtures)
    ledger_snapshot,
    paydesk_config,
    succeeded_event,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache", "config")]

MONITOR = "paydesk_dashboard:webhooks"
LIVE = "paydesk_dashboard:webhooks-live"
SIGNABLE = ("sandbox", "stripe", "nowpayments", "iyzico")

PROVIDERS: dict[str, Any] = {
    "stripe": {
        "BACKEND": "paydesk.providers.stripe.StripeProvider",
        "OPTIONS": {"SECRET_KEY": "sk_test_dashboard", "WEBHOOK_SECRET": "whsec_dashboard"},
    },
    # NOWPayments' default allowlist holds its notifier addresses; [] lets this server test.
    "nowpayments": {
        "BACKEND": "nowpayments",
        "OPTIONS": {"API_KEY": "np-key", "IPN_SECRET": "np-ipn", "WEBHOOK_IP_ALLOWLIST": []},
    },
    "iyzico": {
        "BACKEND": "iyzico",
        "OPTIONS": {"API_KEY": "iyz-api", "SECRET_KEY": "iyz-secret", "MODE": "sandbox"},
    },
    "paypal": {
        "BACKEND": "paydesk.providers.paypal.PayPalProvider",
        "OPTIONS": {"CLIENT_ID": "pp-id", "CLIENT_SECRET": "pp-secret", "WEBHOOK_ID": "WH-1"},
    },
}
CONFIG = paydesk_config(extra_providers=PROVIDERS)


@pytest.fixture
def config():
    with override_settings(PAYDESK=CONFIG):
        yield


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("watcher", password="pw", is_staff=True)


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_webhookevent"))
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


def stored(provider: str = "sandbox", status: str = "processed", **fields: Any) -> WebhookEvent:
    stored.count += 1  # type: ignore[attr-defined]
    defaults: dict[str, Any] = {
        "event_type": "payment.succeeded",
        "event_id": f"evt_{provider}_{stored.count}",  # type: ignore[attr-defined]
        "payload": {"id": "evt"},
        "success": status in ("processed", "ignored"),
        "processed": status in ("processed", "ignored", "dead"),
    }
    return WebhookEvent.objects.create(provider=provider, status=status, **{**defaults, **fields})


stored.count = 0  # type: ignore[attr-defined]


def card(page: str, alias: str) -> str:
    match = re.search(
        rf'<article class="card wh-card" data-webhook-provider="{alias}"(.*?)</article>', page, re.S
    )
    assert match, f"no card for {alias}"
    return match.group(1)


def field(fragment: str, name: str) -> str:
    match = re.search(rf'data-field="{name}"(?: data-value="[^"]*")?>(.*?)</dd>', fragment, re.S)
    assert match, f"no {name}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# -- who may see and act ------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse(MONITOR))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    delivery = stored()
    response = client.get(reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk]))
    assert response.status_code == 302


def test_signed_in_non_staff_are_refused(client, user):
    client.force_login(user)
    assert client.get(reverse(MONITOR)).status_code == 403
    assert client.get(reverse(LIVE)).status_code == 403
    response = client.post(reverse("paydesk_dashboard:webhook-test", args=["sandbox"]))
    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_staff_without_the_permission_see_but_cannot_act(staff_client):
    failed = stored(status="failed", error_message="boom", attempts=1)
    page = staff_client.get(reverse(MONITOR)).content.decode()
    assert "data-test-webhook=" not in page
    assert "data-no-permission" in page

    urls = [
        reverse("paydesk_dashboard:webhook-replay", args=[failed.pk]),
        reverse("paydesk_dashboard:webhooks-replay-failed"),
        reverse("paydesk_dashboard:webhook-test", args=["sandbox"]),
    ]
    for url in urls:
        assert staff_client.post(url).status_code == 403
    failed.refresh_from_db()
    assert failed.status == "failed"
    assert failed.attempts == 1
    assert WebhookEvent.objects.count() == 1
    assert not AuditLog.objects.exists()


def test_actions_refuse_get_and_unknown_targets(operator_client):
    delivery = stored(status="failed")
    for url in (
        reverse("paydesk_dashboard:webhook-replay", args=[delivery.pk]),
        reverse("paydesk_dashboard:webhooks-replay-failed"),
        reverse("paydesk_dashboard:webhook-test", args=["sandbox"]),
    ):
        assert operator_client.get(url).status_code == 405
    assert (
        operator_client.get(
            reverse("paydesk_dashboard:webhook-delivery", args=[999999])
        ).status_code
        == 404
    )
    assert (
        operator_client.post(reverse("paydesk_dashboard:webhook-replay", args=[999999])).status_code
        == 404
    )
    assert (
        operator_client.post(reverse("paydesk_dashboard:webhook-test", args=["nope"])).status_code
        == 404
    )
    replay_all = reverse("paydesk_dashboard:webhooks-replay-failed")
    assert operator_client.post(replay_all, {"provider": "<script>"}).status_code == 404


# -- provider cards -----------------------------------------------------------------------------


def test_cards_show_url_copy_button_signature_and_counts(staff_client):
    for status in ("processed", "processed", "ignored", "failed", "dead", "pending"):
        stored("sandbox", status)
    stored("stripe", "failed")
    page = staff_client.get(reverse(MONITOR)).content.decode()

    sandbox = card(page, "sandbox")
    url = "http://testserver/paydesk/webhooks/sandbox/"
    assert f"<code data-webhook-url>{url}</code>" in sandbox
    assert f'data-copy="{url}"' in sandbox
    assert "data-copy-status" in sandbox
    assert field(sandbox, "signature-header") == "Paydesk-Sandbox-Signature"
    assert field(sandbox, "signature-algorithm") == "HMAC-SHA256"
    # 3 succeeded (processed, ignored) of 5 finished; pending is not finished yet.
    assert field(sandbox, "success-rate").startswith("60.0 %")
    assert field(sandbox, "backlog") == "2"  # pending + failed
    assert field(sandbox, "failing").startswith("2")  # failed + dead
    assert field(card(page, "stripe"), "backlog") == "1"
    assert field(card(page, "iyzico"), "success-rate") == "—"
    assert (
        'data-stat="backlog"><div class="label">Backlog</div><div class="value" data-value="3"'
        in page
    )
    # Live region, polling like the overview's.
    assert 'hx-trigger="every 30s [!document.hidden], paydesk:refresh"' in page
    assert reverse(LIVE) in page


def test_live_fragment_is_the_cards_alone(staff_client):
    stored("sandbox", "failed")
    response = staff_client.get(reverse(LIVE))
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert 'data-webhook-provider="sandbox"' in body


def test_only_signable_providers_offer_a_test_webhook(operator_client):
    page = operator_client.get(reverse(MONITOR)).content.decode()
    for alias in SIGNABLE:
        assert f'data-test-webhook="{alias}"' in card(page, alias)
    paypal = card(page, "paypal")
    assert 'data-test-webhook="paypal"' not in paypal
    assert 'data-test-unavailable="paypal"' in paypal
    assert "private key" in html.unescape(paypal)


def test_a_provider_without_a_secret_or_allowing_other_ips_says_why(operator_client):
    providers = {
        **PROVIDERS,
        "stripe": {
            "BACKEND": "paydesk.providers.stripe.StripeProvider",
            "OPTIONS": {"SECRET_KEY": "sk"},
        },
        "nowpayments": {"BACKEND": "nowpayments", "OPTIONS": {"API_KEY": "k", "IPN_SECRET": "s"}},
    }
    with override_settings(PAYDESK=paydesk_config(extra_providers=providers)):
        page = html.unescape(operator_client.get(reverse(MONITOR)).content.decode())
        assert "OPTIONS['WEBHOOK_SECRET']" in card(page, "stripe")
        assert "allowlist" in card(page, "nowpayments")
        response = operator_client.post(
            reverse("paydesk_dashboard:webhook-test", args=["nowpayments"]), follow=True
        )
    assert any("allowlist" in m for m in messages_of(response))
    assert not WebhookEvent.objects.exists()


# -- public URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "reachable"),
    [
        ("https://pay.example.com", True),
        ("https://203.0.113.9", False),  # TEST-NET: reserved, never routed
        ("https://8.8.8.8", True),
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://192.168.1.20", False),
        ("http://10.0.0.5", False),
        ("http://[::1]:8000", False),
        ("http://shop.local", False),
        ("http://devbox", False),
    ],
)
def test_public_url_reachability(rf, base, reachable):
    with override_settings(PAYDESK={**CONFIG, "PUBLIC_BASE_URL": base}):
        info = public_url_info(rf.get("/"))
    assert info["base_url"] == base
    assert info["from_setting"]
    assert (info["problem"] == "") is reachable, info["problem"]


def test_public_url_card_warns_and_points_to_the_tunnel(staff_client):
    page = staff_client.get(reverse(MONITOR)).content.decode()
    assert 'data-reachable="false"' in page
    assert "data-public-url-warning" in page
    assert "runserver_tunnel" in page
    assert "PUBLIC_BASE_URL" in page
    with override_settings(PAYDESK={**CONFIG, "PUBLIC_BASE_URL": "https://pay.example.com"}):
        page = staff_client.get(reverse(MONITOR)).content.decode()
    assert 'data-reachable="true"' in page
    assert "data-public-url-warning" not in page
    assert "<code data-webhook-url>https://pay.example.com/paydesk/webhooks/sandbox/</code>" in page


# -- deliveries list and detail -----------------------------------------------------------------


def test_deliveries_filter_by_provider_status_and_event_type(staff_client):
    a = stored("sandbox", "failed", event_type="payment.failed")
    b = stored("sandbox", "processed", event_type="payment.succeeded")
    c = stored("stripe", "failed", event_type="payment_intent.succeeded")

    def listed(**query: str) -> set[int]:
        page = staff_client.get(reverse(MONITOR), query).content.decode()
        return {int(pk) for pk in re.findall(r'<tr data-delivery="(\d+)"', page)}

    assert listed() == {a.pk, b.pk, c.pk}
    assert listed(provider="sandbox") == {a.pk, b.pk}
    assert listed(status="failed") == {a.pk, c.pk}
    assert listed(provider="sandbox", status="failed") == {a.pk}
    assert listed(event_type="payment_intent.succeeded") == {c.pk}
    assert listed(status="bogus") == {a.pk, b.pk, c.pk}  # an invalid filter is ignored


def _list_queries(client: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse(MONITOR)).status_code == 200
    return len(queries)


def test_the_monitor_takes_the_same_number_of_queries_for_more_deliveries(staff_client):
    for provider in ("sandbox", "stripe"):
        stored(provider, "failed", error_message="x")
    few = _list_queries(staff_client)
    for index in range(40):
        stored(
            ("sandbox", "stripe", "iyzico", "nowpayments")[index % 4],
            ("failed", "processed", "pending")[index % 3],
        )
    assert _list_queries(staff_client) == few


def test_pagination_keeps_the_filters(staff_client):
    for _ in range(3):
        stored("sandbox", "failed")
    with override_settings(PAYDESK={**CONFIG, "DASHBOARD": {"PAGE_SIZE": 2}}):
        page = staff_client.get(reverse(MONITOR), {"status": "failed"}).content.decode()
        assert "status=failed&amp;page=2" in page
        second = staff_client.get(
            reverse(MONITOR), {"status": "failed", "page": 2}
        ).content.decode()
    assert len(re.findall(r'<tr data-delivery="', second)) == 1


def test_detail_escapes_everything_the_sender_wrote(staff_client):
    hostile = "<script>alert('x')</script>"
    delivery = stored(
        "sandbox",
        "failed",
        payload={"id": "evt", "note": hostile, hostile: 1},
        headers={"X-Evil": hostile},
        error_message=hostile,
        traceback=f"Traceback ... {hostile}",
        event_type=hostile,
    )
    page = staff_client.get(
        reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk])
    ).content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&quot;note&quot;: &quot;&lt;script&gt;" in page  # pretty-printed JSON, escaped
    listing = staff_client.get(reverse(MONITOR)).content.decode()
    assert "<script>alert" not in listing


def test_detail_of_an_unparseable_body_shows_it_raw(staff_client):
    delivery = stored("sandbox", "dead", payload=None, body="not json <b>", error_message="bad")
    page = staff_client.get(
        reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk])
    ).content.decode()
    assert 'data-field="body"' in page
    assert "not json &lt;b&gt;" in page
    assert 'data-action="replay-delivery"' not in page  # it can never be processed


# -- replay -------------------------------------------------------------------------------------


def _failed_delivery(charge: Any) -> WebhookEvent:
    event = succeeded_event(charge)
    return stored(
        "sandbox",
        "failed",
        event_id=event["id"],
        event_type=event["type"],
        payload=event,
        error_message="WebhookError: No sandbox payment matches",
        attempts=1,
    )


def test_replay_fixes_a_failed_delivery(operator_client):
    payment, charge = awaiting_payment()
    delivery = _failed_delivery(charge)
    detail = reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk])
    assert 'data-action="replay-delivery"' in operator_client.get(detail).content.decode()

    response = operator_client.post(
        reverse("paydesk_dashboard:webhook-replay", args=[delivery.pk]), follow=True
    )
    assert response.redirect_chain[-1][0] == detail
    assert any("1 replayed, 1 succeeded, 0 failed" in m for m in messages_of(response))
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    assert delivery.success
    assert Payment.objects.get(pk=payment.pk).status == "completed"
    assert AuditLog.objects.filter(action="webhook_replayed", object_id=str(delivery.pk)).exists()

    # Again: nothing to do, nothing applied twice.
    before = ledger_snapshot()
    response = operator_client.post(
        reverse("paydesk_dashboard:webhook-replay", args=[delivery.pk]), follow=True
    )
    assert any("nothing to replay" in m for m in messages_of(response))
    assert ledger_snapshot() == before


def test_replay_all_failed_of_one_provider_or_all(operator_client):
    _, charge = awaiting_payment()
    sandbox_failed = _failed_delivery(charge)
    stripe_failed = stored(
        "stripe",
        "failed",
        payload={
            "id": "evt_x",
            "object": "event",
            "type": "customer.created",
            "data": {"object": {}},
        },
        event_type="customer.created",
    )
    url = reverse("paydesk_dashboard:webhooks-replay-failed")
    response = operator_client.post(url, {"provider": "sandbox"}, follow=True)
    assert any(
        "Failed deliveries of sandbox: 1 replayed, 1 succeeded" in m for m in messages_of(response)
    )
    sandbox_failed.refresh_from_db()
    stripe_failed.refresh_from_db()
    assert sandbox_failed.status == "processed"
    assert stripe_failed.status == "failed"

    response = operator_client.post(url, follow=True)
    assert any(
        "All failed deliveries: 1 replayed, 1 succeeded, 0 failed" in m
        for m in messages_of(response)
    )
    stripe_failed.refresh_from_db()
    assert stripe_failed.status == "ignored"


def test_a_replay_that_fails_again_is_reported(operator_client):
    delivery = stored(
        "sandbox",
        "failed",
        payload={
            "id": "evt_gone",
            "type": "payment.succeeded",
            "data": {
                "object": {
                    "id": "ch_none",
                    "currency": "USD",
                    "status": "captured",
                    "amount": "1.00",
                    "captured_amount": "1.00",
                }
            },
        },
    )
    response = operator_client.post(
        reverse("paydesk_dashboard:webhook-replay", args=[delivery.pk]), follow=True
    )
    assert any("1 replayed, 0 succeeded, 1 failed" in m for m in messages_of(response))
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "No sandbox payment" in delivery.error_message


# -- test webhooks ------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", SIGNABLE)
def test_a_test_webhook_is_verified_stored_and_shown(operator_client, alias):
    provider = get_payment_provider(alias)
    real_verify = type(provider).verify_webhook
    with mock.patch.object(
        type(provider), "verify_webhook", autospec=True, side_effect=real_verify
    ) as spy:
        response = operator_client.post(
            reverse("paydesk_dashboard:webhook-test", args=[alias]), follow=True
        )
    assert spy.call_count == 1  # the provider's own verifier, on the signed bytes

    delivery = WebhookEvent.objects.get(provider=alias)
    assert delivery.status == "ignored"
    assert delivery.success
    assert "paydesk_test_" in delivery.event_id
    assert delivery.signature
    assert delivery.ip_address == "127.0.0.1"
    assert TEST_WEBHOOK_EVENT_TYPE in delivery.body

    page = response.content.decode()
    assert f'data-test-result="{alias}" data-http-status="200" data-outcome="ignored"' in page
    link = reverse("paydesk_dashboard:webhook-delivery", args=[delivery.pk])
    assert f'href="{link}" data-test-delivery-link' in page
    assert f'data-delivery="{delivery.pk}"' in page  # in the deliveries list too
    assert AuditLog.objects.filter(action="webhook_test_sent", provider=alias).exists()
    # The result is shown once.
    assert "data-test-result" not in operator_client.get(reverse(MONITOR)).content.decode()


def test_a_tampered_test_webhook_is_refused_by_the_verifier_and_not_stored(operator_client):
    provider = get_payment_provider("stripe")
    real_build = type(provider).build_test_webhook

    def tampered(self: Any, *, event_id: str) -> tuple[dict[str, str], bytes]:
        headers, body = real_build(self, event_id=event_id)
        return headers, body.replace(b"paydesk_test_", b"paydesk_tEst_")

    with mock.patch.object(type(provider), "build_test_webhook", tampered):
        response = operator_client.post(
            reverse("paydesk_dashboard:webhook-test", args=["stripe"]), follow=True
        )
    page = response.content.decode()
    assert 'data-http-status="400"' in page
    assert "Nothing was stored" in page
    assert not WebhookEvent.objects.exists()


def test_test_webhooks_change_no_payment(operator_client):
    waiting, _ = awaiting_payment()
    done, _ = completed_payment()
    before = ledger_snapshot()
    for alias in SIGNABLE:
        operator_client.post(reverse("paydesk_dashboard:webhook-test", args=[alias]))
    assert WebhookEvent.objects.filter(status="ignored").count() == len(SIGNABLE)
    assert ledger_snapshot() == before
    assert Payment.objects.get(pk=waiting.pk).status == "requires_action"
    assert Payment.objects.get(pk=done.pk).status == "completed"
    assert not WebhookEvent.objects.exclude(payment_id="").exists()


def test_paypal_cannot_send_a_test_webhook(operator_client):
    response = operator_client.post(
        reverse("paydesk_dashboard:webhook-test", args=["paypal"]), follow=True
    )
    assert any("PayPal signs its webhooks" in m for m in messages_of(response))
    assert not WebhookEvent.objects.exists()
