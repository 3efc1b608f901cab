"""paydesk.retry: what is retried, how long it waits, and that a retry cannot charge twice.

What these tests prove: only retryable errors are retried (a ``ProviderError`` by its flag,
never a ``PaymentDeclined``; httpx timeouts, connection errors, 429/5xx; classes named in
``retry_on``), the last error is raised as itself, the waits grow exponentially with equal
jitter and a cap, ``PAYDESK["RETRY"]`` supplies the defaults at call time, the decorator,
``RetryableOperation`` and the async variants keep signatures and work sync and async.
Then the payment recipes, against ``MockPaymentProvider``: retrying inside the adapter
re-sends the same request (same idempotency key) and the provider charges once, even when
the first answer was lost after the charge; ``process_payment_with_retry`` settles a lost
answer through ``sync_payment`` under the submission's key instead of submitting again; and
naively wrapping create + process in a retry cannot charge twice either. No test sleeps: a
fake ``sleep`` records the waits.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

import httpx
import pytest
from django.test import override_settings

from paydesk import services
from paydesk.exceptions import (
    PaymentDeclined,
    PaymentInProgress,
    ProviderError,
    ProviderProcessingError,
    ProviderRequestError,
    ProviderUnavailable,
)
from paydesk.models import Payment
from paydesk.money import Money
from paydesk.providers import get_payment_provider
from paydesk.retry import (
    RetryableOperation,
    RetryingProviderMixin,
    async_retry_with_backoff,
    is_retryable,
    process_payment_with_retry,
    retry_with_backoff,
    settle_payment,
)
from paydesk.states import PaymentStatus
from paydesk.testing import MockPaymentProvider
from paydesk.types import PaymentRequest, PaymentResult, ProviderStatus


class Flaky:
    """A callable that raises the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def unavailable(message="provider timed out"):
    return ProviderUnavailable(message, provider="mock")


# -- the policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ProviderUnavailable("x"), True),
        (ProviderUnavailable("x", retryable=False), False),  # the flag decides
        (ProviderProcessingError("x", retryable=True), True),
        (ProviderProcessingError("x"), False),
        (ProviderRequestError("x"), False),
        (PaymentDeclined("x"), False),
        (PaymentDeclined("x", retryable=True), False),  # a decline never, whatever its flag
        (PaymentInProgress("x"), False),
        (httpx.ConnectTimeout("x"), True),
        (httpx.ReadTimeout("x"), True),
        (httpx.ConnectError("x"), True),
        (httpx.RemoteProtocolError("x"), True),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(exc, expected):
    assert is_retryable(exc) is expected


@pytest.mark.parametrize(
    ("status", "expected"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_http_status_errors_are_retryable_only_for_429_and_5xx(status, expected):
    request = httpx.Request("POST", "https://api.example.test/charge")
    response = httpx.Response(status, request=request)
    exc = httpx.HTTPStatusError("boom", request=request, response=response)
    assert is_retryable(exc) is expected


def test_retry_on_adds_classes_but_cannot_make_a_decline_retryable():
    assert is_retryable(ValueError("x"), (ValueError,))
    assert not is_retryable(PaymentDeclined("x"), (PaymentDeclined,))
    assert not is_retryable(ProviderRequestError("x"), (ProviderRequestError,))


# -- retry_with_backoff ----------------------------------------------------------------------


def test_retries_retryable_errors_then_returns():
    sleeps = []
    flaky = Flaky(unavailable(), httpx.ConnectTimeout("slow"))
    wrapped = retry_with_backoff(
        max_attempts=3, initial_delay=1.0, jitter=False, sleep=sleeps.append
    )(flaky)
    assert wrapped() == "ok"
    assert flaky.calls == 3
    assert sleeps == [1.0, 2.0]


def test_gives_up_after_max_attempts_and_raises_the_last_error_itself():
    sleeps = []
    last = unavailable("third")
    flaky = Flaky(unavailable("first"), unavailable("second"), last, unavailable("never"))
    wrapped = retry_with_backoff(max_attempts=3, sleep=sleeps.append)(flaky)
    with pytest.raises(ProviderUnavailable) as caught:
        wrapped()
    assert caught.value is last  # not tenacity's RetryError
    assert flaky.calls == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "exc",
    [
        PaymentDeclined("card_declined"),
        PaymentDeclined("x", retryable=True),
        ProviderRequestError("bad"),
    ],
)
def test_a_decline_or_a_bad_request_is_never_retried(exc):
    sleeps = []
    flaky = Flaky(exc)
    with pytest.raises(type(exc)):
        retry_with_backoff(max_attempts=5, sleep=sleeps.append)(flaky)()
    assert flaky.calls == 1
    assert sleeps == []


def test_other_exceptions_only_when_named_in_retry_on():
    sleeps = []
    flaky = Flaky(KeyError("x"))
    with pytest.raises(KeyError):
        retry_with_backoff(max_attempts=3, sleep=sleeps.append)(flaky)()
    assert flaky.calls == 1
    flaky = Flaky(KeyError("x"))
    assert (
        retry_with_backoff(max_attempts=3, retry_on=KeyError, sleep=sleeps.append)(flaky)() == "ok"
    )
    assert flaky.calls == 2


def test_waits_grow_exponentially_up_to_max_delay():
    sleeps = []
    flaky = Flaky(*[unavailable() for _ in range(5)])
    wrapped = retry_with_backoff(
        max_attempts=6,
        initial_delay=0.5,
        exponential_base=3,
        max_delay=5,
        jitter=False,
        sleep=sleeps.append,
    )(flaky)
    assert wrapped() == "ok"
    assert sleeps == [0.5, 1.5, 4.5, 5.0, 5.0]


def test_jitter_draws_each_wait_between_half_and_all_of_the_backoff():
    sleeps = []
    flaky = Flaky(*[unavailable() for _ in range(40)])
    retry_with_backoff(max_attempts=41, initial_delay=1.0, max_delay=8, sleep=sleeps.append)(
        flaky
    )()
    ceilings = [min(8.0, 2.0**n) for n in range(40)]
    for wait, ceiling in zip(sleeps, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert len({round(w, 6) for w in sleeps[5:]}) > 1  # actually random


def test_defaults_come_from_paydesk_retry_when_the_call_starts():
    sleeps = []

    @retry_with_backoff(jitter=False, sleep=sleeps.append)
    def call(flaky):
        return flaky()

    # Decorated before the settings change: they are read per call, not at decoration.
    with override_settings(PAYDESK={"RETRY": {"ATTEMPTS": 5, "DELAY": 0.25}}):
        flaky = Flaky(*[unavailable() for _ in range(10)])
        with pytest.raises(ProviderUnavailable):
            call(flaky)
    assert flaky.calls == 5
    assert sleeps == [0.25, 0.5, 1.0, 2.0]

    sleeps.clear()
    flaky = Flaky(*[unavailable() for _ in range(10)])
    with pytest.raises(ProviderUnavailable):
        call(flaky)
    assert flaky.calls == 3  # the default: the booking seed's PAYMENT_RETRY_ATTEMPTS
    assert sleeps == [1.0, 2.0]  # ... and PAYMENT_RETRY_DELAY


def test_bad_values_fail_where_they_are_written():
    with pytest.raises(ValueError, match="max_attempts"):
        retry_with_backoff(max_attempts=0)
    with pytest.raises(ValueError, match="exponential_base"):
        retry_with_backoff(exponential_base=0.5)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryableOperation(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryableOperation(initial_delay=-1)


def test_signature_and_metadata_are_kept_bare_or_called():
    def charge_status(payment_id: str, *, verbose: bool = False) -> str:
        """Docstring."""
        return payment_id

    for wrapped in (retry_with_backoff(charge_status), retry_with_backoff()(charge_status)):
        assert wrapped.__name__ == "charge_status"
        assert wrapped.__doc__ == "Docstring."
        assert inspect.signature(wrapped) == inspect.signature(charge_status)
        assert wrapped("pay_1") == "pay_1"


def test_retries_are_logged_on_paydesk_retry_redacted(caplog):
    secret = "sk_live_" + "9" * 24
    flaky = Flaky(unavailable(f"timeout calling with key {secret}"))
    with caplog.at_level(logging.WARNING, logger="paydesk.retry"):
        retry_with_backoff(max_attempts=2, sleep=lambda s: None)(flaky)()
    [record] = [r for r in caplog.records if r.name == "paydesk.retry"]
    assert "retry 1 of 1" in record.getMessage()
    assert record.paydesk["error_code"] == "provider_unavailable"
    assert secret not in caplog.text


# -- RetryableOperation ----------------------------------------------------------------------


def test_retryable_operation_is_tenacitys_attempt_loop():
    sleeps = []
    flaky = Flaky(unavailable(), unavailable())
    operation = RetryableOperation(
        max_attempts=3, initial_delay=2, jitter=False, sleep=sleeps.append
    )
    results = []
    for attempt in operation:
        with attempt:
            results.append(flaky())
    assert results == ["ok"]
    assert operation.attempt_number == 3
    assert sleeps == [2.0, 4.0]


def test_retryable_operation_raises_the_last_error_and_skips_the_unretryable():
    def loop(flaky, attempts):
        for attempt in RetryableOperation(max_attempts=attempts, sleep=lambda s: None):
            with attempt:
                flaky()

    flaky = Flaky(unavailable(), PaymentDeclined("declined"), unavailable())
    with pytest.raises(PaymentDeclined):
        loop(flaky, 5)
    assert flaky.calls == 2

    last = unavailable("second")
    with pytest.raises(ProviderUnavailable) as caught:
        loop(Flaky(unavailable("first"), last), 2)
    assert caught.value is last


def test_retryable_operation_call_and_acall():
    operation = RetryableOperation(max_attempts=3, sleep=lambda s: None)
    assert operation.call(Flaky(unavailable())) == "ok"

    async def coro(flaky):
        return flaky()

    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    operation = RetryableOperation(max_attempts=3, initial_delay=1, jitter=False, sleep=fake_sleep)
    assert asyncio.run(operation.acall(coro, Flaky(unavailable()))) == "ok"
    assert slept == [1.0]


def test_retryable_operation_async_for():
    slept = []
    flaky = Flaky(unavailable(), unavailable())

    async def main():
        results = []
        async for attempt in RetryableOperation(
            max_attempts=3, jitter=False, initial_delay=1, sleep=slept.append
        ):
            with attempt:
                results.append(flaky())
        return results

    assert asyncio.run(main()) == ["ok"]
    assert slept == [1.0, 2.0]  # a sync fake sleep works for the async loop too


# -- async ----------------------------------------------------------------------------------


def test_async_retry_with_backoff_waits_without_blocking_the_loop():
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    flaky = Flaky(unavailable(), httpx.ReadTimeout("slow"))

    @async_retry_with_backoff(max_attempts=3, initial_delay=0.5, jitter=False, sleep=fake_sleep)
    async def fetch(payment_id: str) -> str:
        """Fetch."""
        return f"{payment_id}:{flaky()}"

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__doc__ == "Fetch."
    assert list(inspect.signature(fetch).parameters) == ["payment_id"]
    assert asyncio.run(fetch("pay_1")) == "pay_1:ok"
    assert slept == [0.5, 1.0]


def test_async_retry_never_retries_a_decline_and_refuses_sync_functions():
    flaky = Flaky(PaymentDeclined("no"))

    @async_retry_with_backoff(max_attempts=3, sleep=lambda s: None)
    async def charge():
        return flaky()

    with pytest.raises(PaymentDeclined):
        asyncio.run(charge())
    assert flaky.calls == 1
    with pytest.raises(TypeError, match="coroutine function"):
        async_retry_with_backoff()(lambda: None)


def test_retry_with_backoff_on_a_coroutine_function_is_async_too():
    flaky = Flaky(unavailable())

    @retry_with_backoff(max_attempts=2, sleep=lambda s: None)
    async def status():
        return flaky()

    assert inspect.iscoroutinefunction(status)
    assert asyncio.run(status()) == "ok"
    assert flaky.calls == 2


# -- the payment recipes -------------------------------------------------------------------


class CountingMock(MockPaymentProvider):
    """The mock, counting charges: one per idempotency key that got a successful answer.

    ``lose_answers`` makes that many create calls charge and then raise a timeout, as when
    the provider's answer is lost on the way back.
    """

    def reset(self) -> None:
        super().reset()
        self.charges: dict[str, str] = {}
        self.lose_answers = 0

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        result = super().create_payment(request)
        if result.status in (ProviderStatus.CAPTURED, ProviderStatus.AUTHORIZED):
            self.charges.setdefault(request.idempotency_key, result.provider_payment_id)
        if self.lose_answers:
            self.lose_answers -= 1
            raise ProviderUnavailable("read timed out", provider=self.alias)
        return result


class RetryingMock(RetryingProviderMixin, CountingMock):
    pass


def configured(backend: str):
    return override_settings(
        PAYDESK={
            "DEFAULT_PROVIDER": "mock",
            "PROVIDERS": {"mock": {"BACKEND": backend, "OPTIONS": {"RETRY": {"DELAY": 0.5}}}},
        }
    )


@pytest.fixture
def retrying():
    with configured("tests.test_retry.RetryingMock"):
        provider = get_payment_provider("mock")
        provider.sleeps = []
        provider.retry_sleep = provider.sleeps.append
        yield provider


@pytest.fixture
def counting():
    with configured("tests.test_retry.CountingMock"):
        yield get_payment_provider("mock")


def create_keys(provider):
    return [request.idempotency_key for name, request in provider.calls if name == "create_payment"]


@pytest.mark.django_db
def test_retrying_in_the_adapter_resends_the_same_key_and_charges_once(retrying):
    retrying.set_exception("provider_unavailable")
    retrying.set_exception("provider_unavailable")
    payment = services.create_payment(amount="25.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="tok_visa")

    assert payment.status == PaymentStatus.COMPLETED
    keys = create_keys(retrying)
    assert len(keys) == 3
    assert len(set(keys)) == 1  # every attempt carried the submission's idempotency key
    assert keys[0] == f"paydesk:{payment.pk}:attempt-1:create"
    assert list(retrying.charges) == keys[:1]  # exactly one charge
    assert payment.provider_payment_id == retrying.charges[keys[0]]
    assert len(retrying.sleeps) == 2
    assert 0.25 <= retrying.sleeps[0] <= 0.5  # OPTIONS["RETRY"]["DELAY"] over PAYDESK's


@pytest.mark.django_db
def test_retrying_in_the_adapter_after_a_lost_answer_gets_the_first_charge_back(retrying):
    retrying.lose_answers = 1  # charged, but the answer never arrived
    payment = services.create_payment(amount="25.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="tok_visa")

    assert payment.status == PaymentStatus.COMPLETED
    keys = create_keys(retrying)
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert len(retrying.charges) == 1
    assert payment.provider_payment_id == retrying.charges[keys[0]]
    assert Payment.objects.get(pk=payment.pk).captured_amount == payment.amount


@pytest.mark.django_db
def test_retrying_in_the_adapter_never_retries_a_decline(retrying):
    retrying.set_exception("card_declined")
    payment = services.create_payment(amount="25.00", currency="USD")
    payment = services.process_payment(payment=payment, payment_method_token="tok_visa")
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "card_declined"
    assert len(create_keys(retrying)) == 1
    assert retrying.sleeps == []
    assert retrying.charges == {}


@pytest.mark.django_db
def test_retrying_in_the_adapter_gives_up_and_leaves_the_outcome_to_sync(retrying):
    for _ in range(3):
        retrying.set_exception("provider_unavailable")
    payment = services.create_payment(amount="25.00", currency="USD")
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token="tok_visa")
    assert len(create_keys(retrying)) == 3  # PAYDESK["RETRY"]["ATTEMPTS"]
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


def test_the_mixin_does_not_stack_retries_on_the_default_async_twin():
    class Provider(RetryingProviderMixin, CountingMock):
        pass

    provider = Provider(alias="mock")
    provider.retry_sleep = lambda s: None
    provider.set_exception("provider_unavailable")
    provider.set_exception("provider_unavailable")
    request = PaymentRequest(payment_id="pay_a", amount=Money("5.00", "USD"), idempotency_key="k")
    result = asyncio.run(provider.create_payment_async(request))
    assert result.status == ProviderStatus.CAPTURED
    assert len(create_keys(provider)) == 3  # retried once, by the sync method: not 3 x 3


def test_the_mixin_retries_a_native_async_twin_with_the_same_request():
    class NativeAsync(MockPaymentProvider):
        seen: list

        async def create_payment_async(self, request):
            self.seen.append(request.idempotency_key)
            if len(self.seen) < 3:
                raise ProviderUnavailable("503", provider=self.alias)
            return self.create_payment(request)

    class Provider(RetryingProviderMixin, NativeAsync):
        pass

    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    provider = Provider(alias="mock")
    provider.seen = []
    provider.retry_sleep = fake_sleep
    request = PaymentRequest(payment_id="pay_a", amount=Money("5.00", "USD"), idempotency_key="k")
    result = asyncio.run(provider.create_payment_async(request))
    assert result.status == ProviderStatus.CAPTURED
    assert provider.seen == ["k", "k", "k"]
    assert len(slept) == 2


@pytest.mark.django_db
def test_process_payment_with_retry_settles_a_lost_answer_under_the_same_key(counting):
    counting.lose_answers = 1  # the provider charged; we heard a timeout
    payment = services.create_payment(amount="40.00", currency="USD")
    sleeps = []
    payment = process_payment_with_retry(
        payment=payment, payment_method_token="tok_visa", sleep=sleeps.append
    )

    assert payment.status == PaymentStatus.COMPLETED
    keys = create_keys(counting)
    assert keys == [f"paydesk:{payment.pk}:attempt-1:create"]  # never submitted again
    status_keys = [r.idempotency_key for n, r in counting.calls if n == "get_payment_status"]
    assert status_keys == keys  # asked about the very submission
    assert len(counting.charges) == 1
    assert payment.provider_payment_id == counting.charges[keys[0]]
    assert sleeps == []


@pytest.mark.django_db
def test_process_payment_with_retry_retries_the_status_question(counting):
    payment = services.create_payment(amount="40.00", currency="USD")
    counting.set_exception("provider_unavailable")  # the create call: never reached it
    counting.set_exception("provider_unavailable")  # the first status question fails too
    sleeps = []
    payment = process_payment_with_retry(
        payment=payment, payment_method_token="tok_visa", sleep=sleeps.append, max_attempts=3
    )
    # The provider never received the payment: recorded as failed, not submitted again.
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "provider_unavailable"
    assert len(create_keys(counting)) == 1
    assert counting.charges == {}
    assert len(sleeps) == 1


@pytest.mark.django_db
def test_process_payment_with_retry_gives_up_with_the_original_error(counting):
    counting.set_exception(unavailable("the submission timed out"))
    for _ in range(3):
        counting.set_next_result(ProviderStatus.PROCESSING)  # the provider cannot tell yet
    payment = services.create_payment(amount="40.00", currency="USD")
    sleeps = []
    with pytest.raises(ProviderUnavailable, match="the submission timed out"):
        process_payment_with_retry(payment=payment, payment_method_token="tok", sleep=sleeps.append)
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING
    assert len(create_keys(counting)) == 1
    assert len(sleeps) == 2


@pytest.mark.django_db
def test_process_payment_with_retry_returns_a_decline_without_asking_again(counting):
    counting.set_should_fail(True, code="insufficient_funds")
    payment = services.create_payment(amount="40.00", currency="USD")
    payment = process_payment_with_retry(payment=payment, payment_method_token="tok")
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "insufficient_funds"
    assert [name for name, _ in counting.calls] == ["create_payment"]


@pytest.mark.django_db
def test_settle_payment_returns_a_payment_still_processing_after_the_last_attempt(counting):
    counting.set_exception("provider_unavailable")
    payment = services.create_payment(amount="40.00", currency="USD")
    with pytest.raises(ProviderUnavailable):
        services.process_payment(payment=payment, payment_method_token="tok")
    for _ in range(4):
        counting.set_next_result(ProviderStatus.PROCESSING)
    sleeps = []
    settled = settle_payment(payment=payment, max_attempts=4, sleep=sleeps.append)
    assert settled.status == PaymentStatus.PROCESSING
    assert len(sleeps) == 3
    assert len(create_keys(counting)) == 1


@pytest.mark.django_db
def test_naively_retrying_create_and_process_cannot_charge_twice(counting):
    """Wrapping the whole checkout in a retry: the second attempt finds the same payment
    (same idempotency key) still processing and stops; nothing is sent twice."""
    counting.lose_answers = 1  # charged, answer lost: the dangerous case
    sleeps = []

    @retry_with_backoff(max_attempts=3, sleep=sleeps.append)
    def checkout():
        payment = services.create_payment(
            amount="15.00", currency="USD", idempotency_key="order-42"
        )
        return services.process_payment(payment=payment, payment_method_token="tok_visa")

    with pytest.raises(PaymentInProgress):
        checkout()
    assert Payment.objects.filter(idempotency_key="anonymous:order-42").count() == 1
    assert len(create_keys(counting)) == 1
    assert len(counting.charges) == 1
    assert len(sleeps) == 1  # one retry; PaymentInProgress is not retried
    # The recipe's next step settles it: the one charge is found and recorded.
    payment = settle_payment(payment=Payment.objects.get(), sleep=sleeps.append)
    assert payment.status == PaymentStatus.COMPLETED
    assert len(create_keys(counting)) == 1


def test_provider_errors_keep_their_type_through_the_decorator():
    error = ProviderError("odd", retryable=True)
    flaky = Flaky(error, error)
    with pytest.raises(ProviderError):
        retry_with_backoff(max_attempts=2, sleep=lambda s: None)(flaky)()
