"""``replay_webhooks``, ``cleanup_webhooks`` and ``WebhookReplayer``: what an operator runs.

Every replay goes through the same processing as a live delivery, so replaying twice, or
replaying what a worker already handled, changes the ledger once. Commands print counts.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command, load_command_class
from django.test import override_settings
from django.utils import timezone

from paydesk.models import WebhookEvent
from paydesk.providers.sandbox import SandboxProvider
from paydesk.providers.sandbox.webhooks import build_event, charge_snapshot, signed_delivery
from paydesk.webhooks.pipeline import WebhookRequest, handle
from paydesk.webhooks.replay import WebhookReplayer, process_due

from .test_webhooks_pipeline import (
    awaiting_payment,
    fresh_cache,  # noqa: F401  (a fixture, used through usefixtures)
    ledger_kinds,
    paydesk_config,
    succeeded_event,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

CONFIG = paydesk_config()
SECOND = {
    "sandbox_b": {
        "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
        "OPTIONS": {"WEBHOOK_DELIVERY": "off", "WEBHOOK_SECRET": "whsec_b"},
    }
}
TWO = paydesk_config(extra_providers=SECOND)


def _broken_parse(self: Any, event: Any) -> Any:
    raise RuntimeError("handler bug")


def deliver(event: dict[str, Any], alias: str = "sandbox") -> WebhookEvent:
    """Send ``event`` through the pipeline (no HTTP) and return the stored delivery."""
    from paydesk.providers.registry import get_payment_provider

    body, headers = signed_delivery(get_payment_provider(alias), event)
    handle(WebhookRequest(alias=alias, body=body, headers=headers, remote_addr="127.0.0.1"))
    return WebhookEvent.objects.get(provider=alias, event_id=event["id"])


def failed_delivery(monkeypatch, alias: str = "sandbox") -> tuple[Any, WebhookEvent]:
    """A payment awaiting 3-D Secure and its payment.succeeded delivery, stored failed."""
    payment, charge = awaiting_payment(alias=alias)
    with monkeypatch.context() as patch:
        patch.setattr(SandboxProvider, "parse_webhook", _broken_parse)
        delivery = deliver(succeeded_event(charge), alias=alias)
    assert delivery.status == "failed"
    return payment, delivery


def pending_delivery(alias: str = "sandbox") -> tuple[Any, WebhookEvent]:
    """A stored delivery that was never processed (as after an enqueue that was lost)."""
    payment, charge = awaiting_payment(alias=alias)
    event = succeeded_event(charge)
    from paydesk.providers.registry import get_payment_provider
    from paydesk.services.webhooks import receive_webhook

    provider = get_payment_provider(alias)
    body, headers = signed_delivery(provider, event)
    inbound = provider.verify_webhook(body, headers)
    delivery, created = receive_webhook(
        provider=alias, inbound=inbound, body=body, headers=headers, ip_address="127.0.0.1"
    )
    assert created
    assert delivery.status == "pending"
    return payment, delivery


def run(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def make_due(delivery: WebhookEvent) -> None:
    WebhookEvent.objects.filter(pk=delivery.pk).update(
        next_retry_at=timezone.now() - dt.timedelta(seconds=1)
    )


# -- replay_webhooks --------------------------------------------------------------------------


@override_settings(PAYDESK=CONFIG)
def test_replay_failed_fixes_a_stored_failure_once_it_is_due_and_prints_counts(monkeypatch):
    payment, delivery = failed_delivery(monkeypatch)

    # Its retry is not due yet (30 s backoff): --failed respects the schedule.
    assert run("replay_webhooks", "--failed") == ("failed: 0 replayed, 0 succeeded, 0 failed\n")
    make_due(delivery)
    assert run("replay_webhooks", "--failed") == ("failed: 1 replayed, 1 succeeded, 0 failed\n")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.success, delivery.attempts) == ("processed", True, 2)
    payment.refresh_from_db()
    assert payment.status == "completed"
    # Replaying again finds nothing to do.
    assert run("replay_webhooks", "--failed", "--no-backoff").startswith("failed: 0 replayed")
    assert ledger_kinds(payment).count("capture") == 1


@override_settings(PAYDESK=CONFIG)
def test_replay_failed_no_backoff_replays_now(monkeypatch):
    payment, _delivery = failed_delivery(monkeypatch)
    out = run("replay_webhooks", "--failed", "--no-backoff")
    assert out == "failed: 1 replayed, 1 succeeded, 0 failed\n"
    payment.refresh_from_db()
    assert payment.status == "completed"


@override_settings(PAYDESK=CONFIG)
def test_a_replay_that_still_fails_is_counted_failed_and_rescheduled(monkeypatch):
    _, delivery = failed_delivery(monkeypatch)
    monkeypatch.setattr(SandboxProvider, "parse_webhook", _broken_parse)
    out = run("replay_webhooks", "--failed", "--no-backoff")
    assert out == "failed: 1 replayed, 0 succeeded, 1 failed\n"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert delivery.next_retry_at > timezone.now() + dt.timedelta(seconds=55)


@override_settings(PAYDESK=paydesk_config(webhooks={"MAX_ATTEMPTS": 2}))
def test_a_dead_delivery_is_replayed_by_replay_failed(monkeypatch):
    payment, delivery = failed_delivery(monkeypatch)
    monkeypatch.setattr(SandboxProvider, "parse_webhook", _broken_parse)
    make_due(delivery)
    assert process_due() == {"total": 1, "success": 0, "failed": 1}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.processed, delivery.success) == ("dead", True, False)
    assert process_due() == {"total": 0, "success": 0, "failed": 0}  # the schedule gave up

    monkeypatch.undo()
    # Dead letters have no retry time: --failed takes them even with the backoff respected.
    out = run("replay_webhooks", "--failed")
    assert out == "failed: 1 replayed, 1 succeeded, 0 failed\n"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 3)
    assert ledger_kinds(payment).count("capture") == 1


@override_settings(PAYDESK=CONFIG)
def test_replay_failed_skips_unparseable_dead_letters():
    body = b"{not json"
    from paydesk.security.signatures import SandboxWebhookVerifier

    from .test_webhooks_pipeline import SECRET

    header = SandboxWebhookVerifier(SECRET).sign(body)
    handle(
        WebhookRequest(
            alias="sandbox",
            body=body,
            headers={"Paydesk-Sandbox-Signature": header},
            remote_addr=None,
        )
    )
    assert WebhookEvent.objects.get().status == "dead"
    assert run("replay_webhooks", "--failed").startswith("failed: 0 replayed")
    # Asked for by id, it is counted as failed and stays as it was.
    pk = WebhookEvent.objects.get().pk
    assert run("replay_webhooks", "--id", str(pk)) == "by id: 1 replayed, 0 succeeded, 1 failed\n"
    assert WebhookEvent.objects.get().status == "dead"


@override_settings(PAYDESK=CONFIG)
def test_replay_pending_processes_deliveries_never_processed():
    payment, delivery = pending_delivery()
    assert run("replay_webhooks", "--failed", "--no-backoff").startswith("failed: 0 replayed")
    assert run("replay_webhooks", "--pending") == "pending: 1 replayed, 1 succeeded, 0 failed\n"
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert run("replay_webhooks", "--pending").startswith("pending: 0 replayed")


@override_settings(PAYDESK=TWO)
def test_replay_provider_and_limit_select_what_is_replayed(monkeypatch):
    failures = [failed_delivery(monkeypatch) for _ in range(3)]
    other = failed_delivery(monkeypatch, alias="sandbox_b")

    out = run(
        "replay_webhooks", "--failed", "--no-backoff", "--provider", "sandbox", "--limit", "2"
    )
    assert out == "failed: 2 replayed, 2 succeeded, 0 failed\n"
    statuses = [WebhookEvent.objects.get(pk=d.pk).status for _, d in failures]
    assert statuses == ["processed", "processed", "failed"]  # oldest first
    assert WebhookEvent.objects.get(pk=other[1].pk).status == "failed"

    out = run("replay_webhooks", "--failed", "--no-backoff", "--provider", "sandbox_b")
    assert out == "failed: 1 replayed, 1 succeeded, 0 failed\n"
    assert WebhookEvent.objects.get(pk=failures[2][1].pk).status == "failed"


@override_settings(PAYDESK=CONFIG)
def test_replay_by_id_takes_exactly_the_named_deliveries(monkeypatch):
    (_, first), (_, second), (_, third) = (failed_delivery(monkeypatch) for _ in range(3))
    out = run("replay_webhooks", "--id", str(first.pk), "--id", str(third.pk))
    assert out == "by id: 2 replayed, 2 succeeded, 0 failed\n"
    statuses = {d.pk: WebhookEvent.objects.get(pk=d.pk).status for d in (first, second, third)}
    assert statuses == {first.pk: "processed", second.pk: "failed", third.pk: "processed"}
    # Replaying a processed one by id changes nothing and counts as a success.
    assert run("replay_webhooks", "--id", str(first.pk)) == (
        "by id: 1 replayed, 1 succeeded, 0 failed\n"
    )
    assert WebhookEvent.objects.get(pk=first.pk).attempts == 2


@override_settings(PAYDESK=CONFIG)
def test_replay_without_options_processes_what_is_due(monkeypatch):
    _, failed = failed_delivery(monkeypatch)
    _, pending = pending_delivery()
    assert run("replay_webhooks") == "due: 1 replayed, 1 succeeded, 0 failed\n"  # the pending one
    assert WebhookEvent.objects.get(pk=pending.pk).status == "processed"
    make_due(failed)
    assert run("replay_webhooks") == "due: 1 replayed, 1 succeeded, 0 failed\n"
    assert WebhookEvent.objects.get(pk=failed.pk).status == "processed"


@override_settings(PAYDESK=CONFIG)
def test_failed_and_pending_together_print_one_line_each(monkeypatch):
    failed_delivery(monkeypatch)
    pending_delivery()
    out = run("replay_webhooks", "--failed", "--pending", "--no-backoff")
    assert out.splitlines() == [
        "failed: 1 replayed, 1 succeeded, 0 failed",
        "pending: 1 replayed, 1 succeeded, 0 failed",
    ]


# -- WebhookReplayer --------------------------------------------------------------------------


@override_settings(PAYDESK=TWO)
def test_replayer_methods_return_total_success_failed(monkeypatch):
    failed_delivery(monkeypatch)
    failed_delivery(monkeypatch, alias="sandbox_b")
    replayer = WebhookReplayer()
    assert replayer.model is WebhookEvent
    assert replayer.replay_by_provider("sandbox_b") == {"total": 1, "success": 1, "failed": 0}
    assert replayer.replay_failed() == {"total": 1, "success": 1, "failed": 0}
    assert replayer.replay_failed() == {"total": 0, "success": 0, "failed": 0}
    assert replayer.replay_pending() == {"total": 0, "success": 0, "failed": 0}
    assert replayer.cleanup_old_events(days=30) == {"total": 0, "success": 0, "failed": 0}


@override_settings(PAYDESK=CONFIG)
def test_replayer_takes_a_custom_handler(monkeypatch):
    _, first = failed_delivery(monkeypatch)
    _, second = failed_delivery(monkeypatch)
    seen: list[int] = []

    def handler(delivery: WebhookEvent) -> None:
        seen.append(delivery.pk)
        if delivery.pk == second.pk:
            raise ValueError("cannot handle this one")

    assert WebhookReplayer().replay_failed(handler) == {"total": 2, "success": 1, "failed": 1}
    assert seen == [first.pk, second.pk]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.success) == ("processed", True)
    assert (second.status, second.error_message) == ("failed", "ValueError: cannot handle this one")

    # A handler that answers False is counted failed and leaves the delivery as it was.
    assert WebhookReplayer().replay_failed(lambda d: False) == {
        "total": 1,
        "success": 0,
        "failed": 1,
    }
    assert WebhookEvent.objects.get(pk=second.pk).status == "failed"


# -- cleanup_webhooks -------------------------------------------------------------------------


def _age(delivery: WebhookEvent, days: int) -> None:
    WebhookEvent.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - dt.timedelta(days=days)
    )


@override_settings(PAYDESK=CONFIG)
def test_cleanup_deletes_only_old_successful_deliveries(monkeypatch):
    _, charge = awaiting_payment()
    old_processed = deliver(succeeded_event(charge))
    old_ignored = deliver(build_event("customer.updated", charge_snapshot(charge)))
    recent_processed = deliver(build_event("payment.succeeded", charge_snapshot(charge)))
    _, old_failed = failed_delivery(monkeypatch)
    _, old_dead = failed_delivery(monkeypatch)
    WebhookEvent.objects.filter(pk=old_dead.pk).update(status="dead", processed=True)
    _, old_pending = pending_delivery()
    for delivery in (old_processed, old_ignored, old_failed, old_dead, old_pending):
        _age(delivery, 40)
    _age(recent_processed, 29)

    assert run("cleanup_webhooks", "--dry-run") == "would delete 2 webhook deliveries\n"
    assert WebhookEvent.objects.count() == 6
    assert run("cleanup_webhooks") == "deleted 2 webhook deliveries\n"
    left = set(WebhookEvent.objects.values_list("pk", flat=True))
    assert left == {recent_processed.pk, old_failed.pk, old_dead.pk, old_pending.pk}

    assert run("cleanup_webhooks", "--days", "30") == "deleted 0 webhook deliveries\n"
    assert run("cleanup_webhooks", "--days", "7", "--dry-run") == (
        "would delete 1 webhook deliveries\n"
    )
    assert run("cleanup_webhooks", "--days", "7") == "deleted 1 webhook deliveries\n"
    left = set(WebhookEvent.objects.values_list("pk", flat=True))
    assert left == {old_failed.pk, old_dead.pk, old_pending.pk}


@override_settings(PAYDESK=paydesk_config(webhooks={"RETENTION_DAYS": 3}))
def test_cleanup_defaults_to_the_retention_setting():
    _, charge = awaiting_payment()
    delivery = deliver(succeeded_event(charge))
    _age(delivery, 4)
    assert WebhookReplayer().cleanup_old_events(dry_run=True) == {
        "total": 1,
        "success": 0,
        "failed": 0,
    }
    assert WebhookReplayer().cleanup_old_events() == {"total": 1, "success": 1, "failed": 0}
    assert not WebhookEvent.objects.exists()


def _help(name: str) -> str:
    command = load_command_class("paydesk", name)
    return command.create_parser("manage.py", name).format_help()


def test_the_commands_document_their_options():
    replay = _help("replay_webhooks")
    for option in ("--failed", "--pending", "--provider", "--limit", "--no-backoff", "--id"):
        assert option in replay
    cleanup = _help("cleanup_webhooks")
    assert "--days" in cleanup
    assert "--dry-run" in cleanup
