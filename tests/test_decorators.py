"""paydesk.decorators: each wrapper does its one job, sync and async, and keeps signatures.

What these tests prove: every decorator keeps the name, docstring and ``inspect.signature``
of what it wraps, works bare and called, and turns a coroutine function into a coroutine
function. ``atomic_payment_operation`` rolls back on error (also for async ORM code, which
runs in the transaction's thread) and refuses provider-calling functions;
``log_payment_operation`` logs start and end with the payment's id and the outcome, a
paydesk error as a warning and anything else as an error with its traceback;
``measure_payment_time`` logs durations, and for provider calls a ``provider_call`` record
and the metrics hook; ``with_audit_log`` writes one entry per call, failures included;
``cache_provider_result`` caches read-only results by arguments and refuses, when applied,
anything that moves money.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
import types
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import paydesk
from paydesk import services
from paydesk.decorators import (
    atomic_payment_operation,
    cache_provider_result,
    is_money_moving,
    log_payment_operation,
    measure_payment_time,
    money_moving,
    with_audit_log,
)
from paydesk.exceptions import InvalidTransition, PaymentDeclined, ProviderUnavailable
from paydesk.models import AuditLog, Payment
from paydesk.retry import process_payment_with_retry
from paydesk.testing import MockPaymentProvider


def close_thread_connections():
    # Async tests ran the ORM in asgiref's executor thread; close its connection so the test
    # database can be dropped at the end of the run.
    asyncio.run(sync_to_async(connections.close_all)())


def sample(payment_id: str, amount: Decimal = Decimal("1.00"), *, note: str = "") -> str:
    """Sample docstring."""
    return f"{payment_id}:{amount}:{note}"


async def async_sample(
    payment_id: str, amount: Decimal = Decimal("1.00"), *, note: str = ""
) -> str:
    """Async sample docstring."""
    return f"{payment_id}:{amount}:{note}"


def get_status(payment_id: str, *, fresh: bool = False) -> str:
    """Read-only sample."""
    return payment_id


async def aget_status(payment_id: str, *, fresh: bool = False) -> str:
    """Read-only async sample."""
    return payment_id


DECORATORS = {
    "atomic": atomic_payment_operation,
    "atomic()": atomic_payment_operation(using="default"),
    "log": log_payment_operation,
    "log()": log_payment_operation(log_start=False),
    "measure": measure_payment_time,
    "measure()": measure_payment_time(slow_ms=10),
    "audit": with_audit_log("payment.test"),
}


@pytest.mark.parametrize("decorator", DECORATORS.values(), ids=DECORATORS.keys())
def test_signatures_names_and_docs_are_kept(decorator):
    wrapped = decorator(sample)
    assert wrapped.__name__ == "sample"
    assert wrapped.__doc__ == "Sample docstring."
    assert inspect.signature(wrapped) == inspect.signature(sample)
    assert not inspect.iscoroutinefunction(wrapped)
    awrapped = decorator(async_sample)
    assert awrapped.__name__ == "async_sample"
    assert inspect.signature(awrapped) == inspect.signature(async_sample)
    assert inspect.iscoroutinefunction(awrapped)


@pytest.mark.parametrize("decorator", [cache_provider_result, cache_provider_result(ttl=5)])
def test_cache_keeps_signatures_too(decorator):
    wrapped = decorator(get_status)
    assert inspect.signature(wrapped) == inspect.signature(get_status)
    assert wrapped.__doc__ == "Read-only sample."
    awrapped = decorator(aget_status)
    assert inspect.iscoroutinefunction(awrapped)
    assert inspect.signature(awrapped) == inspect.signature(aget_status)


# -- atomic_payment_operation ----------------------------------------------------------------


def order_payment(reference):
    return services.create_payment(amount="5.00", currency="USD", reference=reference)


@pytest.mark.django_db
def test_atomic_payment_operation_commits_or_rolls_back_together():
    @atomic_payment_operation
    def two_payments(fail: bool) -> list[str]:
        first = order_payment("a")
        second = order_payment("b")
        if fail:
            raise RuntimeError("second thoughts")
        return [first.pk, second.pk]

    with pytest.raises(RuntimeError):
        two_payments(True)
    assert Payment.objects.count() == 0
    assert len(two_payments(False)) == 2
    assert Payment.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_atomic_payment_operation_wraps_async_orm_code_in_one_transaction():
    @atomic_payment_operation
    async def make(fail: bool) -> str:
        created = await sync_to_async(order_payment)("async")
        await Payment.objects.filter(pk=created.pk).aupdate(description="touched")
        if fail:
            raise RuntimeError("nope")
        return created.pk

    try:
        with pytest.raises(RuntimeError):
            asyncio.run(make(True))
        assert Payment.objects.count() == 0  # the async ORM calls were in the transaction
        pk = asyncio.run(make(False))
    finally:
        close_thread_connections()
    assert Payment.objects.get(pk=pk).description == "touched"


@pytest.mark.parametrize(
    "func",
    [
        services.process_payment,
        services.capture_payment,
        services.create_refund,
        services.sync_payment,
        services.aprocess_payment,
        process_payment_with_retry,
        money_moving(lambda: None),
    ],
)
def test_atomic_payment_operation_refuses_provider_calls(func):
    with pytest.raises(TypeError, match="calls a payment provider"):
        atomic_payment_operation(func)


def test_atomic_payment_operation_accepts_database_only_services():
    assert atomic_payment_operation(services.create_payment)
    from paydesk.services.refunds import reserve_refund

    assert atomic_payment_operation(reserve_refund)


# -- log_payment_operation ------------------------------------------------------------------


class FakePayment:
    pk = "pay_01DEC"
    status = "completed"


def ops_records(caplog):
    return [r for r in caplog.records if r.name == "paydesk.operations"]


def test_log_payment_operation_logs_start_and_end(caplog):
    @log_payment_operation
    def capture_order(*, payment, provider="stripe"):
        return payment

    with caplog.at_level(logging.INFO, logger="paydesk.operations"):
        capture_order(payment=FakePayment())
    start, end = ops_records(caplog)
    assert start.paydesk == {
        "event": "operation.started",
        "operation": "test_log_payment_operation_logs_start_and_end.<locals>.capture_order",
        "payment_id": "pay_01DEC",
        "provider": "stripe",
    }
    assert end.paydesk["event"] == "operation.finished"
    assert end.paydesk["status"] == "completed"
    assert end.paydesk["duration_ms"] >= 0
    assert "finished in" in end.getMessage()
    assert start.funcName == "test_log_payment_operation_logs_start_and_end"


def test_log_payment_operation_failures(caplog):
    @log_payment_operation(log_start=False, log_end=False)
    def decline(payment):
        raise PaymentDeclined("Your card was declined.", code="card_declined")

    @log_payment_operation(log_start=False)
    def crash(payment):
        raise KeyError("sk_live_" + "a" * 20)

    with caplog.at_level(logging.INFO, logger="paydesk.operations"):
        with pytest.raises(PaymentDeclined):
            decline("pay_1")
        with pytest.raises(KeyError):
            crash("pay_2")
    declined, crashed = ops_records(caplog)
    assert declined.levelno == logging.WARNING
    assert declined.paydesk["error_code"] == "card_declined"
    assert declined.exc_info is None
    assert crashed.levelno == logging.ERROR
    assert crashed.paydesk["payment_id"] == "pay_2"
    assert "KeyError" in crashed.exc_text
    assert "a" * 20 not in caplog.text  # redacted, traceback included


def test_log_payment_operation_async(caplog):
    @log_payment_operation
    async def confirm(payment):
        return payment

    with caplog.at_level(logging.INFO, logger="paydesk.operations"):
        assert asyncio.run(confirm(FakePayment())).pk == "pay_01DEC"
    assert [r.paydesk["event"] for r in ops_records(caplog)] == [
        "operation.started",
        "operation.finished",
    ]


# -- measure_payment_time --------------------------------------------------------------------


@pytest.fixture
def fake_metrics(monkeypatch):
    observed = []
    module = types.ModuleType("paydesk.metrics")

    @contextlib.contextmanager
    def observe_provider_call(provider, operation):
        try:
            yield
        except BaseException as exc:
            observed.append((provider, operation, type(exc).__name__))
            raise
        observed.append((provider, operation, "ok"))

    module.observe_provider_call = observe_provider_call
    monkeypatch.setitem(sys.modules, "paydesk.metrics", module)
    monkeypatch.setattr(paydesk, "metrics", module, raising=False)
    return observed


def test_measure_payment_time_logs_the_duration(caplog, fake_metrics):
    @measure_payment_time
    def build_report():
        return 42

    @measure_payment_time(name="slow_thing", slow_ms=-1)
    def slow():
        return 1

    with caplog.at_level(logging.DEBUG, logger="paydesk.timing"):
        assert build_report() == 42
        assert slow() == 1
    fast, slowed = (r for r in caplog.records if r.name == "paydesk.timing")
    assert fast.levelno == logging.DEBUG
    assert fast.paydesk["operation"] == "build_report"
    assert fast.paydesk["ok"] is True
    assert slowed.levelno == logging.WARNING
    assert slowed.getMessage().endswith("(slow)")
    assert fake_metrics == []  # not provider calls: no provider metrics


def test_measure_payment_time_on_a_provider_method_feeds_metrics(caplog, fake_metrics):
    class Timed(MockPaymentProvider):
        @measure_payment_time
        def get_payment_status(self, request):
            return super().get_payment_status(request)

    provider = Timed(alias="stripe-eu")
    provider.set_exception("provider_unavailable")
    with (
        caplog.at_level(logging.INFO, logger="paydesk.timing"),
        pytest.raises(ProviderUnavailable),
    ):
        provider.get_payment_status(None)
    [record] = [r for r in caplog.records if r.name == "paydesk.timing"]
    assert record.paydesk["event"] == "provider.call"
    assert record.paydesk["provider"] == "stripe-eu"
    assert record.paydesk["operation"] == "get_payment_status"
    assert record.paydesk["ok"] is False
    assert record.levelno == logging.WARNING
    assert fake_metrics == [("stripe-eu", "get_payment_status", "ProviderUnavailable")]


def test_measure_payment_time_async_with_an_explicit_provider(caplog, fake_metrics):
    @measure_payment_time(provider="paypal", name="fetch_order")
    async def fetch(order_id):
        await asyncio.sleep(0)
        return order_id

    with caplog.at_level(logging.INFO, logger="paydesk.timing"):
        assert asyncio.run(fetch("o-1")) == "o-1"
    assert fake_metrics == [("paypal", "fetch_order", "ok")]
    [record] = [r for r in caplog.records if r.name == "paydesk.timing"]
    assert record.paydesk["ok"] is True


# -- with_audit_log --------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_audit_log_records_success_and_failure(user):
    payment = order_payment("audit")

    @with_audit_log("payment.annotate")
    def annotate(*, payment, user, note):
        if note == "bad":
            raise InvalidTransition(f"cannot annotate; key sk_live_{'z' * 20}")
        payment.description = note
        payment.save()
        return payment

    annotate(payment=payment, user=user, note="gift wrap")
    with pytest.raises(InvalidTransition):
        annotate(payment=payment, user=user, note="bad")
    ok, failed = AuditLog.objects.order_by("id")
    assert ok.action == "payment.annotate"
    assert ok.success is True
    assert ok.object_type == "payment"
    assert ok.object_id == payment.pk
    assert ok.actor == user
    assert ok.provider == "sandbox"
    assert ok.amount == Decimal("5.00")
    assert ok.currency == "USD"
    assert failed.success is False
    assert failed.details["error"] == "InvalidTransition"
    assert failed.details["code"] == "invalid_transition"
    assert "z" * 20 not in failed.details["message"]
    assert failed.object_id == payment.pk


@pytest.mark.django_db
def test_with_audit_log_takes_the_actor_and_ip_from_the_request(rf, user):
    @with_audit_log("report.export")
    def export(request, payment: str):
        return "csv"

    request = rf.get("/", REMOTE_ADDR="203.0.113.9")
    request.user = user
    export(request, "pay_123")
    entry = AuditLog.objects.get()
    assert entry.actor == user
    assert entry.ip_address == "203.0.113.9"
    assert (entry.object_type, entry.object_id) == ("payment", "pay_123")


def test_with_audit_log_refuses_a_bad_action():
    with pytest.raises(ValueError, match="1-50"):
        with_audit_log("")
    with pytest.raises(ValueError, match="1-50"):
        with_audit_log("x" * 51)


@pytest.mark.django_db(transaction=True)
def test_with_audit_log_async():
    @with_audit_log("payment.lookup")
    async def lookup(payment: str, actor: str) -> str:
        if payment == "missing":
            raise LookupError(payment)
        return payment

    try:
        assert asyncio.run(lookup("pay_9", "api-key:shop")) == "pay_9"
        with pytest.raises(LookupError):
            asyncio.run(lookup("missing", "api-key:shop"))
    finally:
        close_thread_connections()
    entries = list(AuditLog.objects.order_by("id").values_list("actor_label", "success"))
    assert entries == [("api-key:shop", True), ("api-key:shop", False)]


# -- cache_provider_result ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "create_payment",
        "process_payment",
        "capture_payment",
        "capture",
        "refund",
        "create_refund",
        "create_refund_async",
        "_capture_funds",
        "cancel_payment",
        "retry_payment",
        "charge_card",
        "void_authorization",
        "authorize",
        "payout_merchant",
    ],
)
def test_cache_refuses_money_moving_names(name):
    func = types.FunctionType(get_status.__code__, {}, name)
    assert is_money_moving(func)
    with pytest.raises(TypeError, match="moves money"):
        cache_provider_result(ttl=30)(func)


@pytest.mark.parametrize(
    "name", ["get_payment_status", "list_refunds", "refunds_for", "payment_status", "health_check"]
)
def test_cache_accepts_read_only_names(name):
    func = types.FunctionType(get_status.__code__, {}, name)
    assert not is_money_moving(func)
    assert cache_provider_result(func)


def test_cache_refuses_marked_functions_and_paydesk_services():
    @money_moving
    def lookup_and_settle():
        return None

    for func in (lookup_and_settle, services.process_payment, services.create_refund):
        with pytest.raises(TypeError, match="moves money"):
            cache_provider_result(func)

    def refund_status():
        return "pending"

    refund_status.money_moving = False  # read-only, whatever its name says
    assert cache_provider_result(refund_status)() == "pending"


def test_cache_provider_result_caches_by_arguments():
    calls = []

    @cache_provider_result(ttl=60)
    def status(payment_id, *, fresh=False):
        calls.append((payment_id, fresh))
        return None if payment_id == "none" else {"status": "completed", "id": payment_id}

    assert status("pay_1") == {"status": "completed", "id": "pay_1"}
    assert status(payment_id="pay_1") == {"status": "completed", "id": "pay_1"}
    assert status("pay_1", fresh=False) == {"status": "completed", "id": "pay_1"}
    assert status("pay_2")["id"] == "pay_2"
    assert status("none") is None
    assert status("none") is None  # a None answer is cached too
    assert calls == [("pay_1", False), ("pay_2", False), ("none", False)]
    status.invalidate("pay_1")
    status("pay_1")
    assert calls[-1] == ("pay_1", False)
    assert len(calls) == 4
    assert status.cache_key("pay_1") == status.cache_key(payment_id="pay_1", fresh=False)
    assert status.cache_key("pay_1") != status.cache_key("pay_2")


def test_cache_does_not_keep_exceptions():
    answers = [ProviderUnavailable("down"), "ok"]

    @cache_provider_result
    def health(alias):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(ProviderUnavailable):
        health("stripe")
    assert health("stripe") == "ok"
    assert health("stripe") == "ok"
    assert answers == []


def test_cache_keys_a_provider_method_by_alias():
    class Lookup(MockPaymentProvider):
        @cache_provider_result(ttl=60)
        def saved_cards(self, customer):
            self.lookups = getattr(self, "lookups", 0) + 1
            return [f"{self.alias}:{customer}"]

    eu, us = Lookup(alias="stripe-eu"), Lookup(alias="stripe-us")
    assert eu.saved_cards("cus_1") == ["stripe-eu:cus_1"]
    assert us.saved_cards("cus_1") == ["stripe-us:cus_1"]
    assert eu.saved_cards("cus_1") == ["stripe-eu:cus_1"]
    # A new instance of the same alias (the registry rebuilt it) shares the cache.
    assert Lookup(alias="stripe-eu").saved_cards("cus_1") == ["stripe-eu:cus_1"]
    assert (eu.lookups, us.lookups) == (1, 1)


def test_cache_async():
    calls = []

    @cache_provider_result(ttl=60)
    async def rates(base):
        calls.append(base)
        return {"EUR": "0.92"}

    async def main():
        return [await rates("USD"), await rates("USD"), await rates(base="USD")]

    assert asyncio.run(main()) == [{"EUR": "0.92"}] * 3
    assert calls == ["USD"]


def test_cache_refuses_a_bad_ttl():
    with pytest.raises(ValueError, match="ttl"):
        cache_provider_result(ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        cache_provider_result(ttl=1.5)
