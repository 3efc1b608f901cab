"""Provider health: can each configured provider take payments right now?

This module owns one decision: what "healthy" means for a provider, and who may read the
answer. A provider is healthy when it can be built from its settings and its own
``health_check()`` (a real, cheap, read-only call: Stripe's balance, a PayPal OAuth token,
iyzico's ``/payment/test``, NOWPayments' coin list; configuration only for offline providers
such as the sandbox and bank transfers) says ok within ``PAYDESK["HEALTH"]["TIMEOUT"]``
seconds. Checks run concurrently, one thread each; a check still running at the deadline is
reported ``timed out`` and left to finish on its own (its daemon thread never blocks exit).

With ``test_mode=False`` (``check_providers --production``) live-mode rules apply first:
the sandbox, a ``TEST_MODE`` provider, a Stripe test key (``sk_test_``...) or a provider in
sandbox / test ``MODE`` is unhealthy, without calling it.

The endpoint (``paydesk:health``, ``<prefix>/health/``) answers 200 when every provider is
healthy and 503 otherwise. Anyone may ask, and gets only ``status`` and counts; active staff
also get each provider's result. Answers are cached ``HEALTH["CACHE_SECONDS"]`` so that a
probe polling every few seconds does not poll the providers' APIs at that rate.

With django-health-check installed, ``PaydeskProvidersHealthCheck`` is one of its checks:
list it in ``HealthCheckView.as_view(checks=[...])`` (django-health-check 4), or add
``"health_check"`` to ``INSTALLED_APPS`` and paydesk registers it (3.x's plugin registry).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from importlib import import_module
from typing import Any

from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from .conf import paydesk_settings
from .exceptions import PaydeskError
from .metrics import observe_provider_call
from .providers.base import PaymentProvider
from .providers.registry import providers
from .types import HealthResult

__all__ = [  # noqa: F822  (PaydeskProvidersHealthCheck is built on first use: __getattr__)
    "HealthCheckResult",
    "PaydeskProvidersHealthCheck",
    "ProviderHealthChecker",
    "health_view",
    "live_mode_problems",
    "register_health_check_plugin",
]


@dataclass(frozen=True, slots=True)
class HealthCheckResult:
    provider: str
    healthy: bool
    message: str
    response_time_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mode(provider: PaymentProvider) -> str:
    mode = getattr(provider, "mode", None)
    if mode is None and callable(getattr(provider, "option", None)):
        try:
            mode = provider.option("MODE")  # type: ignore[attr-defined]
        except (KeyError, LookupError, TypeError):
            mode = None
    if mode is None:
        mode = provider.options.get("MODE")
    return str(mode or "").strip().lower()


def live_mode_problems(provider: PaymentProvider) -> list[str]:
    """Why ``provider`` would not move real money (empty when it is set up for live mode)."""
    problems = []
    if getattr(provider, "is_sandbox", False):
        problems.append("the sandbox provider moves no money")
    if getattr(provider, "test_mode", False) or provider.options.get("TEST_MODE") in (
        True,
        "true",
        "True",
        "1",
    ):
        problems.append("TEST_MODE is on")
    secret = str(provider.options.get("SECRET_KEY") or "")
    if secret.startswith(("sk_test_", "rk_test_")) or getattr(provider, "livemode", None) is False:
        problems.append("it uses a test key (sk_test_...)")
    if _mode(provider) in ("sandbox", "test"):
        problems.append(f"MODE is {_mode(provider)!r}")
    return problems


def _in_thread(fn: Callable[[], HealthResult]) -> Future[HealthResult]:
    """Run ``fn`` in a daemon thread (a hung provider must not keep the process alive)."""
    future: Future[HealthResult] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            connections.close_all()  # this thread's own connections, if the check opened any

    threading.Thread(target=run, name="paydesk-health", daemon=True).start()
    return future


class ProviderHealthChecker:
    """Check providers; ``timeout`` (seconds) defaults to ``PAYDESK["HEALTH"]["TIMEOUT"]``."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = float(
            timeout if timeout is not None else paydesk_settings.HEALTH.get("TIMEOUT", 5.0)
        )

    def check_provider(
        self, provider: PaymentProvider | str, test_mode: bool = True
    ) -> HealthCheckResult:
        """The health of one provider (an instance, or a configured alias)."""
        return self._check_many([provider], test_mode=test_mode)[0]

    def check_all_providers(
        self, test_mode: bool = True, aliases: Iterable[str] | None = None
    ) -> list[HealthCheckResult]:
        """Every configured provider (or those in ``aliases``), checked concurrently."""
        targets: list[PaymentProvider | str] = list(
            aliases if aliases is not None else providers.aliases()
        )
        return self._check_many(targets, test_mode=test_mode)

    def _check_many(
        self, targets: list[PaymentProvider | str], *, test_mode: bool
    ) -> list[HealthCheckResult]:
        results: list[HealthCheckResult | None] = [None] * len(targets)
        running: dict[int, tuple[PaymentProvider, Future[HealthResult], float]] = {}
        for index, target in enumerate(targets):
            alias = target if isinstance(target, str) else target.alias
            try:
                provider = providers[target] if isinstance(target, str) else target
            except PaydeskError as exc:
                results[index] = HealthCheckResult(alias, False, exc.message)
                continue
            if not test_mode and (problems := live_mode_problems(provider)):
                message = "not ready for live payments: " + "; ".join(problems)
                results[index] = HealthCheckResult(alias, False, message)
                continue
            running[index] = (provider, _in_thread(self._probe(provider)), time.perf_counter())
        deadline = time.monotonic() + self.timeout
        for index, (provider, future, started) in running.items():
            results[index] = self._outcome(provider, future, started, deadline)
        return [result for result in results if result is not None]

    @staticmethod
    def _probe(provider: PaymentProvider) -> Callable[[], HealthResult]:
        def probe() -> HealthResult:
            with observe_provider_call(provider.alias, "health_check"):
                return provider.health_check()

        return probe

    def _outcome(
        self,
        provider: PaymentProvider,
        future: Future[HealthResult],
        started: float,
        deadline: float,
    ) -> HealthCheckResult:
        alias = provider.alias
        try:
            answer = future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            return HealthCheckResult(
                alias, False, f"timed out after {self.timeout:g} s", self.timeout * 1000
            )
        except PaydeskError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthCheckResult(alias, False, exc.message, round(elapsed, 3))
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthCheckResult(
                alias, False, f"health check raised {type(exc).__name__}: {exc}", round(elapsed, 3)
            )
        took = answer.response_time_ms
        if took is None:
            took = (time.perf_counter() - started) * 1000
        message = answer.detail or ("ok" if answer.ok else "unhealthy")
        return HealthCheckResult(alias, bool(answer.ok), message, round(took, 3))


# -- the endpoint ---------------------------------------------------------------------------

_CACHE_KEY = "paydesk:health:v1:{mode}"


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def current_health(*, refresh: bool = False) -> dict[str, Any]:
    """``{"checked_at", "results"}`` of every provider, cached ``HEALTH["CACHE_SECONDS"]``."""
    config = paydesk_settings.HEALTH
    production = bool(config.get("PRODUCTION", False))
    key = _CACHE_KEY.format(mode="live" if production else "test")
    seconds = int(config.get("CACHE_SECONDS", 30) or 0)
    if seconds > 0 and not refresh:
        cached = cache.get(key)
        if cached is not None:
            return dict(cached)
    results = ProviderHealthChecker().check_all_providers(test_mode=not production)
    report = {
        "checked_at": timezone.now().isoformat(),
        "results": [result.to_dict() for result in results],
    }
    if seconds > 0:
        cache.set(key, report, seconds)
    return report


@require_safe
def health_view(request: HttpRequest) -> HttpResponse:
    staff = _is_staff(request)
    report = current_health(refresh=staff and request.GET.get("refresh") == "1")
    results = report["results"]
    healthy = sum(1 for result in results if result["healthy"])
    body: dict[str, Any] = {
        "status": "ok" if healthy == len(results) else "unhealthy",
        "providers": {
            "total": len(results),
            "healthy": healthy,
            "unhealthy": len(results) - healthy,
        },
        "checked_at": report["checked_at"],
    }
    if staff:
        body["results"] = results
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


# -- django-health-check --------------------------------------------------------------------


def _unhealthy_summary(*, production: bool, timeout: float | None) -> str:
    results = ProviderHealthChecker(timeout=timeout).check_all_providers(test_mode=not production)
    # Names only: django-health-check pages are often public, provider messages may not be.
    return ", ".join(result.provider for result in results if not result.healthy)


def _build_health_check_class() -> type:
    try:  # django-health-check >= 4: checks are dataclasses listed in the view
        HealthCheck = import_module("health_check").HealthCheck
    except (ImportError, AttributeError):
        return _build_legacy_health_check_class()
    if hasattr(HealthCheck, "run_check"):  # 3.2x's HealthCheck still has the 3.x API
        return _build_legacy_health_check_class()
    ServiceUnavailable = import_module("health_check.exceptions").ServiceUnavailable

    @dataclass
    class PaydeskProvidersHealthCheck(HealthCheck):  # type: ignore[valid-type,misc]
        """Every configured paydesk provider answers its health check in time."""

        production: bool = False

        @property
        def timeout(self) -> dt.timedelta:
            return dt.timedelta(seconds=float(paydesk_settings.HEALTH.get("TIMEOUT", 5.0)))

        def run(self) -> None:
            failing = _unhealthy_summary(
                production=self.production, timeout=self.timeout.total_seconds()
            )
            if failing:
                raise ServiceUnavailable(f"unhealthy payment providers: {failing}")

    PaydeskProvidersHealthCheck.__qualname__ = "PaydeskProvidersHealthCheck"
    return PaydeskProvidersHealthCheck


def _build_legacy_health_check_class() -> type:
    backends = import_module("health_check.backends")
    # 3.2x: HealthCheck; earlier 3.x: BaseHealthCheckBackend (the same API).
    BaseHealthCheckBackend = (
        getattr(backends, "HealthCheck", None) or backends.BaseHealthCheckBackend
    )
    ServiceUnavailable = import_module("health_check.exceptions").ServiceUnavailable

    class PaydeskProvidersHealthCheck(BaseHealthCheckBackend):  # type: ignore[valid-type,misc]
        """Every configured paydesk provider answers its health check (3.x plugin)."""

        critical_service = True

        def check_status(self, subset: Any = None) -> None:
            failing = _unhealthy_summary(production=False, timeout=None)
            if failing:
                self.add_error(ServiceUnavailable(f"unhealthy payment providers: {failing}"))

        def identifier(self) -> str:  # how 3.x before 3.2x names a check
            return "Payment providers (paydesk)"

        def __repr__(self) -> str:  # ... and how later ones do
            return "Payment providers (paydesk)"

    PaydeskProvidersHealthCheck.__qualname__ = "PaydeskProvidersHealthCheck"
    return PaydeskProvidersHealthCheck


_health_check_class: type | None = None


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing paydesk.health never imports health_check.
    global _health_check_class
    if name == "PaydeskProvidersHealthCheck":
        if _health_check_class is None:
            _health_check_class = _build_health_check_class()
        return _health_check_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_health_check_plugin() -> bool:
    """Register the check with django-health-check 3.x's plugin registry, if that is in use.

    Called from ``PaydeskConfig.ready``. django-health-check 4 has no registry (checks are
    listed in the view), so there is nothing to do and ``False`` is returned.
    """
    from django.apps import apps

    if not apps.is_installed("health_check"):
        return False
    try:
        plugin_dir = import_module("health_check.plugins").plugin_dir  # 3.x only
    except (ImportError, AttributeError):
        return False
    plugin_dir.register(__getattr__("PaydeskProvidersHealthCheck"))
    return True
