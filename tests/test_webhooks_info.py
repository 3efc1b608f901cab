"""The read-only webhook endpoints: providers (staff), health (anyone), stats (staff).

Also the system check that keeps a provider alias off the path segments they use.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from paydesk.checks import paydesk_checks
from paydesk.models import WebhookEvent
from paydesk.providers.base import PaymentProvider
from paydesk.providers.sandbox.webhooks import build_event, charge_snapshot, signed_delivery
from paydesk.types import Capability
from paydesk.webhooks.info import (
    RESERVED_SEGMENTS,
    can_view_webhook_info,
    pipeline_health,
    pipeline_stats,
)

from .test_webhooks_pipeline import (
    awaiting_payment,
    fresh_cache,  # noqa: F401  (a fixture, used through usefixtures)
    paydesk_config,
    post,
    sandbox,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

PROVIDERS_URL = "/paydesk/webhooks/providers/"
HEALTH_URL = "/paydesk/webhooks/health/"
STATS_URL = "/paydesk/webhooks/stats/"


class SignedProvider(PaymentProvider):
    """A webhook provider that needs credentials it has not been given."""

    display_name = "Signed"
    icon = "lock"
    capabilities = frozenset({Capability.WEBHOOKS})
    webhook_signature_header = "X-Signed-Signature"
    webhook_signature_algorithm = "HMAC-SHA512"
    required_options = ("WEBHOOK_SECRET",)


CONFIG = paydesk_config(
    extra_providers={
        "signed": {"BACKEND": "tests.test_webhooks_info.SignedProvider"},
        "quiet": {"BACKEND": "tests.test_webhooks_pipeline.NoWebhooksProvider"},
        "broken": {"BACKEND": "no.such.module.Provider"},
    }
)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


_ids = itertools.count()


def stored(
    status: str,
    *,
    provider: str = "sandbox",
    event_type: str = "payment.succeeded",
    age: dt.timedelta = dt.timedelta(minutes=5),
    latency: dt.timedelta | None = None,
) -> WebhookEvent:
    """A delivery row as the pipeline leaves it, received ``age`` ago."""
    success = status in ("processed", "ignored")
    delivery = WebhookEvent.objects.create(
        provider=provider,
        event_id=f"evt_{next(_ids)}",
        event_type=event_type,
        payload={},
        status=status,
        success=success,
        processed=success or status == "dead",
    )
    created = timezone.now() - age
    processed_at = None
    if success:
        processed_at = created + (latency if latency is not None else dt.timedelta(seconds=1))
    WebhookEvent.objects.filter(pk=delivery.pk).update(
        created_at=created, processed_at=processed_at
    )
    delivery.refresh_from_db()
    return delivery


# -- who may look -----------------------------------------------------------------------------


def test_the_urls_are_named_and_come_before_the_universal_endpoint():
    assert reverse("paydesk:webhook-providers") == PROVIDERS_URL
    assert reverse("paydesk:webhook-health") == HEALTH_URL
    assert reverse("paydesk:webhook-stats") == STATS_URL
    assert sorted(RESERVED_SEGMENTS) == ["health", "providers", "stats"]


@override_settings(PAYDESK=CONFIG)
@pytest.mark.parametrize("url", [PROVIDERS_URL, STATS_URL])
def test_providers_and_stats_are_for_staff_only(client, django_user_model, url):
    anonymous = client.get(url)
    assert anonymous.status_code == 403
    assert anonymous.json()["code"] == "forbidden"

    user = django_user_model.objects.create_user(username="cust", password="pw")
    client.force_login(user)
    assert client.get(url).status_code == 403

    user.is_staff = True
    user.save()
    assert client.get(url).status_code == 200

    user.is_active = False
    user.save()
    assert client.get(url).status_code == 403


def test_can_view_webhook_info_is_the_one_permission(rf, django_user_model):
    request = rf.get("/")
    assert not can_view_webhook_info(request)  # no user at all (no auth middleware)
    request.user = django_user_model(username="x", is_staff=True, is_active=True)
    assert can_view_webhook_info(request)
    request.user = django_user_model(username="y", is_staff=False, is_active=True)
    assert not can_view_webhook_info(request)


@pytest.mark.parametrize("url", [PROVIDERS_URL, HEALTH_URL, STATS_URL])
def test_the_info_endpoints_are_read_only(staff_client, url):
    assert staff_client.post(url, data=b"{}", content_type="application/json").status_code == 405
    assert staff_client.head(url).status_code in (200, 503)


# -- providers --------------------------------------------------------------------------------


@override_settings(PAYDESK=CONFIG)
def test_providers_lists_every_webhook_provider_with_its_absolute_url(staff_client):
    response = staff_client.get(PROVIDERS_URL)

    assert response.status_code == 200
    listed = {p["name"]: p for p in response.json()["providers"]}
    assert set(listed) == {"sandbox", "signed"}  # no webhook-less or unbuildable provider
    assert listed["sandbox"] == {
        "name": "sandbox",
        "display_name": "Sandbox",
        "icon": "flask",
        "webhook_url": "http://testserver/paydesk/webhooks/sandbox/",
        "signature_header": "Paydesk-Sandbox-Signature",
        "signature_algorithm": "HMAC-SHA256",
        "configured": True,
    }
    assert listed["signed"]["configured"] is False
    assert listed["signed"]["signature_header"] == "X-Signed-Signature"
    assert listed["signed"]["signature_algorithm"] == "HMAC-SHA512"


@override_settings(PAYDESK={**CONFIG, "PUBLIC_BASE_URL": "https://pay.example.com/"})
def test_provider_urls_use_the_public_base_url_when_set(staff_client):
    response = staff_client.get(PROVIDERS_URL, headers={"host": "internal:8000"})
    urls = {p["name"]: p["webhook_url"] for p in response.json()["providers"]}
    assert urls["sandbox"] == "https://pay.example.com/paydesk/webhooks/sandbox/"


@override_settings(PAYDESK=CONFIG)
def test_provider_urls_follow_the_request_without_a_public_base_url(staff_client):
    response = staff_client.get(PROVIDERS_URL, secure=True, headers={"host": "shop.example"})
    urls = {p["name"]: p["webhook_url"] for p in response.json()["providers"]}
    assert urls["sandbox"] == "https://shop.example/paydesk/webhooks/sandbox/"


# -- health -----------------------------------------------------------------------------------

HEALTH_KEYS = {"status", "backlog", "oldest_pending_age_seconds", "failure_rate_1h", "dead"}


@override_settings(PAYDESK=CONFIG)
def test_health_of_an_idle_pipeline_is_ok_and_needs_no_login(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get(HEALTH_URL)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "backlog": 0,
        "oldest_pending_age_seconds": None,
        "failure_rate_1h": 0.0,
        "dead": 0,
    }


@override_settings(PAYDESK=paydesk_config(webhooks={"UNHEALTHY_BACKLOG": 3}))
def test_health_reports_the_backlog_and_turns_503_above_the_threshold(client):
    stored("pending", age=dt.timedelta(seconds=120))
    stored("processing", age=dt.timedelta(seconds=30))
    stored("failed", age=dt.timedelta(seconds=10))
    stored("processed", age=dt.timedelta(days=3))  # handled: not backlog
    stored("dead", age=dt.timedelta(days=3))  # given up: counted apart

    report = client.get(HEALTH_URL).json()
    assert report["status"] == "ok"
    assert report["backlog"] == 3
    assert 119 <= report["oldest_pending_age_seconds"] <= 130
    assert report["dead"] == 1

    stored("pending", age=dt.timedelta(seconds=1))
    response = client.get(HEALTH_URL)
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["backlog"] == 4
    assert set(response.json()) == HEALTH_KEYS  # numbers only, whoever asks


@override_settings(PAYDESK=CONFIG)
def test_health_turns_503_when_most_recent_deliveries_fail(client):
    for _ in range(4):
        stored("processed")
    for _ in range(5):
        stored("dead")
    # Nine finished deliveries in the hour are too few to judge.
    report = client.get(HEALTH_URL)
    assert report.status_code == 200
    assert report.json()["failure_rate_1h"] == pytest.approx(5 / 9, abs=1e-3)

    stored("failed")  # ten: 6 of 10 failing > 0.5
    response = client.get(HEALTH_URL)
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["failure_rate_1h"] == 0.6


@override_settings(PAYDESK=paydesk_config(webhooks={"UNHEALTHY_FAILURE_RATE": 0.8}))
def test_health_failure_rate_counts_only_the_last_hour_and_its_threshold_is_a_setting(client):
    for _ in range(20):
        stored("dead", age=dt.timedelta(hours=2))  # an old outage
    for _ in range(3):
        stored("processed")
    for _ in range(7):
        stored("dead")
    response = client.get(HEALTH_URL)
    assert response.status_code == 200  # 0.7 <= 0.8
    assert response.json()["failure_rate_1h"] == 0.7
    assert response.json()["dead"] == 27


@override_settings(PAYDESK=CONFIG)
def test_pipeline_health_is_one_query_whatever_the_volume(django_assert_num_queries):
    for status in ("pending", "failed", "processed", "dead", "ignored") * 5:
        stored(status)
    with django_assert_num_queries(1):
        report = pipeline_health()
    assert report["backlog"] == 10


# -- stats ------------------------------------------------------------------------------------


def _mixed() -> None:
    stored("processed", latency=dt.timedelta(seconds=1))
    stored("processed", latency=dt.timedelta(seconds=2), event_type="refund.succeeded")
    stored("ignored", latency=dt.timedelta(seconds=10), event_type="customer.updated")
    stored("failed", provider="stripe")
    stored("dead", provider="stripe", event_type="refund.succeeded")
    stored("pending", provider="stripe")
    stored("processed", age=dt.timedelta(days=10), latency=dt.timedelta(seconds=100))


@override_settings(PAYDESK=CONFIG)
def test_stats_count_by_provider_event_type_and_outcome(staff_client):
    _mixed()
    response = staff_client.get(STATS_URL)

    assert response.status_code == 200
    stats = response.json()
    assert stats["days"] == 7
    assert stats["total"] == 6
    assert stats["by_provider"] == {"sandbox": 3, "stripe": 3}
    assert stats["by_event_type"] == {
        "payment.succeeded": 3,
        "refund.succeeded": 2,
        "customer.updated": 1,
    }
    assert stats["by_status"] == {
        "pending": 1,
        "processing": 0,
        "processed": 2,
        "ignored": 1,
        "failed": 1,
        "dead": 1,
    }
    assert stats["success_rate"] == 0.6  # 3 handled of 5 with an outcome
    assert stats["median_latency_seconds"] == 2.0
    since = dt.datetime.fromisoformat(stats["since"])
    assert abs((timezone.now() - dt.timedelta(days=7) - since).total_seconds()) < 60


@override_settings(PAYDESK=CONFIG)
def test_stats_window_and_even_median(staff_client):
    _mixed()
    stats = staff_client.get(STATS_URL, {"days": "30"}).json()
    assert stats["total"] == 7
    assert stats["median_latency_seconds"] == 6.0  # (2 + 10) / 2 over 1, 2, 10, 100
    one_day = staff_client.get(STATS_URL, {"days": "1"}).json()
    assert one_day["total"] == 6


@override_settings(PAYDESK=CONFIG)
def test_stats_of_an_empty_window(staff_client):
    stats = staff_client.get(STATS_URL, {"days": "90"}).json()
    assert stats["total"] == 0
    assert stats["by_provider"] == {}
    assert stats["by_event_type"] == {}
    assert stats["success_rate"] is None
    assert stats["median_latency_seconds"] is None


@override_settings(PAYDESK=CONFIG)
@pytest.mark.parametrize("days", ["0", "91", "-1", "abc", "7.5", "", "1e3"])
def test_stats_refuse_a_days_value_outside_1_to_90(staff_client, days):
    response = staff_client.get(STATS_URL, {"days": days})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "90" in response.json()["message"]


@override_settings(PAYDESK=CONFIG)
def test_stats_take_a_constant_number_of_queries(
    staff_client, django_assert_max_num_queries, django_assert_num_queries
):
    _mixed()
    with django_assert_max_num_queries(2):
        pipeline_stats(days=7)

    def queries_for_request() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(STATS_URL).status_code == 200
        return len(captured)

    few = queries_for_request()
    for index in range(40):
        stored(
            ("processed", "ignored", "failed", "dead")[index % 4],
            provider=("sandbox", "stripe")[index % 2],
            event_type=f"type.{index % 5}",
            latency=dt.timedelta(seconds=index),
        )
    assert queries_for_request() == few
    assert few <= 4  # the session and user lookups, then at most two for the figures


@override_settings(PAYDESK=CONFIG)
def test_an_unknown_event_type_is_visible_in_stats(staff_client):
    _, charge = awaiting_payment()
    event = build_event("customer.updated", charge_snapshot(charge))
    assert post(staff_client, *signed_delivery(sandbox(), event)).json()["status"] == "ignored"
    stats = staff_client.get(STATS_URL).json()
    assert stats["by_event_type"] == {"customer.updated": 1}
    assert stats["by_status"]["ignored"] == 1
    assert stats["success_rate"] == 1.0
    assert stats["median_latency_seconds"] is not None


# -- the reserved aliases ---------------------------------------------------------------------


def _ids_for(config: dict[str, Any]) -> list[str]:
    with override_settings(PAYDESK=config):
        return [m.id for m in paydesk_checks() if m.level >= checks.ERROR]


@pytest.mark.parametrize("alias", sorted(RESERVED_SEGMENTS))
def test_a_provider_alias_equal_to_a_reserved_segment_is_error_e011(alias):
    config = paydesk_config(
        extra_providers={alias: {"BACKEND": "paydesk.providers.sandbox.SandboxProvider"}}
    )
    with override_settings(PAYDESK=config):
        messages = [m for m in paydesk_checks() if m.id == "paydesk.E011"]
    assert len(messages) == 1
    assert alias in messages[0].msg
    assert messages[0].hint
    assert "Rename" in messages[0].hint


def test_ordinary_aliases_pass_the_reserved_segment_check():
    config = paydesk_config(
        extra_providers={
            "healthy": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider"},
            "stats2": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider"},
        }
    )
    assert "paydesk.E011" not in _ids_for(config)


@override_settings(
    PAYDESK=paydesk_config(
        extra_providers={"health": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider"}}
    )
)
def test_why_the_check_exists_a_reserved_alias_never_reaches_the_pipeline(client):
    from paydesk.providers.registry import get_payment_provider

    body, headers = signed_delivery(get_payment_provider("health"), {"id": "evt_1", "type": "x"})
    assert post(client, body, headers, url="/paydesk/webhooks/health/").status_code == 405
    assert not WebhookEvent.objects.exists()
