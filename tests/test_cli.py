"""The ``paydesk`` command line (paydesk.cli), through click's CliRunner and two real processes.

In this process Django is already configured with the test settings, so the CliRunner tests
run the commands the way ``DJANGO_SETTINGS_MODULE`` users do (a project's settings and
database). The subprocess tests run ``python -m paydesk`` from nothing: a temporary config
file, an SQLite database it migrates itself, the sandbox, offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import stripe
from click.testing import CliRunner
from django.test import override_settings

from paydesk import cli
from paydesk.conf import Env
from paydesk.models import Payment
from paydesk.providers import get_payment_provider

SANDBOX = {
    "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
    "OPTIONS": {"WEBHOOK_DELIVERY": "off", "WEBHOOK_SECRET": "whsec_cli_sandbox"},
}
EVENT = b'{"id":"evt_cli_1","type":"payment.succeeded","data":{"object":{"id":"pi_sb_1"}}}'


def run(*args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(cli.cli, list(args), input=input, catch_exceptions=False)


def paydesk_with(**providers: dict[str, Any]) -> dict[str, Any]:
    return {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {"sandbox": SANDBOX, **providers},
        "SANDBOX_IN_PRODUCTION": True,  # the test settings run with DEBUG off
    }


# -- help and usage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["", "list-providers", "check-health", "validate-config", "test-payment", "sign-webhook"],
)
def test_help_everywhere(command: str) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.output
    if not command:
        for name in ("list-providers", "check-health", "test-payment", "sign-webhook"):
            assert name in result.output


def test_usage_errors_exit_2() -> None:
    assert run("no-such-command").exit_code == 2
    assert run("test-payment").exit_code == 2  # --amount is required
    assert run("sign-webhook", "--provider", "sandbox").exit_code == 2  # --file


# -- list-providers, check-health, validate-config ------------------------------------------------


@pytest.mark.django_db
def test_list_providers_table_and_json() -> None:
    stripe_conf = {"BACKEND": "stripe", "OPTIONS": {}}
    broken = {"BACKEND": "paydesk.providers.nope.Missing"}
    with override_settings(PAYDESK=paydesk_with(stripe=stripe_conf, broken=broken)):
        table = run("list-providers")
        data = json.loads(run("list-providers", "--json").output)
    assert table.exit_code == 0
    assert "sandbox  (paydesk.providers.sandbox.SandboxProvider)  configured" in table.output
    assert "stripe" in table.output
    assert "not configured" in table.output
    assert "problem: OPTIONS['SECRET_KEY'] is not set" in table.output
    rows = {row["alias"]: row for row in data}
    assert rows["sandbox"]["native_async"] == ["confirm_payment", "get_payment_status"]
    assert set(rows["stripe"]["native_async"]) >= {"create_payment", "create_refund"}
    assert rows["broken"]["configured"] is False
    assert "Cannot import provider backend" in rows["broken"]["problems"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("with_health_module", [True, False])
def test_check_health_reports_each_provider_and_fails_when_one_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch, with_health_module: bool
) -> None:
    if not with_health_module:
        real = cli.importlib.import_module

        def without_health(name: str, *args: Any) -> Any:
            if name == "paydesk.health":
                raise ImportError(name)
            return real(name, *args)

        monkeypatch.setattr(cli.importlib, "import_module", without_health)
    elif cli.importlib.util.find_spec("paydesk.health") is None:
        pytest.skip("paydesk.health is not there")
    with override_settings(PAYDESK=paydesk_with()):
        healthy = run("check-health", "--verbose")
    assert healthy.exit_code == 0, healthy.output
    assert "Checking 1 provider(s)..." in healthy.output
    assert "[1/1] sandbox: ok" in healthy.output
    assert " ms)" in healthy.output  # --verbose shows the timing
    assert "All healthy." in healthy.output

    # Stripe without a key is unhealthy without touching the network.
    with override_settings(PAYDESK=paydesk_with(stripe={"BACKEND": "stripe", "OPTIONS": {}})):
        result = run("check-health")
        only_sandbox = run("check-health", "--provider", "sandbox")
        unknown = run("check-health", "--provider", "nope")
        as_json = run("check-health", "--json")
    assert result.exit_code == cli.EXIT_FAILURE
    assert "[2/2]" in result.output
    assert "stripe: UNHEALTHY - " in result.output
    assert "SECRET_KEY" in result.output
    assert "Unhealthy: stripe" in result.output
    assert only_sandbox.exit_code == 0
    assert unknown.exit_code == 2
    assert "not configured: nope" in unknown.output
    payload = json.loads(as_json.stdout)
    assert [r["provider"] for r in payload] == ["sandbox", "stripe"]
    assert [r["healthy"] for r in payload] == [True, False]


@pytest.mark.django_db
def test_validate_config() -> None:
    with override_settings(PAYDESK=paydesk_with()):
        valid = run("validate-config")
    assert valid.exit_code == 0, valid.output
    assert valid.output.startswith("Valid: 0 error(s)")
    with override_settings(PAYDESK={**paydesk_with(), "DEFAULT_CURRENCY": "XYZ1"}):
        invalid = run("validate-config")
        report = json.loads(run("validate-config", "--json").output)
    assert invalid.exit_code == cli.EXIT_FAILURE
    assert "paydesk.E006" in invalid.output
    assert report["ok"] is False
    assert any(message.startswith("paydesk.E006") for message in report["errors"])
    # Warnings pass unless --strict: the sandbox with DEBUG off is paydesk.W003.
    with override_settings(PAYDESK={**paydesk_with(), "SANDBOX_IN_PRODUCTION": False}):
        warned = run("validate-config")
        strict = run("validate-config", "--strict")
    assert warned.exit_code == 0
    assert "warning paydesk.W003" in warned.output
    assert strict.exit_code == cli.EXIT_FAILURE
    assert "Invalid: 0 error(s), 1 warning(s)" in strict.output


# -- test-payment ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_test_payment_creates_and_completes_a_sandbox_payment() -> None:
    with override_settings(PAYDESK=paydesk_with()):
        result = run(
            "test-payment", "--provider", "sandbox", "--amount", "10.00", "--currency", "USD"
        )
    assert result.exit_code == 0, result.output
    assert "Processed: completed" in result.output
    assert "status: completed" in result.output
    payment = Payment.objects.get()
    assert payment.money.amount == 10
    assert payment.currency == "USD"
    assert f"id: {payment.pk}" in result.output
    assert "ledger: payment_created, submitted, authorization, capture" in result.output


@pytest.mark.django_db
def test_test_payment_outcomes_and_exit_codes() -> None:
    with override_settings(PAYDESK=paydesk_with()):
        declined = run("test-payment", "--amount", "5", "--token", "pm_sandbox_declined")
        action = run("test-payment", "--amount", "5", "--token", "pm_sandbox_3ds", "--json")
        authorized = run("test-payment", "--amount", "5", "--authorize-only")
        bad_amount = run("test-payment", "--amount", "ten")
        negative = run("test-payment", "--amount", "-1")
        unknown = run("test-payment", "--amount", "5", "--provider", "nope")
        too_precise = run("test-payment", "--amount", "5.001", "--currency", "USD")
    assert declined.exit_code == cli.EXIT_FAILURE
    assert "failure: card_declined" in declined.output
    assert action.exit_code == cli.EXIT_ACTION_REQUIRED
    report = json.loads(action.stdout)
    assert report["status"] == "requires_action"
    assert report["next_action"]["redirect_url"].startswith("/paydesk/sandbox/3ds/")
    assert authorized.exit_code == 0
    assert "status: authorized" in authorized.output
    assert bad_amount.exit_code == negative.exit_code == 2
    assert unknown.exit_code == cli.EXIT_FAILURE
    assert "No payment provider is configured under alias 'nope'" in unknown.output
    assert too_precise.exit_code == cli.EXIT_FAILURE
    assert Payment.objects.count() == 3


@pytest.mark.django_db
def test_test_payment_never_uses_a_live_provider() -> None:
    live = {"BACKEND": "stripe", "OPTIONS": {"SECRET_KEY": "sk_live_123", "WEBHOOK_SECRET": "w"}}
    with override_settings(PAYDESK=paydesk_with(stripe=live)):
        result = run("test-payment", "--provider", "stripe", "--amount", "5")
    assert result.exit_code == cli.EXIT_FAILURE
    assert "not in test mode (it uses a live key)" in result.output
    assert not Payment.objects.exists()


# -- sign-webhook ---------------------------------------------------------------------------------


def headers_of(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_bytes(EVENT)
    return path


@pytest.mark.django_db
def test_sign_webhook_for_the_sandbox(event_file: Path) -> None:
    with override_settings(PAYDESK=paydesk_with()):
        result = run("sign-webhook", "--provider", "sandbox", "--file", str(event_file))
        assert result.exit_code == 0, result.output
        headers = headers_of(result.stdout)
        event = get_payment_provider("sandbox").verify_webhook(EVENT, headers)
        from_stdin = run("sign-webhook", "--provider", "sandbox", "--file", "-", input=EVENT)
        missing = run("sign-webhook", "--provider", "sandbox", "--file", "/nonexistent.json")
    assert set(headers) == {"Content-Type", "Paydesk-Sandbox-Signature"}
    assert event.event_id == "evt_cli_1"
    assert from_stdin.exit_code == 0
    assert missing.exit_code == 2


@pytest.mark.django_db
def test_sign_webhook_for_stripe_verifies_with_the_stripe_sdk(event_file: Path) -> None:
    secret = "whsec_cli_stripe_secret"
    conf = {"BACKEND": "stripe", "OPTIONS": {"SECRET_KEY": "sk_test_1", "WEBHOOK_SECRET": secret}}
    with override_settings(
        PAYDESK={**paydesk_with(stripe=conf), "PUBLIC_BASE_URL": "https://shop.example"}
    ):
        result = run("sign-webhook", "--provider", "stripe", "--file", str(event_file))
        curl = run(
            "sign-webhook", "--provider", "stripe", "--file", str(event_file), "--format", "curl"
        )
        as_json = json.loads(
            run(
                "sign-webhook",
                "--provider",
                "stripe",
                "--file",
                str(event_file),
                "--format",
                "json",
            ).stdout
        )
    assert result.exit_code == 0, result.output
    signature = headers_of(result.stdout)["Stripe-Signature"]
    event = stripe.Webhook.construct_event(EVENT.decode(), signature, secret)
    assert event["id"] == "evt_cli_1"
    assert curl.stdout.startswith("curl -sS -X POST https://shop.example/paydesk/webhooks/stripe/")
    assert f"--data-binary @{event_file}" in curl.stdout
    assert "-H 'Stripe-Signature: t=" in curl.stdout
    assert as_json["url"] == "https://shop.example/paydesk/webhooks/stripe/"
    assert "Stripe-Signature" in as_json["headers"]


@pytest.mark.django_db
def test_sign_webhook_timestamp_is_deterministic_and_checked(event_file: Path) -> None:
    with override_settings(PAYDESK=paydesk_with()):
        stale = run(
            "sign-webhook", "--provider", "sandbox", "--file", str(event_file), "--timestamp", "1"
        )
    assert stale.exit_code == cli.EXIT_FAILURE  # the provider's own check refuses it
    assert "does not verify" in stale.output


@pytest.mark.django_db
def test_sign_webhook_for_nowpayments_and_iyzico(tmp_path: Path) -> None:
    ipn = tmp_path / "ipn.json"
    ipn.write_bytes(b'{"payment_id":5077125051,"payment_status":"finished","price_amount":10}')
    notification = tmp_path / "iyzico.json"
    notification.write_bytes(
        json.dumps(
            {
                "iyziEventType": "CHECKOUT_FORM_AUTH",
                "iyziPaymentId": 22416150,
                "token": "tok-1",
                "paymentConversationId": "pay_1",
                "status": "SUCCESS",
                "iyziEventTime": 1700000000000,
            }
        ).encode()
    )
    providers = {
        "nowpayments": {
            "BACKEND": "nowpayments",
            "OPTIONS": {"API_KEY": "k", "IPN_SECRET": "ipn-secret", "MODE": "sandbox"},
        },
        "iyzico": {
            "BACKEND": "iyzico",
            "OPTIONS": {"API_KEY": "k", "SECRET_KEY": "iyzico-secret", "MODE": "sandbox"},
        },
    }
    with override_settings(PAYDESK=paydesk_with(**providers)):
        now = run("sign-webhook", "--provider", "nowpayments", "--file", str(ipn))
        iyz = run("sign-webhook", "--provider", "iyzico", "--file", str(notification))
        assert now.exit_code == 0, now.output
        assert iyz.exit_code == 0, iyz.output
        get_payment_provider("nowpayments").verify_webhook(ipn.read_bytes(), headers_of(now.stdout))
        get_payment_provider("iyzico").verify_webhook(
            notification.read_bytes(), headers_of(iyz.stdout)
        )
    assert "x-nowpayments-sig" in headers_of(now.stdout)
    assert "X-Iyz-Signature-V3" in headers_of(iyz.stdout)


@pytest.mark.django_db
def test_sign_webhook_refuses_what_it_cannot_sign(event_file: Path) -> None:
    paypal = {"BACKEND": "paypal", "OPTIONS": {"CLIENT_ID": "a", "CLIENT_SECRET": "b"}}
    no_secret = {"BACKEND": "stripe", "OPTIONS": {"SECRET_KEY": "sk_test_1"}}
    bank = {"BACKEND": "bank_transfer", "OPTIONS": {"ACCOUNT_HOLDER": "A", "IBAN": ""}}
    with override_settings(PAYDESK=paydesk_with(paypal=paypal, stripe=no_secret, bank=bank)):
        by_paypal = run("sign-webhook", "--provider", "paypal", "--file", str(event_file))
        by_stripe = run("sign-webhook", "--provider", "stripe", "--file", str(event_file))
        by_bank = run("sign-webhook", "--provider", "bank", "--file", str(event_file))
    assert by_paypal.exit_code == by_stripe.exit_code == by_bank.exit_code == cli.EXIT_FAILURE
    assert "PayPal signs with the private key of its own certificate" in by_paypal.output
    assert "has no WEBHOOK_SECRET" in by_stripe.output
    assert "Cannot sign webhooks for 'bank'" in by_bank.output


# -- settings from a config file or the environment (no Django needed) ----------------------------


def test_settings_from_the_environment_only() -> None:
    environ = {
        "PAYDESK_STRIPE_SECRET_KEY": "sk_test_x",
        "PAYDESK_BANK_TRANSFER_IBAN": "DE89370400440532013000",
        "PAYDESK_DEFAULT_CURRENCY": "EUR",
        "UNRELATED": "1",
    }
    paydesk = cli.build_paydesk_settings(None, environ)
    assert list(paydesk["PROVIDERS"]) == ["sandbox", "bank_transfer", "stripe"]
    stripe_options = paydesk["PROVIDERS"]["stripe"]["OPTIONS"]
    assert isinstance(stripe_options["SECRET_KEY"], Env)  # read when built, never printed
    assert stripe_options["SECRET_KEY"].name == "PAYDESK_STRIPE_SECRET_KEY"
    assert paydesk["PROVIDERS"]["bank_transfer"]["OPTIONS"].keys() == {"IBAN"}
    assert paydesk["PROVIDERS"]["bank_transfer"]["BACKEND"] == "bank_transfer"
    assert paydesk["DEFAULT_CURRENCY"] == "EUR"


def test_listed_providers_and_backends_from_the_environment() -> None:
    environ = {
        "PAYDESK_PROVIDERS": "shop_stripe, sandbox",
        "PAYDESK_SHOP_STRIPE_BACKEND": "stripe",
        "PAYDESK_SHOP_STRIPE_SECRET_KEY": "sk_test_x",
        "PAYDESK_PAYPAL_CLIENT_ID": "ignored: not listed",
    }
    paydesk = cli.build_paydesk_settings(None, environ)
    assert list(paydesk["PROVIDERS"]) == ["shop_stripe", "sandbox"]
    assert paydesk["PROVIDERS"]["shop_stripe"]["BACKEND"] == "stripe"
    assert paydesk["PROVIDERS"]["shop_stripe"]["OPTIONS"].keys() == {"SECRET_KEY"}


def test_config_file_with_env_markers_and_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "paydesk.toml"
    path.write_text(
        """
database = "data/cli.sqlite3"

[paydesk]
DEFAULT_PROVIDER = "stripe"

[paydesk.PROVIDERS.stripe]
BACKEND = "stripe"
OPTIONS = { SECRET_KEY = { env = "MY_STRIPE_KEY" }, WEBHOOK_SECRET = "whsec_file" }
"""
    )
    config = cli.load_config(path)
    assert config["database"] == str(tmp_path / "data" / "cli.sqlite3")
    paydesk = cli.build_paydesk_settings(config, {"PAYDESK_STRIPE_WEBHOOK_SECRET": "whsec_env"})
    options = paydesk["PROVIDERS"]["stripe"]["OPTIONS"]
    assert list(paydesk["PROVIDERS"]) == ["stripe"]  # the file lists the providers
    assert isinstance(options["SECRET_KEY"], Env)
    assert options["SECRET_KEY"].name == "MY_STRIPE_KEY"
    assert options["WEBHOOK_SECRET"].name == "PAYDESK_STRIPE_WEBHOOK_SECRET"  # env wins
    assert paydesk["DEFAULT_PROVIDER"] == "stripe"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[paydesk\n", "is not valid TOML"),
        ('datbase = "x"\n', "unknown key(s) datbase"),
        ('paydesk = "x"\n', "must be a table"),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "paydesk.toml"
    path.write_text(text)
    with pytest.raises(cli.CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cli.load_config(path)
    with pytest.raises(cli.CliError, match="does not exist"):
        cli.load_config(tmp_path / "missing.toml")


def test_a_config_file_is_refused_once_django_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "paydesk.toml"
    path.write_text("[paydesk]\n")
    result = run("--config", str(path), "list-providers")
    assert result.exit_code == cli.EXIT_FAILURE
    assert "already configured" in result.output


# -- real processes: `python -m paydesk` with nothing but a config file --------------------------


def paydesk_process(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PAYDESK_"))}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "paydesk", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_python_m_paydesk_help(tmp_path: Path) -> None:
    result = paydesk_process("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: paydesk [OPTIONS] COMMAND [ARGS]..." in result.stdout


def test_python_m_paydesk_test_payment_offline_with_a_temporary_config(tmp_path: Path) -> None:
    config = tmp_path / "paydesk.toml"
    config.write_text(
        '[paydesk]\nDEFAULT_CURRENCY = "USD"\n\n[paydesk.PROVIDERS.sandbox]\nBACKEND = "sandbox"\n'
    )
    result = paydesk_process(
        "--config",
        str(config),
        "test-payment",
        "--provider",
        "sandbox",
        "--amount",
        "10.00",
        "--currency",
        "USD",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Processed: completed" in result.stdout
    assert "status: completed" in result.stdout
    assert "amount: 10.00 USD" in result.stdout
    assert list(tmp_path.iterdir()) == [config]  # the temporary database is gone


def test_python_m_paydesk_from_the_environment_keeps_its_database(tmp_path: Path) -> None:
    database = tmp_path / "cli.sqlite3"
    extra = {"PAYDESK_DATABASE": str(database), "PAYDESK_SANDBOX_WEBHOOK_DELIVERY": "inprocess"}
    first = paydesk_process(
        "test-payment", "--amount", "3", "--json", cwd=tmp_path, extra_env=extra
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["status"] == "completed"
    assert "webhook_received" in report["ledger"]  # the sandbox's signed webhook, in-process
    listed = paydesk_process("list-providers", "--json", cwd=tmp_path, extra_env=extra)
    assert [row["alias"] for row in json.loads(listed.stdout)] == ["sandbox"]
    assert database.exists()
