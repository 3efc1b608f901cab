"""paydesk.health: provider checks with timeouts, live-mode rules, the endpoint, the command."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.test import RequestFactory, override_settings
from django.urls import reverse

import paydesk.health as health
from paydesk.conf import paydesk_settings
from paydesk.exceptions import ProviderUnavailable
from paydesk.health import HealthCheckResult, ProviderHealthChecker, live_mode_problems
from paydesk.providers.base import PaymentProvider
from paydesk.providers.registry import get_payment_provider
from paydesk.testing import MockPaymentProvider
from paydesk.types import HealthResult

HERE = "tests.test_health"


class SlowProvider(PaymentProvider):
    """A provider whose health check hangs for OPTIONS["SLEEP"] seconds."""

    def health_check(self) -> HealthResult:
        time.sleep(float(self.options.get("SLEEP", 2.0)))
        return HealthResult(ok=True, detail="slow but fine")


class BrokenProvider(PaymentProvider):
    def health_check(self) -> HealthResult:
        raise ProviderUnavailable("upstream 503", provider=self.alias)


class BuggyProvider(PaymentProvider):
    def health_check(self) -> HealthResult:
        raise KeyError("oops")


class CountingProvider(PaymentProvider):
    calls = 0
    lock = threading.Lock()

    def health_check(self) -> HealthResult:
        with CountingProvider.lock:
            CountingProvider.calls += 1
        return HealthResult(ok=True, detail="counted", response_time_ms=1.5)


class EftLikeProvider(PaymentProvider):
    """Shaped like the bank-transfer provider: a ``test_mode`` attribute from OPTIONS."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test_mode = bool(self.options.get("TEST_MODE"))


@contextmanager
def configured(**aliases: tuple[str, dict[str, Any]]) -> Iterator[None]:
    """Configure exactly these providers (alias -> (backend, options))."""
    config = dict(paydesk_settings.user_settings)
    config["PROVIDERS"] = {
        alias: {"BACKEND": backend, "OPTIONS": options}
        for alias, (backend, options) in aliases.items()
    }
    config["DEFAULT_PROVIDER"] = next(iter(aliases))
    with override_settings(PAYDESK=config):
        yield


SANDBOX = ("paydesk.providers.sandbox.SandboxProvider", {"WEBHOOK_DELIVERY": "off"})
MOCK = ("paydesk.testing.MockPaymentProvider", {})


# -- the checker ------------------------------------------------------------------------------


def test_a_configured_offline_provider_is_healthy():
    result = ProviderHealthChecker().check_provider("sandbox")

    assert isinstance(result, HealthCheckResult)
    assert (result.provider, result.healthy, result.message) == ("sandbox", True, "configured")
    assert result.response_time_ms is not None
    assert result.response_time_ms >= 0
    assert result.to_dict() == {
        "provider": "sandbox",
        "healthy": True,
        "message": "configured",
        "response_time_ms": result.response_time_ms,
    }


def test_an_instance_can_be_checked_directly(mock: MockPaymentProvider):
    assert ProviderHealthChecker().check_provider(mock).healthy
    assert ProviderHealthChecker().check_provider(mock.alias).provider == "mock"


def test_an_unknown_alias_is_unhealthy_not_an_exception():
    result = ProviderHealthChecker().check_provider("nope")

    assert not result.healthy
    assert "No payment provider is configured under alias 'nope'" in result.message


def test_a_provider_missing_options_is_unhealthy():
    stripe = ("paydesk.providers.stripe.StripeProvider", {})
    with configured(stripe=stripe):
        result = ProviderHealthChecker().check_provider("stripe")
    assert not result.healthy
    assert "SECRET_KEY" in result.message


def test_a_hanging_check_times_out_without_waiting_for_it():
    with configured(slow=(f"{HERE}.SlowProvider", {"SLEEP": 3})):
        started = time.monotonic()
        result = ProviderHealthChecker(timeout=0.2).check_provider("slow")
        took = time.monotonic() - started

    assert not result.healthy
    assert result.message == "timed out after 0.2 s"
    assert result.response_time_ms == 200
    assert took < 1.5


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("BrokenProvider", "upstream 503"),
        ("BuggyProvider", "health check raised KeyError: 'oops'"),
    ],
)
def test_a_check_that_raises_is_unhealthy(backend: str, message: str):
    with configured(broken=(f"{HERE}.{backend}", {})):
        result = ProviderHealthChecker().check_provider("broken")
    assert not result.healthy
    assert result.message == message
    assert result.response_time_ms is not None


def test_all_providers_are_checked_concurrently_and_in_order():
    slow = (f"{HERE}.SlowProvider", {"SLEEP": 0.4})
    with configured(a=slow, b=slow, c=slow, sandbox=SANDBOX, broken=(f"{HERE}.BrokenProvider", {})):
        started = time.monotonic()
        results = ProviderHealthChecker(timeout=5).check_all_providers()
        took = time.monotonic() - started

    assert [r.provider for r in results] == ["a", "b", "c", "sandbox", "broken"]
    assert [r.healthy for r in results] == [True, True, True, True, False]
    assert took < 1.1  # three 0.4 s checks one after another would take 1.2 s


def test_only_the_slow_check_times_out_among_many():
    with configured(
        fast=(f"{HERE}.CountingProvider", {}), slow=(f"{HERE}.SlowProvider", {"SLEEP": 2})
    ):
        results = ProviderHealthChecker(timeout=0.3).check_all_providers()
    assert {r.provider: r.healthy for r in results} == {"fast": True, "slow": False}
    assert results[0].response_time_ms == 1.5  # the provider's own figure is kept


def test_aliases_limit_the_check():
    with configured(sandbox=SANDBOX, mock=MOCK):
        results = ProviderHealthChecker().check_all_providers(aliases=["mock"])
    assert [r.provider for r in results] == ["mock"]


def test_the_timeout_defaults_to_the_setting():
    assert ProviderHealthChecker().timeout == 5.0
    config = {**paydesk_settings.user_settings, "HEALTH": {"TIMEOUT": 1.5}}
    with override_settings(PAYDESK=config):
        assert ProviderHealthChecker().timeout == 1.5
        assert paydesk_settings.HEALTH["CACHE_SECONDS"] == 30  # merged over the defaults


# -- live-mode rules --------------------------------------------------------------------------


def test_production_mode_fails_the_sandbox_without_calling_it():
    assert ProviderHealthChecker().check_provider("sandbox", test_mode=True).healthy

    result = ProviderHealthChecker().check_provider("sandbox", test_mode=False)

    assert not result.healthy
    assert result.message == "not ready for live payments: the sandbox provider moves no money"


def test_production_mode_fails_test_keys_and_test_modes():
    stripe_test = ("paydesk.providers.stripe.StripeProvider", {"SECRET_KEY": "sk_test_123"})
    with configured(
        stripe=stripe_test,
        eft=(f"{HERE}.EftLikeProvider", {"TEST_MODE": True}),
        paypal=(f"{HERE}.CountingProvider", {"MODE": "sandbox"}),
        live=(f"{HERE}.CountingProvider", {"MODE": "live", "SECRET_KEY": "sk_live_1"}),
    ):
        CountingProvider.calls = 0
        results = {r.provider: r for r in ProviderHealthChecker().check_all_providers(False)}

    assert "it uses a test key (sk_test_...)" in results["stripe"].message
    assert "TEST_MODE is on" in results["eft"].message
    assert "MODE is 'sandbox'" in results["paypal"].message
    assert results["live"].healthy
    assert CountingProvider.calls == 1  # only the live one was called
    assert not any(results[a].healthy for a in ("stripe", "eft", "paypal"))


def test_live_mode_problems_of_real_providers():
    with configured(
        stripe=("paydesk.providers.stripe.StripeProvider", {"SECRET_KEY": "sk_live_123"}),
        iyzico=(
            "paydesk.providers.iyzico.IyzicoProvider",
            {"API_KEY": "k", "SECRET_KEY": "s"},  # MODE defaults to "sandbox"
        ),
    ):
        assert live_mode_problems(get_payment_provider("stripe")) == []
        assert live_mode_problems(get_payment_provider("iyzico")) == ["MODE is 'sandbox'"]


# -- the endpoint -----------------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)


@pytest.mark.django_db
def test_the_endpoint_shows_the_public_only_counts(client):
    response = client.get(reverse("paydesk:health"))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["providers"] == {"total": 1, "healthy": 1, "unhealthy": 0}
    assert "results" not in body
    assert "checked_at" in body


@pytest.mark.django_db
def test_the_endpoint_answers_503_and_staff_see_why(client, staff):
    with configured(sandbox=SANDBOX, broken=(f"{HERE}.BrokenProvider", {})):
        anonymous = client.get(reverse("paydesk:health"))
        client.force_login(staff)
        detailed = client.get(reverse("paydesk:health"))

    assert anonymous.status_code == 503
    assert anonymous.json()["providers"] == {"total": 2, "healthy": 1, "unhealthy": 1}
    assert "upstream 503" not in anonymous.content.decode()
    assert detailed.status_code == 503
    results = {r["provider"]: r for r in detailed.json()["results"]}
    assert results["broken"]["message"] == "upstream 503"
    assert results["sandbox"]["healthy"] is True


@pytest.mark.django_db
def test_the_endpoint_caches_its_answer(client, staff):
    with configured(counting=(f"{HERE}.CountingProvider", {})):
        CountingProvider.calls = 0
        for _ in range(3):
            assert client.get(reverse("paydesk:health")).status_code == 200
        assert CountingProvider.calls == 1
        client.get(reverse("paydesk:health") + "?refresh=1")  # anonymous: ignored
        assert CountingProvider.calls == 1
        client.force_login(staff)
        client.get(reverse("paydesk:health") + "?refresh=1")
        assert CountingProvider.calls == 2


@pytest.mark.django_db
def test_the_endpoint_can_apply_production_rules_and_skip_the_cache(client):
    config = {
        **paydesk_settings.user_settings,
        "HEALTH": {"PRODUCTION": True, "CACHE_SECONDS": 0},
    }
    with override_settings(PAYDESK=config):
        response = client.get(reverse("paydesk:health"))
    assert response.status_code == 503
    assert reverse("paydesk:health") == "/paydesk/health/"


@pytest.mark.django_db
def test_the_endpoint_only_answers_reads(client):
    assert client.post(reverse("paydesk:health")).status_code == 405


# -- the command ------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("check_providers", *args, stdout=out)
    return out.getvalue()


def test_the_command_passes_when_everything_is_healthy():
    with configured(sandbox=SANDBOX, mock=MOCK):
        output = run()
        verbose = run("--verbose")
    assert "OK    sandbox" in output
    assert "OK    mock" in output
    assert "configured" not in output
    assert "OK    sandbox (" in verbose
    assert ": configured" in verbose
    assert "All 2 provider(s) healthy." in verbose


def test_the_command_fails_with_a_non_zero_exit_code():
    with (
        configured(sandbox=SANDBOX, slow=(f"{HERE}.SlowProvider", {"SLEEP": 3})),
        pytest.raises(CommandError) as excinfo,
    ):
        run("--timeout", "0.2")
    assert excinfo.value.returncode == 1
    assert "1 of 2 provider(s) unhealthy: slow" in str(excinfo.value)


def test_the_command_checks_one_provider_and_prints_json():
    with configured(sandbox=SANDBOX, broken=(f"{HERE}.BrokenProvider", {})):
        output = run("--provider", "sandbox", "--json")
    assert [r["provider"] for r in json.loads(output)] == ["sandbox"]


def test_the_command_in_production_mode_fails_the_sandbox():
    out = StringIO()
    with pytest.raises(CommandError, match="sandbox"):
        call_command("check_providers", "--production", stdout=out)
    assert "FAIL  sandbox: not ready for live payments" in out.getvalue()


def test_the_command_reports_an_unknown_alias():
    with pytest.raises(CommandError, match="unhealthy: nope"):
        run("--provider", "nope")


def test_the_command_exits_non_zero_from_the_shell(tmp_path):
    # As cron or a deploy script would run it: a real process and its exit status.
    import subprocess

    from django.conf import settings

    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": ":".join(sys.path),
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
    }
    assert settings.configured
    code = (
        "from django.core.management import execute_from_command_line as e; import sys; e(sys.argv)"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, "check_providers"], env=env, capture_output=True, text=True
    )
    failing = subprocess.run(
        [sys.executable, "-c", code, "check_providers", "--production"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert failing.returncode == 1
    assert "unhealthy: sandbox" in failing.stderr


# -- django-health-check ---------------------------------------------------------------------


def test_the_django_health_check_4_check_passes_and_fails():
    pytest.importorskip("health_check")
    from health_check.exceptions import ServiceUnavailable

    check_class = health.PaydeskProvidersHealthCheck
    assert check_class.__name__ == "PaydeskProvidersHealthCheck"
    check_class().run()  # the sandbox is healthy: nothing raised

    with configured(sandbox=SANDBOX, broken=(f"{HERE}.BrokenProvider", {})):
        with pytest.raises(ServiceUnavailable) as excinfo:
            check_class().run()
        with pytest.raises(ServiceUnavailable, match="sandbox"):
            check_class(production=True).run()
    assert "unhealthy payment providers: broken" in str(excinfo.value)
    assert "upstream" not in str(excinfo.value)  # names only, for public pages


def test_the_check_runs_in_django_health_checks_view():
    pytest.importorskip("health_check")
    from health_check.views import HealthCheckView

    view = HealthCheckView.as_view(checks=["paydesk.health.PaydeskProvidersHealthCheck"])
    request = RequestFactory().get("/ht/?format=json")
    ok = async_to_sync(view)(request)
    with configured(broken=(f"{HERE}.BrokenProvider", {})):
        failing = async_to_sync(view)(RequestFactory().get("/ht/?format=json"))

    assert ok.status_code == 200
    assert json.loads(ok.content) == {"PaydeskProvidersHealthCheck(production=False)": "OK"}
    assert failing.status_code == 500
    assert "unhealthy payment providers: broken" in failing.content.decode()


def test_no_plugin_is_registered_without_health_check_installed():
    assert health.register_health_check_plugin() is False


def test_the_3x_plugin_is_registered_when_health_check_is_installed(monkeypatch):
    # django-health-check 3.x's API (plugin_dir, BaseHealthCheckBackend), as a stand-in.
    registered: list[type] = []

    class BaseHealthCheckBackend:
        def __init__(self) -> None:
            self.errors: list[Exception] = []

        def add_error(self, error: Exception) -> None:
            self.errors.append(error)

    class ServiceUnavailable(Exception):
        pass

    package = types.ModuleType("health_check")  # no HealthCheck: not 4.x
    backends = types.ModuleType("health_check.backends")
    backends.BaseHealthCheckBackend = BaseHealthCheckBackend  # type: ignore[attr-defined]
    exceptions = types.ModuleType("health_check.exceptions")
    exceptions.ServiceUnavailable = ServiceUnavailable  # type: ignore[attr-defined]
    plugins = types.ModuleType("health_check.plugins")
    plugins.plugin_dir = types.SimpleNamespace(register=registered.append)  # type: ignore[attr-defined]
    for name, module in [
        ("health_check", package),
        ("health_check.backends", backends),
        ("health_check.exceptions", exceptions),
        ("health_check.plugins", plugins),
    ]:
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(health, "_health_check_class", None)
    from django.apps import apps

    monkeypatch.setattr(apps, "is_installed", lambda name: name == "health_check")

    assert health.register_health_check_plugin() is True

    (plugin,) = registered
    assert issubclass(plugin, BaseHealthCheckBackend)
    instance = plugin()
    instance.check_status()
    assert instance.errors == []
    assert instance.identifier() == "Payment providers (paydesk)"
    with configured(broken=(f"{HERE}.BrokenProvider", {})):
        instance.check_status()
    assert [str(e) for e in instance.errors] == ["unhealthy payment providers: broken"]
    monkeypatch.setattr(health, "_health_check_class", None)  # rebuilt for 4.x afterwards


def test_an_unknown_module_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        health.NoSuchThing
