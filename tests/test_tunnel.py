"""runserver_tunnel: a clear error without pyngrok or an authtoken; with a (fake) pyngrok,
the tunnel is opened, every provider's public webhook URL printed, and the tunnel closed."""

from __future__ import annotations

import sys
import types
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from paydesk.conf import paydesk_settings
from paydesk.management.commands import runserver_tunnel

PUBLIC = "https://abc123.ngrok-free.app"


class FakeNgrok:
    """pyngrok's ``conf`` and ``ngrok`` modules, recording what the command asks of them."""

    def __init__(self, *, fail: bool = False, config_path: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail
        self.package = types.ModuleType("pyngrok")
        self.conf = types.ModuleType("pyngrok.conf")
        self.ngrok = types.ModuleType("pyngrok.ngrok")
        fake = self

        class PyngrokConfig:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs

        self.conf.PyngrokConfig = PyngrokConfig  # type: ignore[attr-defined]
        self.conf.get_default = lambda: types.SimpleNamespace(config_path=config_path)  # type: ignore[attr-defined]
        self.conf.DEFAULT_NGROK_CONFIG_PATH = None  # type: ignore[attr-defined]

        def connect(addr: str, proto: str, pyngrok_config: Any = None, **options: Any) -> Any:
            fake.calls.append(("connect", (addr, proto, pyngrok_config.kwargs, options)))
            if fake.fail:
                raise RuntimeError("ERR_NGROK_4018: authentication failed")
            return types.SimpleNamespace(public_url=PUBLIC)

        self.ngrok.connect = connect  # type: ignore[attr-defined]
        self.ngrok.disconnect = lambda url, pyngrok_config=None: fake.calls.append(  # type: ignore[attr-defined]
            ("disconnect", url)
        )
        self.ngrok.kill = lambda pyngrok_config=None: fake.calls.append(("kill", None))  # type: ignore[attr-defined]
        self.package.conf = self.conf  # type: ignore[attr-defined]
        self.package.ngrok = self.ngrok  # type: ignore[attr-defined]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "pyngrok", self.package)
        monkeypatch.setitem(sys.modules, "pyngrok.conf", self.conf)
        monkeypatch.setitem(sys.modules, "pyngrok.ngrok", self.ngrok)


@pytest.fixture
def contained():
    """The command changes settings in-process (as it must for runserver); keep that here."""
    with override_settings(
        PAYDESK=dict(paydesk_settings.user_settings),
        ALLOWED_HOSTS=["testserver"],
        CSRF_TRUSTED_ORIGINS=[],
    ):
        yield


@pytest.fixture
def served(monkeypatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(
        runserver_tunnel.Command, "serve", lambda self, addrport: calls.append(addrport)
    )
    return calls


def test_without_pyngrok_the_error_explains_the_alternatives(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyngrok", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "pyngrok.conf", None)

    with pytest.raises(CommandError) as excinfo:
        call_command("runserver_tunnel")

    message = str(excinfo.value)
    assert "pyngrok is not installed" in message
    assert 'pip install "django-paydesk[tunnel]"' in message
    assert "NGROK_AUTHTOKEN" in message
    assert "in-process" in message
    assert "sign-webhook" in message


def test_without_an_authtoken_the_error_says_how_to_set_one(monkeypatch, served):
    FakeNgrok().install(monkeypatch)
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)

    with pytest.raises(CommandError) as excinfo:
        call_command("runserver_tunnel")

    assert "ngrok needs an authtoken: set NGROK_AUTHTOKEN" in str(excinfo.value)
    assert "sign-webhook" in str(excinfo.value)
    assert served == []


@pytest.mark.usefixtures("contained")
def test_the_tunnel_opens_prints_webhook_urls_and_closes(monkeypatch, served):
    fake = FakeNgrok()
    fake.install(monkeypatch)
    monkeypatch.setenv("NGROK_AUTHTOKEN", "tok_123")
    out = StringIO()

    call_command("runserver_tunnel", "0.0.0.0:8123", "--region", "eu", stdout=out)

    text = out.getvalue()
    assert f"Tunnel open: {PUBLIC}" in text
    assert f"  sandbox: {PUBLIC}/paydesk/webhooks/sandbox/" in text
    assert served == ["0.0.0.0:8123"]
    (connect, disconnect, kill) = fake.calls
    assert connect == ("connect", ("8123", "http", {"auth_token": "tok_123", "region": "eu"}, {}))
    assert disconnect == ("disconnect", PUBLIC)
    assert kill == ("kill", None)
    # Django answers on the tunnel's host, and providers are told the public base URL.
    assert "abc123.ngrok-free.app" in settings.ALLOWED_HOSTS
    assert PUBLIC in settings.CSRF_TRUSTED_ORIGINS
    assert paydesk_settings.PUBLIC_BASE_URL == PUBLIC


@pytest.mark.usefixtures("contained")
def test_providers_without_webhooks_are_marked(monkeypatch, served):
    FakeNgrok().install(monkeypatch)
    config = dict(paydesk_settings.user_settings)
    config["PROVIDERS"] = {
        **paydesk_settings.PROVIDERS,
        "mock": {"BACKEND": "paydesk.testing.MockPaymentProvider", "OPTIONS": {}},
    }
    out = StringIO()
    with override_settings(PAYDESK=config):
        call_command("runserver_tunnel", "--authtoken", "tok", stdout=out)
    assert f"  mock: {PUBLIC}/paydesk/webhooks/mock/  (this provider sends no webhooks)" in (
        out.getvalue()
    )


@pytest.mark.usefixtures("contained")
def test_an_authtoken_in_ngroks_config_file_is_enough(monkeypatch, served, tmp_path):
    path = tmp_path / "ngrok.yml"
    path.write_text('version: "2"\nauthtoken: abc\n')
    FakeNgrok(config_path=str(path)).install(monkeypatch)
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    call_command("runserver_tunnel", stdout=StringIO())
    assert served == ["127.0.0.1:8000"]


@pytest.mark.usefixtures("contained")
def test_a_failing_tunnel_is_a_clear_error(monkeypatch, served):
    FakeNgrok(fail=True).install(monkeypatch)
    monkeypatch.setenv("NGROK_AUTHTOKEN", "bad")
    with pytest.raises(CommandError) as excinfo:
        call_command("runserver_tunnel")
    assert "ngrok could not open a tunnel: ERR_NGROK_4018" in str(excinfo.value)
    assert "sign-webhook" in str(excinfo.value)
    assert served == []


@pytest.mark.usefixtures("contained")
def test_the_tunnel_is_closed_when_the_server_stops(monkeypatch):
    fake = FakeNgrok()
    fake.install(monkeypatch)
    monkeypatch.setenv("NGROK_AUTHTOKEN", "tok")

    def interrupted(self: Any, addrport: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runserver_tunnel.Command, "serve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_command("runserver_tunnel", stdout=StringIO())
    assert [name for name, _ in fake.calls] == ["connect", "disconnect", "kill"]
