"""What the webhook bench sends: sandbox payments to complete and signed events about them.

Runs in the bench's own process (Django set up with ``bench._project.settings``); the
servers under test only ever see the HTTP requests built here.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Mapping
from typing import Any

Snapshot = dict[str, Any]


class PaymentPool:
    """Sandbox payments waiting for their customer, each completed by one webhook.

    A payment is created through paydesk's services exactly as a checkout does
    (``create_payment`` then ``process_payment`` without a card: the sandbox's hosted
    checkout, ``requires_action``); its simulated charge is then marked captured, as if the
    customer had paid. The sandbox's ``payment.succeeded`` event for that charge is then
    real work for paydesk: three ledger rows, the fold, the payment's new status.

    Scenario (a) uses each payment once (``fresh`` / ``consume``); the others only need
    realistic bodies and may reuse any payment.
    """

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.used = 0
        self.seconds_creating = 0.0

    @property
    def unused(self) -> int:
        return len(self.snapshots) - self.used

    def fresh(self) -> list[Snapshot]:
        return self.snapshots[self.used :]

    def consume(self, count: int) -> None:
        self.used = min(len(self.snapshots), self.used + count)

    def top_up(self, unused: int) -> int:
        """Create payments until at least ``unused`` are unused; return how many were made."""
        import time

        missing = unused - self.unused
        if missing <= 0:
            return 0
        started = time.perf_counter()
        first = len(self.snapshots)
        self.snapshots.extend(create_payments(first, missing))
        self.seconds_creating += time.perf_counter() - started
        return missing


def create_payments(
    first: int, count: int, *, processes: int = 2, prefix: str = "bench"
) -> list[Snapshot]:
    """``count`` payments at the sandbox's hosted checkout; return their charges' snapshots.

    The work is split over forked processes (the services are CPU-bound Python, so threads
    would queue on the GIL); each child opens its own database connection.
    """
    from django.db import connections
    from django.db.models import F

    from paydesk.models import SandboxCharge
    from paydesk.providers.sandbox.webhooks import charge_snapshot

    chunks = [
        (prefix, [first + index for index in range(part, count, processes)])
        for part in range(min(processes, count))
    ]
    if len(chunks) > 1:
        connections.close_all()  # children must not share the parent's socket
        with multiprocessing.get_context("fork").Pool(len(chunks)) as workers:
            refs = [ref for part in workers.map(_create_chunk, chunks) for ref in part]
    else:
        refs = [ref for chunk in chunks for ref in _create_chunk(chunk, close=False)]
    charges = SandboxCharge.objects.filter(payment_ref__in=refs)
    charges.update(status="captured", captured_amount=F("amount"))  # the customer paid
    by_ref = {charge.payment_ref: charge for charge in charges}
    return [charge_snapshot(by_ref[ref]) for ref in refs]


def _create_chunk(chunk: tuple[str, list[int]], *, close: bool = True) -> list[str]:
    from django.db import connections

    from paydesk import services

    prefix, numbers = chunk
    refs = []
    try:
        for number in numbers:
            payment = services.create_payment(
                amount="25.00", currency="USD", reference=f"{prefix}-{number}"
            )
            payment = services.process_payment(payment=payment)
            if payment.status != "requires_action":
                raise RuntimeError(
                    f"a new sandbox payment is {payment.status}, not requires_action"
                )
            refs.append(payment.pk)
    finally:
        if close:
            connections.close_all()
    return refs


def sandbox_signer() -> Callable[[bytes], Mapping[str, str]]:
    """Headers for a body, signed as the sandbox provider signs its deliveries."""
    from paydesk.providers.registry import get_payment_provider
    from paydesk.providers.sandbox.webhooks import verifier

    provider = get_payment_provider("sandbox")
    signer = verifier(provider)
    header = provider.webhook_signature_header

    def sign(body: bytes) -> Mapping[str, str]:
        return {"Content-Type": "application/json", header: signer.sign(body)}

    return sign


def body_maker(snapshots: list[Snapshot]) -> Callable[[int], bytes]:
    """Unique event ``k``: ``payment.succeeded`` for payment ``k`` (wrapping round)."""
    from paydesk.providers.sandbox.webhooks import build_event

    def make(k: int) -> bytes:
        event = build_event("payment.succeeded", snapshots[k % len(snapshots)])
        return json.dumps(event, separators=(",", ":")).encode()  # as signed_delivery does

    return make


def queries_per_delivery(
    spare: list[Snapshot], sign: Callable[[bytes], Mapping[str, str]]
) -> dict[str, int]:
    """SQL statements one delivery costs in each scenario, in-process (no HTTP).

    ``spare`` holds two payments kept out of the load's pool: one for (b), one for (a).
    """
    from bench._project.baseline.models import RawDelivery
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    from paydesk.webhooks.pipeline import WebhookRequest, handle

    counts: dict[str, int] = {}

    def deliver(label: str, body: bytes) -> None:
        request = WebhookRequest(
            alias="sandbox", body=body, headers=sign(body), remote_addr="127.0.0.1"
        )
        with CaptureQueriesContext(connection) as ctx:
            response = handle(request)
        if not 200 <= response.status < 300:
            raise RuntimeError(f"bench: in-process {label} delivery answered {response.status}")
        counts[label] = len(ctx.captured_queries)

    task_mode = {**settings.PAYDESK, "WEBHOOKS": {"PROCESS": "task"}}
    body = body_maker(spare[:1])(0)
    with override_settings(PAYDESK=task_mode):
        deliver("b", body)
        deliver("b resend", body)
    body = body_maker(spare[1:])(0)
    deliver("a", body)
    deliver("a resend", body)
    with CaptureQueriesContext(connection) as ctx:
        RawDelivery.objects.create(body=body.decode())
    counts["c"] = len(ctx.captured_queries)
    return counts


def fastest_inline_delivery(
    spare: list[Snapshot], sign: Callable[[bytes], Mapping[str, str]]
) -> float:
    """Seconds for the fastest of ``len(spare)`` fresh inline deliveries, in-process.

    A worker process cannot apply deliveries faster than this one at a time, so
    ``workers / fastest`` bounds what scenario (a) can reach: that many fresh payments a
    second are enough.
    """
    import time

    from paydesk.webhooks.pipeline import WebhookRequest, handle

    make = body_maker(spare)
    fastest = float("inf")
    for k in range(len(spare)):
        body = make(k)
        request = WebhookRequest(
            alias="sandbox", body=body, headers=sign(body), remote_addr="127.0.0.1"
        )
        started = time.perf_counter()
        response = handle(request)
        fastest = min(fastest, time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"bench: in-process inline delivery answered {response.status}")
    return fastest
