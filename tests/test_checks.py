"""paydesk's system checks: each documented id fires for its misconfiguration, with a hint.

The provider classes below are referenced by dotted path (``tests.test_checks.X``) from
``PAYDESK["PROVIDERS"]``, exactly as a project would reference its own adapter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.db import connections
from django.test import override_settings

import paydesk.checks as paydesk_check_module
from paydesk.checks import (
    ValidationReport,
    check_configuration,
    paydesk_checks,
    validate_settings,
)
from paydesk.conf import env
from paydesk.exceptions import ConfigurationError
from paydesk.providers.base import PaymentProvider
from paydesk.providers.registry import get_payment_provider

SANDBOX = {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}}
HERE = "tests.test_checks"


class KeyedProvider(PaymentProvider):
    """Needs an API key; its webhooks need a secret."""

    display_name = "Keyed"
    required_options = ("API_KEY", "WEBHOOK_SECRET")


class NeedsModeProvider(PaymentProvider):
    """Refuses to be built without a valid MODE option."""

    def __init__(self, *, alias: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(alias=alias, options=options)
        if self.options.get("MODE") not in ("live", "test"):
            raise ValueError("MODE must be 'live' or 'test'")


class SubscriptProvider(PaymentProvider):
    """Reads a required option by subscript, as many adapters do."""

    def __init__(self, *, alias: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(alias=alias, options=options)
        self.api_key = self.options["API_KEY"]


class NotAProvider:
    pass


def paydesk(**overrides: Any) -> dict[str, Any]:
    """A valid PAYDESK dict (sandbox only) with ``overrides`` applied."""
    config: dict[str, Any] = {"DEFAULT_PROVIDER": "sandbox", "PROVIDERS": {"sandbox": SANDBOX}}
    config.update(overrides)
    return config


def messages(config: Any, **settings: Any) -> list[checks.CheckMessage]:
    with override_settings(PAYDESK=config, **settings):
        return paydesk_checks()


def by_id(found: list[checks.CheckMessage], check_id: str) -> list[checks.CheckMessage]:
    return [m for m in found if m.id == check_id]


def ids(found: list[checks.CheckMessage]) -> set[str]:
    return {m.id for m in found}


def only(found: list[checks.CheckMessage], check_id: str) -> checks.CheckMessage:
    matching = by_id(found, check_id)
    assert len(matching) == 1, f"expected one {check_id}, got {found!r}"
    return matching[0]


def errors(found: list[checks.CheckMessage]) -> list[checks.CheckMessage]:
    return [m for m in found if m.level >= checks.ERROR]


# -- the documented table --------------------------------------------------------------


def test_every_documented_id_is_covered_here():
    documented = set(re.findall(r"paydesk\.[EW]\d{3}", paydesk_check_module.__doc__ or ""))
    tested = set(re.findall(r"paydesk\.[EW]\d{3}", Path(__file__).read_text()))
    assert documented
    assert documented <= tested, sorted(documented - tested)


@pytest.mark.parametrize("config", ["sandbox", ["sandbox"], 42])
def test_e001_paydesk_is_not_a_dict(config):
    found = messages(config)
    message = only(found, "paydesk.E001")
    assert message.level == checks.ERROR
    assert message.hint
    assert ids(found) == {"paydesk.E001"}


@pytest.mark.parametrize("providers", [{}, [], "sandbox", None])
def test_e002_providers_missing_empty_or_not_a_dict(providers):
    message = only(messages(paydesk(PROVIDERS=providers)), "paydesk.E002")
    assert message.level == checks.ERROR
    assert "SandboxProvider" in message.hint


@pytest.mark.parametrize("entry", [{"OPTIONS": {}}, {"BACKEND": ""}, "paydesk.SandboxProvider"])
def test_e003_provider_without_backend(entry):
    found = messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "broken": entry}))
    message = only(found, "paydesk.E003")
    assert "'broken'" in message.msg
    assert message.hint


@pytest.mark.parametrize(
    "backend",
    ["paydesk.providers.nope.NopeProvider", "not_a_module_path", f"{HERE}.NotAProvider"],
)
def test_e004_backend_cannot_be_imported_or_is_not_a_provider(backend):
    found = messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "bad": {"BACKEND": backend}}))
    message = only(found, "paydesk.E004")
    assert message.level == checks.ERROR
    assert "'bad'" in message.msg
    assert backend in message.msg


def test_e004_backend_given_as_a_class_instead_of_a_path():
    # A common slip: "BACKEND": SandboxProvider (the class) instead of its dotted path.
    from paydesk.providers.sandbox import SandboxProvider

    found = messages(paydesk(PROVIDERS={"sandbox": {"BACKEND": SandboxProvider}}))
    assert "paydesk.E004" in ids(found)


def test_e005_default_provider_not_configured():
    message = only(messages(paydesk(DEFAULT_PROVIDER="stripe")), "paydesk.E005")
    assert "'stripe'" in message.msg
    assert "sandbox" in message.hint


@pytest.mark.parametrize("currency", ["XYZ", "US", "", 840, None])
def test_e006_default_currency_not_iso(currency):
    message = only(messages(paydesk(DEFAULT_CURRENCY=currency)), "paydesk.E006")
    assert message.hint


@pytest.mark.parametrize("rate", [3.0, "101", "-1", "abc", None, True])
def test_e007_processing_fee_rate_not_a_percentage(rate):
    message = only(messages(paydesk(PROCESSING_FEE_RATE=rate)), "paydesk.E007")
    assert message.hint == 'For a 3 % fee write "3".'


@pytest.mark.parametrize("rate", ["0", "2.9", "100", 3])
def test_valid_processing_fee_rates_pass(rate):
    assert "paydesk.E007" not in ids(messages(paydesk(PROCESSING_FEE_RATE=rate)))


@pytest.mark.parametrize("policy", ["myshop.policy.Missing", "paydesk.policy.Nope"])
def test_e008_refund_policy_cannot_be_imported(policy):
    message = only(messages(paydesk(REFUND_POLICY=policy)), "paydesk.E008")
    assert "RefundPolicy" in message.hint


def test_e009_unknown_key_is_reported_as_a_typo():
    found = messages(paydesk(DEFAULT_PROVDER="sandbox", SECURITY={}))
    message = only(found, "paydesk.E009")
    assert "DEFAULT_PROVDER" in message.msg
    assert "SECURITY" not in message.msg  # a key later features read is not a typo
    assert "DEFAULT_PROVIDER" in message.hint


def test_e010_provider_cannot_be_built_from_its_options():
    entry = {"BACKEND": f"{HERE}.NeedsModeProvider", "OPTIONS": {"MODE": "prod"}}
    message = only(messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "m": entry})), "paydesk.E010")
    assert "MODE must be" in message.msg
    assert message.hint
    fixed = {"BACKEND": f"{HERE}.NeedsModeProvider", "OPTIONS": {"MODE": "test"}}
    assert "paydesk.E010" not in ids(messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "m": fixed})))


def test_e010_provider_raising_keyerror_for_a_missing_option_is_reported_not_crashed():
    entry = {"BACKEND": f"{HERE}.SubscriptProvider", "OPTIONS": {}}
    found = messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "s": entry}))
    message = only(found, "paydesk.E010")
    assert "API_KEY" in message.msg


@pytest.mark.parametrize("alias", ["providers", "health", "stats"])
def test_e011_provider_alias_is_a_reserved_webhook_path_segment(alias):
    # The webhook info endpoints own these segments (tests/test_webhooks_info.py has more).
    message = only(
        messages(paydesk(PROVIDERS={"sandbox": SANDBOX, alias: SANDBOX})), "paydesk.E011"
    )
    assert message.level == checks.ERROR
    assert alias in message.msg
    assert message.hint
    assert "paydesk.E011" not in ids(
        messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "h": SANDBOX}))
    )


def test_w001_provider_missing_credentials():
    entry = {"BACKEND": f"{HERE}.KeyedProvider", "OPTIONS": {"WEBHOOK_SECRET": "whsec"}}
    found = messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "keyed": entry}))
    message = only(found, "paydesk.W001")
    assert message.level == checks.WARNING
    assert "OPTIONS['API_KEY'] is not set" in message.msg
    assert "PAYDESK_KEYED_" in message.hint
    assert "paydesk.W002" not in ids(found)
    assert errors(found) == []


def test_w002_provider_webhook_secret_missing():
    entry = {"BACKEND": f"{HERE}.KeyedProvider", "OPTIONS": {"API_KEY": "sk"}}
    found = messages(paydesk(PROVIDERS={"sandbox": SANDBOX, "keyed": entry}))
    message = only(found, "paydesk.W002")
    assert "WEBHOOK_SECRET" in message.msg
    assert "refused" in message.msg
    assert message.hint
    assert "paydesk.W001" not in ids(found)


def test_w003_sandbox_with_debug_off():
    message = only(messages(paydesk(), DEBUG=False), "paydesk.W003")
    assert message.level == checks.WARNING
    assert "SANDBOX_IN_PRODUCTION" in message.hint
    assert "paydesk.W003" not in ids(messages(paydesk(), DEBUG=True))
    staging = paydesk(SANDBOX_IN_PRODUCTION=True)
    assert "paydesk.W003" not in ids(messages(staging, DEBUG=False))


def test_w005_test_mode_with_debug_off():
    bank = {
        "BACKEND": "paydesk.providers.bank_transfer.BankTransferProvider",
        "OPTIONS": {"TEST_MODE": True, "IBAN": "DE89370400440532013000"},
    }
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "bank_transfer": bank})
    message = only(messages(config, DEBUG=False), "paydesk.W005")
    assert message.level == checks.WARNING
    assert "TEST_MODE" in message.hint
    assert "paydesk.W005" not in ids(messages(config, DEBUG=True))
    bank_live = {**bank, "OPTIONS": {"IBAN": "DE89370400440532013000"}}
    live = paydesk(PROVIDERS={"sandbox": SANDBOX, "bank_transfer": bank_live})
    assert "paydesk.W005" not in ids(messages(live, DEBUG=False))


def _with_databases(monkeypatch, databases: dict[str, dict[str, Any]]) -> None:
    # connections.settings is what the check reads; replace it for the test only.
    monkeypatch.setattr(connections, "settings", databases)


@pytest.mark.parametrize("options", [{}, {"timeout": 20}, {"transaction_mode": "DEFERRED"}, None])
def test_w004_sqlite_without_immediate_transactions(monkeypatch, options):
    db: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"}
    if options is not None:
        db["OPTIONS"] = options
    _with_databases(monkeypatch, {"default": db})

    found = paydesk_check_module._database_messages()

    message = only(found, "paydesk.W004")
    assert message.level == checks.WARNING
    assert "'default'" in message.msg
    assert "IMMEDIATE" in message.hint


def test_w004_not_raised_for_immediate_sqlite_or_postgresql(monkeypatch):
    _with_databases(
        monkeypatch,
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "x.sqlite3",
                "OPTIONS": {"transaction_mode": "IMMEDIATE"},
            },
            "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
        },
    )
    assert paydesk_check_module._database_messages() == []


def test_w004_reported_through_the_check_for_each_bad_alias(monkeypatch):
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}
    _with_databases(monkeypatch, {"default": sqlite, "replica": dict(sqlite)})
    found = by_id(messages(paydesk()), "paydesk.W004")
    assert sorted(m.msg.split("'")[1] for m in found) == ["default", "replica"]


# -- clean configuration, run_checks, validate_settings ---------------------------------


def test_the_test_settings_are_clean():
    found = paydesk_checks()
    assert errors(found) == []
    # tests.settings has DEBUG=False and the sandbox; SQLite runs with IMMEDIATE.
    assert ids(found) <= {"paydesk.W003"}


def test_a_clean_configuration_gives_no_messages_at_all():
    found = messages(
        paydesk(DEFAULT_CURRENCY="EUR", PROCESSING_FEE_RATE="2.5", SANDBOX_IN_PRODUCTION=True)
    )
    assert found == []


def test_run_checks_runs_them_under_the_paydesk_tag():
    with override_settings(PAYDESK=paydesk(DEFAULT_PROVIDER="stripe")):
        found = checks.run_checks(tags=["paydesk"])
    assert "paydesk.E005" in ids(found)
    assert all(m.id.startswith("paydesk.") for m in found)


def test_several_problems_are_all_reported_at_once():
    found = messages(
        paydesk(DEFAULT_PROVIDER="stripe", DEFAULT_CURRENCY="XYZ", PROCESSING_FEE_RATE=1.5)
    )
    assert {"paydesk.E005", "paydesk.E006", "paydesk.E007"} <= ids(found)


def test_validate_settings_returns_errors_and_warnings():
    with override_settings(PAYDESK=paydesk(), DEBUG=False):
        report = validate_settings()
    assert isinstance(report, ValidationReport)
    assert set(report) == {"errors", "warnings"}
    assert report["errors"] == []
    assert len(report["warnings"]) == 1
    assert report["warnings"][0].startswith("paydesk.W003: ")
    assert report.ok is True

    with override_settings(PAYDESK=paydesk(DEFAULT_PROVIDER="stripe")):
        report = validate_settings()
    assert report.ok is False
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith("paydesk.E005: ")


def test_validate_settings_can_raise():
    with override_settings(PAYDESK=paydesk(DEFAULT_CURRENCY="XYZ")):
        with pytest.raises(ConfigurationError) as info:
            validate_settings(raise_on_error=True)
        assert "paydesk.E006" in info.value.message
        with pytest.raises(ConfigurationError):
            check_configuration()
    with override_settings(PAYDESK=paydesk(), DEBUG=False):
        # Warnings alone do not raise.
        assert validate_settings(raise_on_error=True).ok
        check_configuration()


# -- env() markers ---------------------------------------------------------------------


def test_env_option_is_resolved_when_the_provider_is_built(monkeypatch):
    monkeypatch.delenv("PAYDESK_TEST_SECRET", raising=False)
    entry = {
        "BACKEND": f"{HERE}.KeyedProvider",
        "OPTIONS": {"API_KEY": env("PAYDESK_TEST_SECRET"), "WEBHOOK_SECRET": "whsec"},
    }
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "keyed": entry})
    with override_settings(PAYDESK=config):
        # Unset: the check names the option, not a value.
        assert "OPTIONS['API_KEY'] is not set" in only(paydesk_checks(), "paydesk.W001").msg

        # Set after settings loaded: read when the provider is built.
        monkeypatch.setenv("PAYDESK_TEST_SECRET", "sk_test_s3cr3t")
        assert "paydesk.W001" not in ids(paydesk_checks())
        provider = get_payment_provider("keyed")
        assert provider.options["API_KEY"] == "sk_test_s3cr3t"
        assert provider.is_configured

        # The marker's repr, and so the settings' repr, never shows the value.
        marker = config["PROVIDERS"]["keyed"]["OPTIONS"]["API_KEY"]
        assert repr(marker) == "env('PAYDESK_TEST_SECRET')"
        assert "sk_test_s3cr3t" not in repr(config)
        assert "sk_test_s3cr3t" not in str(config)


def test_env_default_is_used_when_the_variable_is_unset(monkeypatch):
    monkeypatch.delenv("PAYDESK_TEST_SECRET", raising=False)
    entry = {
        "BACKEND": f"{HERE}.KeyedProvider",
        "OPTIONS": {"API_KEY": env("PAYDESK_TEST_SECRET", "fallback"), "WEBHOOK_SECRET": "w"},
    }
    with override_settings(PAYDESK=paydesk(PROVIDERS={"sandbox": SANDBOX, "keyed": entry})):
        assert get_payment_provider("keyed").options["API_KEY"] == "fallback"


# -- paydesk.E012: the dashboard's settings ---------------------------------------------------


@pytest.mark.parametrize(
    ("dashboard", "fragment"),
    [
        ({"POLL_SECONDS": 0}, "POLL_SECONDS = 0"),
        ({"POLL_SECONDS": "30"}, "POLL_SECONDS = '30'"),
        ({"PAGE_SIZE": 10_000}, "PAGE_SIZE = 10000"),
        ({"PAGE_SIZE": True}, "PAGE_SIZE = True"),
        ({"POLL": 30}, "unknown key(s) POLL"),
    ],
)
def test_a_misconfigured_dashboard_is_a_system_check_error(dashboard, fragment):
    with override_settings(PAYDESK={"DASHBOARD": dashboard}):
        errors = [m for m in paydesk_checks() if m.id == "paydesk.E012"]
    assert len(errors) == 1
    assert fragment in errors[0].msg


def test_the_default_dashboard_settings_pass_the_checks():
    assert not [m for m in paydesk_checks() if m.id == "paydesk.E012"]


# -- paydesk.E013-E015: settings whose loaders refuse them ------------------------------------


@pytest.mark.parametrize(
    ("paydesk", "check_id", "fragment"),
    [
        ({"FRAUD": {"RULES": [{"RULE": "no.such.rule"}]}}, "paydesk.E013", "neither a built-in"),
        ({"FRAUD": {"RULES": [{"OPTIONS": {}}]}}, "paydesk.E013", "RULES"),
        (
            {"FRAUD": {"REVIEW_THRESHOLD": 200, "BLOCK_THRESHOLD": 100}},
            "paydesk.E013",
            "REVIEW_THRESHOLD <= BLOCK_THRESHOLD",
        ),
        ({"FRAUD": {"REVIEW_THRESHOLD": "many"}}, "paydesk.E013", "whole numbers"),
        (
            {"AUTO_REFUNDS": {"RULES": [{"RULE": "no.such.rule"}]}},
            "paydesk.E014",
            "cannot be imported",
        ),
        ({"AUTO_REFUNDS": {"RULES": [42]}}, "paydesk.E014", '"RULE"'),
        ({"RATES": {"SOURCE": "no.such.Source"}}, "paydesk.E015", "cannot be imported"),
        ({"RATES": {"SOURCE": "paydesk.money.Money"}}, "paydesk.E015", "not a paydesk.rates"),
        ({"RATES": {"ROUNDING": "ROUND_NEAREST"}}, "paydesk.E015", "rounding mode"),
        ({"RATES": {"MAX_AGE_DAYS": -1}}, "paydesk.E015", "MAX_AGE_DAYS"),
        ({"RATES": {"CROSS_VIA": "EURO"}}, "paydesk.E015", "CROSS_VIA"),
    ],
)
def test_a_setting_its_loader_refuses_is_a_system_check_error(paydesk, check_id, fragment):
    with override_settings(PAYDESK=paydesk):
        found = [m for m in paydesk_checks() if m.id == check_id]
    assert len(found) == 1, [m.msg for m in paydesk_checks()]
    assert fragment in found[0].msg
    assert found[0].hint


def test_valid_fraud_auto_refund_and_rates_settings_pass():
    paydesk = {
        "FRAUD": {
            "RULES": [{"RULE": "amount_limit", "OPTIONS": {"limits": {"USD": "500.00"}}}],
            "REVIEW_THRESHOLD": 40,
            "BLOCK_THRESHOLD": 90,
        },
        "AUTO_REFUNDS": {"RULES": ["duplicate_reference"]},
        "RATES": {"SOURCE": "paydesk.rates.ManualRatesSource", "CROSS_VIA": "usd"},
    }
    with override_settings(PAYDESK=paydesk):
        ids = {m.id for m in paydesk_checks()}
    assert not ids & {"paydesk.E013", "paydesk.E014", "paydesk.E015"}
