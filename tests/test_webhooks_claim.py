"""The claim of a delivery: one conditional UPDATE where the database supports it.

``services.webhooks._claim`` leases a delivery for one processing attempt. On PostgreSQL and
SQLite it is one ``UPDATE ... WHERE <_take's decision> RETURNING ...``; these tests hold it
to the ORM path it replaces (lock the row, ``_take``, save) for every state a delivery can
be in, and to the signals that path sends.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.db import router, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from paydesk.models import WebhookEvent, WebhookStatus
from paydesk.services import _sql
from paydesk.services.webhooks import _claim, _claim_in_one_statement, _take

pytestmark = pytest.mark.django_db

NOW = timezone.now()
LEASES = {
    "none": None,
    "expired": NOW - dt.timedelta(seconds=1),
    "live": NOW + dt.timedelta(minutes=5),
}
_ids = itertools.count()


def delivery(**fields: Any) -> WebhookEvent:
    return WebhookEvent.objects.create(
        provider="sandbox", event_type="payment.succeeded", event_id=f"evt_{next(_ids)}", **fields
    )


def by_the_orm(pk: int, *, force: bool) -> WebhookEvent | None:
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update().get(pk=pk)
        return locked if _take(locked, force=force, now=NOW) else None


def row(pk: int) -> tuple[Any, ...]:
    return tuple(
        WebhookEvent.objects.filter(pk=pk).values_list("status", "attempts", "lease_until").get()
    )


@pytest.fixture(autouse=True)
def _one_statement_supported() -> None:
    if not _sql.supported(router.db_for_write(WebhookEvent)):
        pytest.skip("this database has no UPDATE ... RETURNING; _claim uses the ORM")


@pytest.mark.parametrize("status", [s.value for s in WebhookStatus])
@pytest.mark.parametrize("success", [False, True])
@pytest.mark.parametrize("lease", list(LEASES))
@pytest.mark.parametrize("payload", [None, {"id": "evt"}])
@pytest.mark.parametrize("force", [False, True])
def test_the_one_statement_claim_decides_and_writes_as_take_does(
    status: str, success: bool, lease: str, payload: Any, force: bool
) -> None:
    state = {"status": status, "success": success, "lease_until": LEASES[lease], "attempts": 2}
    ours, theirs = delivery(payload=payload, **state), delivery(payload=payload, **state)

    claimed = _claim_in_one_statement(WebhookEvent, ours.pk, force=force, now=NOW, using="default")
    expected = by_the_orm(theirs.pk, force=force)

    assert (claimed is None) == (expected is None)
    assert row(ours.pk) == row(theirs.pk)
    if claimed is not None:
        assert claimed.pk == ours.pk
        assert (claimed.status, claimed.attempts, claimed.lease_until) == row(ours.pk)
        # The whole row, converted as the ORM loads it.
        loaded = WebhookEvent.objects.get(pk=ours.pk)
        for field in WebhookEvent._meta.concrete_fields:
            assert getattr(claimed, field.attname) == getattr(loaded, field.attname), field.name
        assert claimed._state.adding is False
        assert claimed._state.db == "default"


def test_an_unknown_delivery_is_not_claimed() -> None:
    assert (
        _claim_in_one_statement(WebhookEvent, 987654, force=True, now=NOW, using="default") is None
    )


def test_the_claim_sends_post_save_as_the_save_it_replaces() -> None:
    pending = delivery(payload={"id": "evt"})
    seen: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    post_save.connect(receiver, sender=WebhookEvent, weak=False, dispatch_uid="test-claim")
    try:
        claimed = _claim(pending.pk, force=False)
    finally:
        post_save.disconnect(sender=WebhookEvent, dispatch_uid="test-claim")
    assert claimed is not None
    (sent,) = seen
    assert sent["instance"] is claimed
    assert sent["created"] is False
    assert set(sent["update_fields"]) == {"status", "attempts", "lease_until"}
    assert (sent["raw"], sent["using"]) == (False, "default")


def test_with_a_pre_save_receiver_the_claim_saves_through_the_orm() -> None:
    """A ``pre_save`` receiver sees the instance before the write, which one statement has
    no way to show it; so it gets the ORM's save, and its signal, as before."""
    pending = delivery(payload={"id": "evt"})
    seen: list[tuple[str, Any]] = []

    def receiver(instance: WebhookEvent, update_fields: Any, **kwargs: Any) -> None:
        seen.append((instance.status, set(update_fields)))

    pre_save.connect(receiver, sender=WebhookEvent, weak=False, dispatch_uid="test-claim")
    try:
        claimed = _claim(pending.pk, force=False)
    finally:
        pre_save.disconnect(sender=WebhookEvent, dispatch_uid="test-claim")
    assert claimed is not None
    assert seen == [("processing", {"status", "attempts", "lease_until"})]
    assert row(pending.pk)[:2] == ("processing", 1)
