"""Webhook services: store a verified delivery once, then apply it exactly once.

This module owns one decision: when a delivery counts as handled. Receiving only stores the
raw delivery (deduplicated on ``(provider, event_id)``); it is *processing* that marks it
done, and only when every effect was recorded. So a delivery whose processing failed is not
a duplicate when the provider sends it again: it is processed again. Effects go through the
payment services, whose ledger keys make a second application a no-op, so even two workers
racing on one delivery change the ledger once.

A processing attempt takes a lease on the delivery row (committed before any provider call,
as in the payment services); a worker that dies mid-way leaves the lease to expire and the
delivery is found again by ``due_webhooks``. Failures are stored with their traceback and
retried with exponential backoff up to ``WEBHOOKS["MAX_ATTEMPTS"]``, then dead-lettered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import traceback
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import F, Q
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from .. import metrics, signals
from ..conf import paydesk_settings
from ..exceptions import ConfigurationError, WebhookError
from ..models import AbstractWebhookEvent, Payment, Refund, WebhookStatus
from ..providers.registry import get_payment_provider
from ..states import LedgerKind
from ..types import (
    DisputeEvent,
    InboundWebhook,
    PaymentEvent,
    ProviderStatus,
    RefundEvent,
    RefundResult,
    WebhookEffect,
)
from . import _sql, ledger
from .refunds import record_refund_result

__all__ = [
    "drain_webhooks",
    "due_webhooks",
    "process_webhook",
    "rearm_redelivery",
    "receive_webhook",
    "retry_delay",
    "webhook_model",
]

logger = logging.getLogger("paydesk.webhooks")

_HEADERS_KEPT = 50  # enough for any provider; bounded so a hostile sender can't bloat rows
# Credentials a proxy or client may add; never signature material, so never needed later.
_REDACTED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


def webhook_model() -> type[AbstractWebhookEvent]:
    """The model named by ``PAYDESK["WEBHOOK_MODEL"]`` (default ``paydesk.WebhookEvent``)."""
    label = paydesk_settings.WEBHOOK_MODEL
    known = _webhook_models.get(label)
    if known is not None:
        return known
    try:
        model = apps.get_model(label, require_ready=False)
    except (LookupError, ValueError) as exc:
        raise ConfigurationError(
            f'PAYDESK["WEBHOOK_MODEL"] = {label!r} is not an installed model: {exc}'
        ) from exc
    if not issubclass(model, AbstractWebhookEvent):
        raise ConfigurationError(
            f'PAYDESK["WEBHOOK_MODEL"] = {label!r} must subclass AbstractWebhookEvent.'
        )
    if apps.ready:
        _webhook_models[label] = model  # the registry's answer for a label does not change
    return model


#: ``webhook_model()``'s answer per label, once the app registry is ready.
_webhook_models: dict[str, type[AbstractWebhookEvent]] = {}


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failure: base * 2**(attempts-1), capped."""
    config = paydesk_settings.WEBHOOKS
    base = float(config["RETRY_BASE_DELAY"])
    return float(min(base * 2 ** max(attempts - 1, 0), float(config["RETRY_MAX_DELAY"])))


def receive_webhook(
    *,
    provider: str,
    inbound: InboundWebhook,
    body: bytes,
    headers: Mapping[str, str],
    ip_address: str | None,
) -> tuple[AbstractWebhookEvent, bool]:
    """Store a verified delivery; return ``(delivery, created)``.

    A repeat of a known ``(provider, event_id)`` returns the stored row with its delivery
    count raised, whatever that row's state. On PostgreSQL and SQLite this is one statement
    (``INSERT ... ON CONFLICT (provider, event_id) DO UPDATE SET deliveries = deliveries + 1
    RETURNING ...``), atomic on its own, so neither a transaction nor a savepoint is needed
    even when concurrent requests store the same event; other databases insert and fall back
    to reading the existing row on the unique constraint's ``IntegrityError``.
    """
    model = webhook_model()
    text = body.decode("utf-8", errors="replace")
    kept = {
        name: ("[redacted]" if name.lower() in _REDACTED_HEADERS else value)
        for name, value in list(headers.items())[:_HEADERS_KEPT]
    }
    delivery = _new(
        model,
        {
            "provider": provider,
            "event_type": inbound.event_type[:120],
            "event_id": inbound.event_id[:255],
            "payload": inbound.payload,
            "body": text,
            "headers": kept,
            "signature": inbound.signature,
            "ip_address": ip_address,
            "status": WebhookStatus.DEAD if inbound.error else WebhookStatus.PENDING,
            "processed": bool(inbound.error),
            "error_message": inbound.error,
        },
    )
    using = router.db_for_write(model)
    if _upsert_supported(using):
        return _upsert(delivery, using)
    try:
        with transaction.atomic(using=using):
            delivery.save(using=using, force_insert=True)
        metrics.count_webhook(provider, "received")
        return delivery, True
    except IntegrityError:
        existing = model.objects.using(using).get(provider=provider, event_id=delivery.event_id)
        model.objects.using(using).filter(pk=existing.pk).update(deliveries=F("deliveries") + 1)
        existing.refresh_from_db()
        return existing, False


#: Per webhook model: (attname, default) of each concrete field, in the model's order.
_fields_of: dict[type[models.Model], tuple[tuple[str, Any], ...]] = {}


def _new(model: type[AbstractWebhookEvent], values: dict[str, Any]) -> AbstractWebhookEvent:
    """``model(**values)``, built as ``Model.from_db`` builds rows: one positional value per
    concrete field (the others' defaults), which skips ``__init__``'s keyword matching."""
    fields = _fields_of.get(model)
    if fields is None:
        fields = tuple((f.attname, f.get_default) for f in model._meta.concrete_fields)
        _fields_of[model] = fields
    build: Any = model  # positional construction, as Django's own from_db() does
    return build(*[values[name] if name in values else default() for name, default in fields])


# What a resend's answer reads of the stored row (``webhooks.pipeline``): the pipeline's
# decisions (status, success; attempts for an immediate task backend) and the count that
# says whether this request inserted the row. Everything else stays deferred: loaded if read.
_RETURNED = ("deliveries", "status", "success", "attempts")
_returned: dict[type[models.Model], list[Any]] = {}


def _upsert_supported(using: str) -> bool:
    return _sql.supported(using)


def _upsert(delivery: AbstractWebhookEvent, using: str) -> tuple[AbstractWebhookEvent, bool]:
    """One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` for ``receive_webhook``.

    Sends ``pre_save`` before the statement (so a resend gets one too) and ``post_save``
    for a new row, like ``Model.save()`` (the metrics count received deliveries on
    ``post_save``). A signal without receivers for the model is not sent at all: nothing
    could tell the difference, and that is most of the cost of sending it.
    """
    model = type(delivery)
    meta = model._meta
    if pre_save.has_listeners(model):
        pre_save.send(sender=model, instance=delivery, raw=False, using=using, update_fields=None)
    returned = _returned.get(model)
    if returned is None:
        returned = [f for f in meta.concrete_fields if f.primary_key or f.name in _RETURNED]
        _returned[model] = returned
    values = _sql.insert_on_conflict(
        delivery,
        using=using,
        unique=("provider", "event_id"),
        increment="deliveries",
        returning=returned,
    )
    assert values is not None  # DO UPDATE always returns the row
    if values["deliveries"] == 1:  # inserted: what is in memory is the row
        _sql.mark_inserted(delivery, values[meta.pk.attname], using)
        metrics.count_webhook(delivery.provider, "received")
        _saved(delivery, created=True, update_fields=None, using=using)
        return delivery, True
    # A resend: the stored row, not this request's copy. Its conflict key is this request's
    # (provider, event_id); the other columns load if something reads them.
    known = {"provider": delivery.provider, "event_id": delivery.event_id, **values}
    names = [f.attname for f in meta.concrete_fields if f.attname in known]  # from_db's order
    return model.from_db(using, names, [known[name] for name in names]), False


def rearm_redelivery(delivery: AbstractWebhookEvent) -> None:
    """Make a failed (or dead-lettered) delivery due now, because its provider sent it again.

    A failed delivery is not a duplicate: the redelivery is a fresh chance, taken by the
    next drain (``drain_webhooks``) rather than at the backoff's time. An unparseable body
    (no payload) can never succeed and is left dead.
    """
    if delivery.status not in (WebhookStatus.FAILED, WebhookStatus.DEAD):
        return
    type(delivery).objects.filter(
        pk=delivery.pk, status__in=(WebhookStatus.FAILED, WebhookStatus.DEAD)
    ).exclude(payload__isnull=True).update(
        status=WebhookStatus.FAILED, processed=False, next_retry_at=timezone.now()
    )


def due_webhooks(*, now: dt.datetime | None = None) -> models.QuerySet[AbstractWebhookEvent]:
    """Deliveries waiting to be (re)processed: pending, failed and due, or abandoned mid-way."""
    now = now or timezone.now()
    return webhook_model().objects.filter(
        Q(status=WebhookStatus.PENDING, lease_until__isnull=True)
        | Q(status=WebhookStatus.PENDING, lease_until__lte=now)
        | Q(status=WebhookStatus.FAILED, next_retry_at__lte=now)
        | Q(status=WebhookStatus.FAILED, next_retry_at__isnull=True)
        | Q(status=WebhookStatus.PROCESSING, lease_until__lte=now)
    )


def _take(delivery: AbstractWebhookEvent, *, force: bool, now: dt.datetime) -> bool:
    """Lease a locked delivery for one processing attempt; ``False`` if it is not to be run."""
    if delivery.success:
        return False
    leased = delivery.lease_until is not None and delivery.lease_until > now
    if delivery.status == WebhookStatus.PROCESSING and leased:
        return False  # someone else is on it; their outcome will be recorded
    if delivery.status == WebhookStatus.DEAD and (not force or delivery.payload is None):
        return False  # given up on; and an unparseable body can never succeed
    lease = dt.timedelta(seconds=int(paydesk_settings.WEBHOOKS["LEASE_SECONDS"]))
    delivery.status = WebhookStatus.PROCESSING
    delivery.attempts += 1
    delivery.lease_until = now + lease
    delivery.save(update_fields=["status", "attempts", "lease_until"])
    return True


def _claim(pk: Any, *, force: bool) -> AbstractWebhookEvent | None:
    model = webhook_model()
    now = timezone.now()
    using = router.db_for_write(model)
    if _sql.supported(using) and not pre_save.has_listeners(model):
        return _claim_in_one_statement(model, pk, force=force, now=now, using=using)
    with transaction.atomic():
        delivery = model.objects.select_for_update().get(pk=pk)
        return delivery if _take(delivery, force=force, now=now) else None


#: What ``_take`` writes, as ``save(update_fields=...)`` reports it to ``post_save``.
_TAKEN_FIELDS = frozenset({"status", "attempts", "lease_until"})


_claim_sql: dict[tuple[Any, ...], str] = {}


def _claim_statement(model: type[AbstractWebhookEvent], using: str) -> str:
    """``_take``'s decision and write as one ``UPDATE ... WHERE ... RETURNING`` (per model)."""
    connection = connections[using]
    key = (model, using, connection.vendor)
    sql = _claim_sql.get(key)
    if sql is not None:
        return sql
    meta = model._meta
    assert meta.pk is not None
    qn = connection.ops.quote_name

    def col(name: str) -> str:
        field: Any = meta.get_field(name)
        return qn(str(field.column))

    status, lease, payload = col("status"), col("lease_until"), col("payload")
    # Only quoted identifiers from the model's own metadata are interpolated; values are
    # params. Each NOT (...) is two-valued: lease_until is tested for NULL before it is
    # compared, and the other columns are NOT NULL. "payload IS NULL" is _take's "payload is
    # None": receive_webhook stores a missing payload as SQL NULL (rearm_redelivery's
    # payload__isnull relies on the same).
    sql = (
        f"UPDATE {qn(meta.db_table)} "  # noqa: S608
        f"SET {status} = %s, {col('attempts')} = {col('attempts')} + 1, {lease} = %s "
        f"WHERE {qn(str(meta.pk.column))} = %s AND NOT {col('success')} "
        f"AND NOT ({status} = %s AND {lease} IS NOT NULL AND {lease} > %s) "
        f"AND NOT ({status} = %s AND (%s OR {payload} IS NULL)) "
        f"RETURNING {_sql.columns(model, using).sql}"
    )
    _claim_sql[key] = sql
    return sql


def _claim_in_one_statement(
    model: type[AbstractWebhookEvent], pk: Any, *, force: bool, now: dt.datetime, using: str
) -> AbstractWebhookEvent | None:
    """``_claim`` as one conditional ``UPDATE ... RETURNING``, atomic on its own.

    The ``WHERE`` is ``_take``'s decision (not done, not leased by someone else, not dead
    unless forced and parseable), checked by the database on the row it updates: on
    PostgreSQL a concurrent claim waits for the row lock and re-checks the condition on the
    committed row, as ``select_for_update()`` + ``_take`` did, with no transaction, read and
    second statement around it. ``post_save`` goes out as ``_take``'s ``save()`` sends it;
    with ``pre_save`` receivers (which would expect the instance before the write)
    ``_claim`` keeps the ORM path.
    """
    connection = connections[using]
    sql = _claim_statement(model, using)
    lease = dt.timedelta(seconds=int(paydesk_settings.WEBHOOKS["LEASE_SECONDS"]))
    meta = model._meta
    assert meta.pk is not None
    lease_field = meta.get_field("lease_until")
    params = [
        WebhookStatus.PROCESSING.value,
        lease_field.get_db_prep_save(now + lease, connection),
        meta.pk.get_db_prep_value(pk, connection),
        WebhookStatus.PROCESSING.value,
        lease_field.get_db_prep_value(now, connection),
        WebhookStatus.DEAD.value,
        not force,
    ]
    row = _sql.fetch_one(connection, sql, params)  # server-side binding, as _sql's inserts
    if row is None:
        return None  # not to be run now (or no such delivery: the caller's get() says so)
    delivery = _sql.load(model, using, _sql.columns(model, using), row)
    _saved(delivery, created=False, update_fields=_TAKEN_FIELDS, using=using)
    return delivery


def _saved(
    delivery: AbstractWebhookEvent,
    *,
    created: bool,
    update_fields: frozenset[str] | None,
    using: str,
) -> None:
    """``post_save`` as ``save()`` sends it, for a row written by one of ``_sql``'s statements;
    not sent at all without receivers (nothing could tell, and it is most of the cost)."""
    model = type(delivery)
    if post_save.has_listeners(model):
        post_save.send(
            sender=model,
            instance=delivery,
            created=created,
            update_fields=update_fields,
            raw=False,
            using=using,
        )


def _claim_next() -> AbstractWebhookEvent | None:
    """Lease the oldest due delivery that no other worker holds (``SKIP LOCKED``)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            due_webhooks(now=now)
            .select_for_update(skip_locked=True)
            .order_by("created_at", "pk")
            .first()
        )
        if delivery is None:
            return None
        # Due deliveries are never successful, leased or dead: _take always takes it.
        return delivery if _take(delivery, force=False, now=now) else None


def drain_webhooks(*, limit: int = 500) -> dict[str, int]:
    """Process due deliveries, oldest first, until none is left or ``limit`` were tried.

    What ``paydesk.tasks.drain_webhooks_task`` runs: the stored ``pending`` row is the
    queue. Workers running it at the same time take different deliveries (each claim skips
    rows another worker has locked, and a claimed row is leased), so they share a backlog.
    """
    stats = {"total": 0, "success": 0, "failed": 0}
    while stats["total"] < limit:
        claimed = _claim_next()
        if claimed is None:
            break
        stats["total"] += 1
        done = _run_claimed(claimed)
        stats["success" if done.success else "failed"] += 1
    return stats


def process_webhook(
    *, delivery: AbstractWebhookEvent | int, force: bool = False
) -> AbstractWebhookEvent:
    """Apply a stored delivery's effects; record success, or the failure and its retry.

    ``force=True`` also processes a dead-lettered delivery (an operator's replay). Returns
    the delivery as it now is; an unchanged one (already done, or leased by another worker)
    is returned as is.
    """
    pk = delivery if isinstance(delivery, int) else delivery.pk
    claimed = _claim(pk, force=force)
    if claimed is None:
        return webhook_model().objects.get(pk=pk)
    return _run_claimed(claimed)


def _run_claimed(claimed: AbstractWebhookEvent) -> AbstractWebhookEvent:
    pk = claimed.pk
    inbound = InboundWebhook(
        event_id=claimed.event_id,
        event_type=claimed.event_type,
        payload=claimed.payload,
        signature=claimed.signature,
    )
    try:
        provider = get_payment_provider(claimed.provider)
        effects = provider.parse_webhook(inbound)
        payment_ids = [_apply(claimed, effect) for effect in effects]
    except Exception as exc:  # stored, retried, surfaced; never lost
        _record_failure(claimed, exc)
        return webhook_model().objects.get(pk=pk)
    # One UPDATE (autocommitted, or part of the caller's transaction): the signal goes out
    # once it is committed.
    claimed.mark_success(ignored=not effects, payment_id=payment_ids[0] if payment_ids else None)
    signals.send_on_commit(
        signals.webhook_received,
        sender=type(claimed),
        provider=claimed.provider,
        event_type=claimed.event_type,
        result="processed" if effects else "ignored",
        payload=claimed.payload,
        delivery=claimed,
    )
    return claimed


def _record_failure(delivery: AbstractWebhookEvent, exc: BaseException) -> None:
    max_attempts = int(paydesk_settings.WEBHOOKS["MAX_ATTEMPTS"])
    dead = delivery.attempts >= max_attempts
    message = f"{type(exc).__name__}: {exc}"
    logger.warning(
        "webhook %s %s (attempt %s) failed: %s",
        delivery.provider,
        delivery.event_id,
        delivery.attempts,
        message,
    )
    with transaction.atomic():
        delivery.mark_failed(message, traceback=traceback.format_exc(), dead=dead)
        if not dead:
            delivery.schedule_retry(retry_delay(delivery.attempts))


def _find_payment(
    alias: str, *, payment_id: str, provider_payment_id: str, lock: bool = False
) -> Payment:
    """The payment an effect is about; ``lock=True`` locks it (inside a transaction)."""
    manager = Payment.objects.select_for_update() if lock else Payment.objects
    payment = None
    if payment_id:
        # By primary key: at most one row, so no ORDER BY / LIMIT 1 to compile and plan.
        using = router.db_for_write(Payment) if lock else router.db_for_read(Payment)
        if _sql.supported(using):
            # The one read of every delivery: a statement built once, not a compiled query.
            where = {"id": payment_id, "provider": alias}
            payment = _sql.select_one(Payment, using=using, where=where, lock=lock)
        else:
            with contextlib.suppress(Payment.DoesNotExist):
                payment = manager.get(pk=payment_id, provider=alias)
    if payment is None and provider_payment_id:
        # Not unique: the newest payment with that provider id, as before.
        payment = manager.filter(provider=alias, provider_payment_id=provider_payment_id).first()
    if payment is None:
        # Possibly a payment whose create call has not committed yet: fail, and retry later.
        raise WebhookError(
            f"No {alias} payment matches id={payment_id!r} / "
            f"provider id={provider_payment_id!r}; will retry."
        )
    return payment


def _note_delivery(payment: Payment, delivery: AbstractWebhookEvent) -> None:
    ledger.append(
        payment,
        kind=LedgerKind.WEBHOOK_RECEIVED,
        key=f"webhook:{delivery.provider}:{delivery.event_id}"[:255],
        provider_data={"event_type": delivery.event_type, "delivery": delivery.pk},
        message=delivery.event_type,
    )


_MONEY = frozenset({ProviderStatus.AUTHORIZED, ProviderStatus.CAPTURED})


def _earlier_attempt(payment: Payment, effect: PaymentEvent) -> bool:
    """Whether ``effect`` is about another provider payment than the current attempt's."""
    about = effect.provider_payment_id or effect.result.provider_payment_id
    return bool(about and payment.provider_payment_id and about != payment.provider_payment_id)


def _apply(delivery: AbstractWebhookEvent, effect: WebhookEffect) -> str:
    alias = delivery.provider
    find: dict[str, Any] = {
        "payment_id": effect.payment_id,
        "provider_payment_id": effect.provider_payment_id,
    }
    if isinstance(effect, PaymentEvent):
        with transaction.atomic():
            payment = _find_payment(alias, lock=True, **find)  # read once, locked
            old = payment.status
            _note_delivery(payment, delivery)
            if _earlier_attempt(payment, effect) and effect.result.status not in _MONEY:
                # News about the charge of an attempt that was retried since (Stripe keeps
                # delivering a failed intent's events for days): its progress says nothing
                # about the current attempt. Money it moved still counts, below.
                ledger.refresh(payment)
                return payment.pk
            ledger.record_result(payment, effect.result, attempt=payment.attempt, source="webhook")
            ledger.announce(payment, old, result=effect.result)
        return payment.pk
    if isinstance(effect, RefundEvent):
        target = _find_payment(alias, **find)
        _apply_refund(delivery, target, effect)
        return target.pk
    if isinstance(effect, DisputeEvent):
        with transaction.atomic():
            payment = _find_payment(alias, lock=True, **find)
            _note_delivery(payment, delivery)
            state = "opened" if effect.opened else "closed"
            ledger.append(
                payment,
                kind=LedgerKind.DISPUTE_OPENED if effect.opened else LedgerKind.DISPUTE_CLOSED,
                key=f"dispute:{effect.dispute_id}:{state}"[:255],
                amount=effect.amount.amount if effect.amount else None,
                ref=effect.dispute_id,
                provider_data=dict(effect.raw),
                message=effect.reason,
            )
            ledger.refresh(payment)
        return payment.pk
    raise WebhookError(f"Unknown webhook effect {effect!r}.")


def _apply_refund(delivery: AbstractWebhookEvent, payment: Payment, effect: RefundEvent) -> None:
    refund = None
    if effect.refund_id:
        refund = Refund.objects.filter(pk=effect.refund_id, payment=payment).first()
    if refund is None and effect.provider_refund_id:
        refund = Refund.objects.filter(
            payment=payment, provider_refund_id=effect.provider_refund_id
        ).first()
    with transaction.atomic():
        _note_delivery(ledger.locked_payment(payment), delivery)
    if refund is None:
        if effect.status != "completed" or effect.amount is None:
            return  # news about a refund paydesk never saw and that did not happen
        refund = _external_refund(payment, effect)
    record_refund_result(
        refund=refund,
        result=RefundResult(
            status=effect.status,
            provider_refund_id=effect.provider_refund_id,
            failure=effect.failure,
            raw=dict(effect.raw),
        ),
    )


def _external_refund(payment: Payment, effect: RefundEvent) -> Refund:
    """Record a refund made outside paydesk (e.g. in the provider's dashboard).

    It already happened, so it is recorded even if paydesk's books disagree; the ledger
    then shows the discrepancy rather than hiding it.
    """
    assert effect.amount is not None
    with transaction.atomic():
        locked = ledger.locked_payment(payment)
        existing = Refund.objects.filter(
            payment=locked, provider_refund_id=effect.provider_refund_id
        ).first()
        if existing is not None:
            return existing
        refund = Refund.objects.create(
            payment=locked,
            amount=effect.amount.amount,
            currency=effect.amount.currency,
            reason=effect.reason or "refunded at the provider",
            provider_refund_id=effect.provider_refund_id,
        )
        ledger.append(
            locked,
            kind=LedgerKind.REFUND_REQUESTED,
            key=f"refund:{refund.pk}:requested",
            amount=refund.amount,
            ref=refund.pk,
            refund=refund,
            message="refund made at the provider",
        )
        ledger.refresh(locked)
    return refund
