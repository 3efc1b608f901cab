"""paydesk.metrics: counters move with real payments, refunds and deliveries; the endpoint."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse

from paydesk import metrics, services
from paydesk.conf import paydesk_settings
from paydesk.exceptions import ProviderUnavailable
from paydesk.health import ProviderHealthChecker
from paydesk.models import WebhookEvent
from paydesk.services.webhooks import receive_webhook
from paydesk.testing import MockPaymentProvider
from paydesk.types import InboundWebhook, RefundResult

pytestmark = pytest.mark.skipif(not metrics.AVAILABLE, reason="prometheus_client not installed")


def sample(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class Delta:
    """How much each named sample moved while the block ran."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.samples = samples

    def __enter__(self) -> Delta:
        self.before = [sample(name, **labels) for name, labels in self.samples]
        return self

    def __exit__(self, *exc: object) -> None:
        after = [sample(name, **labels) for name, labels in self.samples]
        self.moved = [a - b for a, b in zip(after, self.before, strict=True)]


def payments(provider: str, status: str) -> tuple[str, dict[str, str]]:
    return ("paydesk_payments_total", {"provider": provider, "status": status})


def refunds(provider: str, status: str) -> tuple[str, dict[str, str]]:
    return ("paydesk_refunds_total", {"provider": provider, "status": status})


@pytest.mark.django_db
def test_payments_are_counted_by_provider_and_status(django_capture_on_commit_callbacks):
    # Signals (and so the counts) go out when the transaction commits.
    with (
        Delta(
            payments("sandbox", "created"),
            payments("sandbox", "completed"),
            payments("sandbox", "failed"),
        ) as delta,
        django_capture_on_commit_callbacks(execute=True),
    ):
        ok = services.create_payment(amount="10.00", currency="USD")
        services.process_payment(payment=ok, payment_method_token="pm_sandbox_visa")
        declined = services.create_payment(amount="10.00", currency="USD")
        services.process_payment(payment=declined, payment_method_token="pm_sandbox_declined")

    assert delta.moved == [2, 1, 1]


@pytest.mark.django_db
def test_refunds_are_counted_by_outcome(
    mock: MockPaymentProvider, django_capture_on_commit_callbacks
):
    payment = services.create_payment(amount="30.00", currency="USD", provider="mock")
    payment = services.process_payment(payment=payment)
    with (
        Delta(refunds("mock", "completed"), refunds("mock", "failed")) as delta,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.create_refund(payment=payment, amount="10.00")
        mock.set_next_refund_result(RefundResult(status="failed"))
        services.create_refund(payment=payment, amount="5.00")

    assert delta.moved == [1, 1]


@pytest.mark.django_db
def test_webhook_deliveries_are_counted_by_outcome():
    def delivery(event_id: str) -> WebhookEvent:
        stored, created = receive_webhook(
            provider="sandbox",
            inbound=InboundWebhook(event_id=event_id, event_type="charge.succeeded", payload={}),
            body=b"{}",
            headers={},
            ip_address="127.0.0.1",
        )
        assert created
        return stored

    labels = [
        ("paydesk_webhook_deliveries_total", {"provider": "sandbox", "outcome": outcome})
        for outcome in ("received", "processed", "ignored", "failed", "dead")
    ]
    with Delta(*labels) as delta:
        delivery("evt_1").mark_success()
        delivery("evt_2").mark_success(ignored=True)
        failing = delivery("evt_3")
        failing.mark_failed("boom")
        failing.mark_failed("boom again", dead=True)
        failing.schedule_retry(10)  # not an outcome

    assert delta.moved == [3, 1, 1, 1, 1]


@pytest.mark.django_db
def test_a_resend_and_rows_saved_outside_the_pipeline_are_not_received_deliveries():
    received = ("paydesk_webhook_deliveries_total", {"provider": "sandbox", "outcome": "received"})
    inbound = InboundWebhook(event_id="evt_again", event_type="charge.succeeded", payload={})
    store = {"provider": "sandbox", "body": b"{}", "headers": {}, "ip_address": None}
    with Delta(received) as delta:
        receive_webhook(inbound=inbound, **store)
        receive_webhook(inbound=inbound, **store)  # the provider sent it again
        # A row a project writes itself is not a delivery received from a provider.
        WebhookEvent.objects.create(provider="sandbox", event_id="evt_manual", payload={})
    assert delta.moved == [1]


def test_provider_calls_are_timed_and_errors_counted_by_code():
    calls = "paydesk_provider_call_duration_seconds_count"
    errors = "paydesk_provider_call_errors_total"
    with Delta(
        (calls, {"provider": "p", "operation": "sync"}),
        (errors, {"provider": "p", "operation": "sync", "code": "provider_unavailable"}),
        (errors, {"provider": "p", "operation": "sync", "code": "exception"}),
    ) as delta:
        with metrics.observe_provider_call("p", "sync"):
            pass
        with pytest.raises(ProviderUnavailable), metrics.observe_provider_call("p", "sync"):
            raise ProviderUnavailable("down")
        with pytest.raises(ZeroDivisionError), metrics.observe_provider_call("p", "sync"):
            _ = 1 / 0

    assert delta.moved == [3, 1, 1]


def test_health_checks_are_timed():
    with Delta(
        (
            "paydesk_provider_call_duration_seconds_count",
            {"provider": "sandbox", "operation": "health_check"},
        )
    ) as delta:
        ProviderHealthChecker().check_provider("sandbox")
    assert delta.moved == [1]


@pytest.mark.django_db
def test_nothing_is_counted_when_disabled(django_capture_on_commit_callbacks):
    config = {**paydesk_settings.user_settings, "METRICS": {"ENABLED": False}}
    with (
        Delta(payments("sandbox", "created")) as delta,
        override_settings(PAYDESK=config),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.create_payment(amount="1.00", currency="USD")
        with metrics.observe_provider_call("sandbox", "sync"):
            pass
    assert delta.moved == [0]


@pytest.mark.django_db
def test_without_prometheus_client_everything_is_a_no_op(
    monkeypatch, client, django_user_model, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(metrics, "AVAILABLE", False)
    assert not metrics.enabled()
    with (
        Delta(payments("sandbox", "created")) as delta,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.create_payment(amount="1.00", currency="USD")
        metrics.count_webhook("sandbox", "received")
        with metrics.observe_provider_call("sandbox", "sync"):
            pass
    assert delta.moved == [0]

    staff = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    client.force_login(staff)
    response = client.get(reverse("paydesk:metrics"))
    assert response.status_code == 501
    assert "django-paydesk[metrics]" in response.json()["message"]


# -- the endpoint -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_endpoint_is_for_staff(client, django_user_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.create_payment(amount=Decimal("2.00"), currency="USD")

    anonymous = client.get(reverse("paydesk:metrics"))
    user = django_user_model.objects.create_user(username="u", password="pw")
    client.force_login(user)
    customer = client.get(reverse("paydesk:metrics"))
    staff = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    client.force_login(staff)
    allowed = client.get(reverse("paydesk:metrics"))

    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert customer.status_code == 401
    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")
    text = allowed.content.decode()
    assert 'paydesk_payments_total{provider="sandbox",status="created"}' in text
    assert "# TYPE paydesk_provider_call_duration_seconds histogram" in text
    assert reverse("paydesk:metrics") == "/paydesk/metrics/"


@pytest.mark.django_db
def test_a_scraper_reads_with_the_bearer_token(client, monkeypatch):
    monkeypatch.setenv("PAYDESK_TEST_METRICS_TOKEN", "s3cret-token")
    from paydesk.conf import env

    token = env("PAYDESK_TEST_METRICS_TOKEN")
    config = {**paydesk_settings.user_settings, "METRICS": {"TOKEN": token}}
    url = reverse("paydesk:metrics")
    with override_settings(PAYDESK=config):
        good = client.get(url, headers={"Authorization": "Bearer s3cret-token"})
        wrong = client.get(url, headers={"Authorization": "Bearer nope"})
        basic = client.get(url, headers={"Authorization": "Basic s3cret-token"})
    without = client.get(url, headers={"Authorization": "Bearer "})

    assert good.status_code == 200
    assert b"# HELP paydesk_payments_total" in good.content
    assert (wrong.status_code, basic.status_code, without.status_code) == (401, 401, 401)


@pytest.mark.django_db
def test_several_processes_are_aggregated_with_the_multiprocess_dir(client, monkeypatch, tmp_path):
    # With PROMETHEUS_MULTIPROC_DIR the endpoint reads every process's files (here: none yet).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body, content_type = metrics.export()
    assert content_type.startswith("text/plain")
    assert b"paydesk_payments_total{" not in body  # this process wrote no files
