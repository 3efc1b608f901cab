"""Rate limiting on Django's cache: local memory and a real Redis server started here.

The Redis tests start ``redis-server`` on a free loopback port for this module and stop it
at the end. If ``redis-server`` is not installed they FAIL (``.ci/run`` installs Debian's
``redis-server``): a limiter that was never run against Redis proves nothing about
multi-process deployments.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from paydesk.exceptions import ConfigurationError
from paydesk.security.ratelimit import RateLimiter, RateLimitResult, security_settings

BACKENDS = ["locmem", "redis"]
T0 = 1_700_000_080.0  # 40 s into a 60 s window, which starts at 1_700_000_040


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; the rate limiter must be tested against real "
            "Redis. Install it (Debian: apt-get install redis-server; .ci/run does this).",
            pytrace=False,
        )
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.ping():
                    break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
            last_error = output[-2000:]
            continue  # port taken between probe and start, or a slow start: try another
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            client.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    pytest.fail(f"redis-server did not start and answer PING:\n{last_error}", pytrace=False)


class FlakyCache(LocMemCache):
    """incr() fails once as if the key expired between add() and incr()."""

    failures = 0

    def incr(self, key, delta=1, version=None):
        if FlakyCache.failures:
            FlakyCache.failures -= 1
            self.delete(key, version=version)
            raise ValueError(f"Key '{key}' not found")
        return super().incr(key, delta, version)


@pytest.fixture
def cache_settings(redis_url: str) -> Iterator[None]:
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": f"rl-{uuid.uuid4()}",
            },
            "locmem": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": f"rl-{uuid.uuid4()}",
            },
            "redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
            },
            "flaky": {"BACKEND": "tests.test_security_ratelimit.FlakyCache", "LOCATION": "flaky"},
            "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
            "down": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{_free_port()}/0",
                "OPTIONS": {"socket_connect_timeout": 0.5},
            },
        }
    ):
        yield


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(backend: str, requests: int = 3, window: int = 60, clock=None, **kwargs) -> RateLimiter:
    return RateLimiter(
        requests,
        window,
        cache_alias=backend,
        prefix=f"test:{uuid.uuid4().hex[:8]}",
        clock=clock or Clock(),
        **kwargs,
    )


pytestmark = pytest.mark.usefixtures("cache_settings")


@pytest.mark.parametrize("backend", BACKENDS)
def test_allows_up_to_the_limit_then_refuses_until_the_window_ends(backend):
    clock = Clock()
    rl = limiter(backend, requests=3, window=60, clock=clock)
    results = [rl.check("203.0.113.7") for _ in range(4)]
    assert results[:3] == [
        RateLimitResult(allowed=True, remaining=2, retry_after=0),
        RateLimitResult(allowed=True, remaining=1, retry_after=0),
        RateLimitResult(allowed=True, remaining=0, retry_after=0),
    ]
    assert results[3] == RateLimitResult(allowed=False, remaining=0, retry_after=20)
    clock.now += 19.5
    assert rl.check("203.0.113.7").retry_after == 1
    clock.now += 0.5  # the next window starts
    assert rl.check("203.0.113.7") == RateLimitResult(allowed=True, remaining=2, retry_after=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_identifiers_are_counted_separately(backend):
    rl = limiter(backend, requests=1)
    assert rl.allow("a")
    assert not rl.allow("a")
    assert rl.allow("b")
    assert rl.allow("2001:db8::1")
    assert not rl.allow("2001:db8::1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_awkward_identifiers_are_hashed_into_safe_keys(backend, recwarn):
    rl = limiter(backend, requests=1)
    awkward = ["has space", "ünïcode", "x" * 500, "new\nline", ""]
    for identifier in awkward:
        assert rl.allow(identifier)
        assert not rl.allow(identifier)
    assert rl.key("has space", 1) != rl.key("has_space", 1)
    assert len(rl.key("x" * 500, 1)) < 100
    assert not [w for w in recwarn if "CacheKeyWarning" in type(w.message).__name__]


def test_redis_keys_expire_after_their_window(redis_url):
    rl = limiter("redis", requests=5, window=60, clock=Clock(T0))
    rl.check("ttl-probe")
    key = caches["redis"].make_key(rl.key("ttl-probe", int(T0 // 60)))
    ttl = redis.Redis.from_url(redis_url).ttl(key)
    assert 0 < ttl <= 60 + 2  # 20 s left in the window + slack, never persistent


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_requests_never_overshoot(backend):
    """20 threads x 10 calls against a limit of 50: exactly 50 are allowed."""
    rl = limiter(backend, requests=50, window=3600)
    barrier = threading.Barrier(20)
    allowed: list[bool] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            mine = [rl.allow("hot-client") for _ in range(10)]
            with lock:
                allowed.extend(mine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            caches[backend].close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(allowed) == 200
    assert allowed.count(True) == 50


def test_a_key_expiring_between_add_and_incr_is_recounted():
    FlakyCache.failures = 1
    rl = limiter("flaky", requests=2)
    assert rl.check("x") == RateLimitResult(allowed=True, remaining=1, retry_after=0)
    assert FlakyCache.failures == 0


def test_a_cache_that_cannot_count_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="DummyCache"):
        limiter("dummy").check("x")


def test_a_cache_outage_fails_open_and_is_logged(caplog):
    rl = limiter("down", requests=1)
    with caplog.at_level("ERROR", logger="paydesk.security"):
        assert rl.check("x") == RateLimitResult(allowed=True, remaining=1, retry_after=0)
        assert rl.allow("x")
    assert "rate limiter cache 'down' failed" in caplog.text
    with pytest.raises(redis.exceptions.ConnectionError):
        limiter("down", fail_open=False).check("x")


def test_defaults_come_from_paydesk_security_settings():
    rl = RateLimiter(cache_alias="locmem", prefix=f"t:{uuid.uuid4().hex}", clock=Clock())
    assert (rl.requests, rl.window, rl.enabled) == (100, 60, True)
    security = {"RATE_LIMIT_REQUESTS": 2, "RATE_LIMIT_WINDOW": 10}
    with override_settings(PAYDESK={"SECURITY": security}):
        assert (rl.requests, rl.window) == (2, 10)
        assert [rl.allow("x") for _ in range(3)] == [True, True, False]
        assert rl.check("x").retry_after == 10
    with override_settings(PAYDESK={"SECURITY": {"ENABLE_RATE_LIMITING": False}}):
        assert security_settings()["RATE_LIMIT_REQUESTS"] == 100  # merged over defaults
        assert all(rl.allow("y") for _ in range(500))
    assert RateLimiter(1, 1, enabled=False).check("z") == RateLimitResult(True, 1, 0)


PROVIDERS = {
    "sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}},
    "stripe": {
        "BACKEND": "paydesk.providers.stripe.StripeProvider",
        "OPTIONS": {"RATE_LIMIT_REQUESTS": 1, "RATE_LIMIT_WINDOW": 5},
    },
}


def test_per_provider_limits_and_counters():
    with override_settings(
        PAYDESK={"PROVIDERS": PROVIDERS, "SECURITY": {"RATE_LIMIT_REQUESTS": 3}}
    ):
        stripe = RateLimiter.for_provider("stripe", cache_alias="locmem", clock=Clock())
        sandbox = RateLimiter.for_provider("sandbox", cache_alias="locmem", clock=Clock())
        assert (stripe.requests, stripe.window) == (1, 5)
        assert (sandbox.requests, sandbox.window) == (3, 60)  # falls back to SECURITY
        assert stripe.allow("1.2.3.4")
        assert not stripe.allow("1.2.3.4")
        assert sandbox.allow("1.2.3.4")  # its own counter
        with pytest.raises(ConfigurationError, match="No provider 'paypal'"):
            RateLimiter.for_provider("paypal")


@pytest.mark.parametrize(
    ("args", "security"),
    [
        ((-1, 60), {}),
        ((10, 0), {}),
        ((None, None), {"RATE_LIMIT_REQUESTS": "100"}),
        ((None, None), {"RATE_LIMIT_WINDOW": 0}),
    ],
)
def test_invalid_limits_are_configuration_errors(args, security):
    with override_settings(PAYDESK={"SECURITY": security}), pytest.raises(ConfigurationError):
        RateLimiter(*args, cache_alias="locmem").check("x")
