"""The PAYDESK settings dict: defaults, lazy reading, reload on change, env() markers."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from paydesk.conf import DEFAULTS, Env, env, paydesk_settings, resolve


def test_defaults_apply_to_missing_keys():
    with override_settings(PAYDESK={}):
        for name, value in DEFAULTS.items():
            assert getattr(paydesk_settings, name) == value
    with override_settings(PAYDESK=None):
        assert paydesk_settings.DEFAULT_PROVIDER == "sandbox"
        assert paydesk_settings.DEFAULT_CURRENCY == "USD"


def test_defaults_when_paydesk_is_not_set_at_all():
    override = override_settings()
    override.enable()
    try:
        del django_settings.PAYDESK
        paydesk_settings.reload()  # deleting a setting sends no setting_changed signal
        assert not hasattr(django_settings, "PAYDESK")
        assert DEFAULTS["DEFAULT_PROVIDER"] == paydesk_settings.DEFAULT_PROVIDER
        assert DEFAULTS["PROVIDERS"] == paydesk_settings.PROVIDERS
    finally:
        override.disable()
        paydesk_settings.reload()
    assert paydesk_settings.user_settings == django_settings.PAYDESK


def test_user_values_override_defaults_key_by_key():
    with override_settings(PAYDESK={"DEFAULT_CURRENCY": "EUR", "PROCESSING_FEE_RATE": "2.5"}):
        assert paydesk_settings.DEFAULT_CURRENCY == "EUR"
        assert paydesk_settings.PROCESSING_FEE_RATE == "2.5"
        assert DEFAULTS["DEFAULT_PROVIDER"] == paydesk_settings.DEFAULT_PROVIDER
        assert DEFAULTS["REFUND_POLICY"] == paydesk_settings.REFUND_POLICY


def test_override_settings_is_seen_and_undone():
    assert paydesk_settings.DEFAULT_CURRENCY == "USD"
    with override_settings(PAYDESK={"DEFAULT_CURRENCY": "TRY"}):
        assert paydesk_settings.DEFAULT_CURRENCY == "TRY"
        with override_settings(PAYDESK={"DEFAULT_CURRENCY": "JPY"}):
            assert paydesk_settings.DEFAULT_CURRENCY == "JPY"
        assert paydesk_settings.DEFAULT_CURRENCY == "TRY"
    assert paydesk_settings.DEFAULT_CURRENCY == "USD"


def test_settings_are_read_lazily_and_cached_until_reload(settings):
    paydesk_settings.reload()
    assert paydesk_settings._cache is None  # nothing read until first use
    assert paydesk_settings.DEFAULT_PROVIDER == "sandbox"
    assert paydesk_settings._cache is not None

    # A change that bypasses setting_changed is not seen until reload() ...
    django_settings.PAYDESK["DEFAULT_CURRENCY"] = "GBP"
    try:
        assert paydesk_settings.DEFAULT_CURRENCY == "USD"
        paydesk_settings.reload()
        assert paydesk_settings.DEFAULT_CURRENCY == "GBP"
    finally:
        del django_settings.PAYDESK["DEFAULT_CURRENCY"]
        paydesk_settings.reload()
    # ... while an unrelated setting change leaves the cache alone.
    paydesk_settings.DEFAULT_PROVIDER
    cache = paydesk_settings._cache
    settings.DEBUG = True
    assert paydesk_settings._cache is cache


def test_paydesk_not_a_dict_falls_back_to_defaults():
    # checks.py reports it as paydesk.E001; attribute access must not crash meanwhile.
    with override_settings(PAYDESK="oops"):
        assert paydesk_settings.DEFAULT_PROVIDER == "sandbox"


@pytest.mark.parametrize("name", ["NOPE", "default_provider", "DEFAULT_PROVDER", "_cache_x"])
def test_unknown_setting_attribute_is_an_attribute_error(name):
    with pytest.raises(AttributeError, match="Unknown paydesk setting"):
        getattr(paydesk_settings, name)
    assert not hasattr(paydesk_settings, name)


def test_get_merges_nested_settings_over_their_defaults():
    with override_settings(PAYDESK={"SECURITY": {"X": 1, "RATE_LIMIT_REQUESTS": 5}}):
        security = paydesk_settings.get("SECURITY")
        assert security["X"] == 1
        assert security["RATE_LIMIT_REQUESTS"] == 5
        assert security["RATE_LIMIT_WINDOW"] == DEFAULTS["SECURITY"]["RATE_LIMIT_WINDOW"]
        assert paydesk_settings.get("WEBHOOKS") == DEFAULTS["WEBHOOKS"]
        assert paydesk_settings.get("DEFAULT_CURRENCY") == "USD"
        assert paydesk_settings.get("NOT_A_SETTING", {"default": True}) == {"default": True}


# -- env() -----------------------------------------------------------------------------


def test_env_marker_resolves_at_use_time(monkeypatch):
    marker = env("PAYDESK_TEST_SECRET")
    assert isinstance(marker, Env)
    monkeypatch.delenv("PAYDESK_TEST_SECRET", raising=False)
    assert marker.resolve() is None
    monkeypatch.setenv("PAYDESK_TEST_SECRET", "first")
    assert marker.resolve() == "first"
    monkeypatch.setenv("PAYDESK_TEST_SECRET", "second")
    assert marker.resolve() == "second"


def test_env_marker_default(monkeypatch):
    monkeypatch.delenv("PAYDESK_TEST_SECRET", raising=False)
    assert env("PAYDESK_TEST_SECRET", "dflt").resolve() == "dflt"
    monkeypatch.setenv("PAYDESK_TEST_SECRET", "")
    assert env("PAYDESK_TEST_SECRET", "dflt").resolve() == ""  # set-but-empty is set


def test_env_marker_repr_never_shows_the_value(monkeypatch):
    monkeypatch.setenv("PAYDESK_TEST_SECRET", "sk_live_hunter2")
    marker = env("PAYDESK_TEST_SECRET", default="sk_default_hunter3")
    assert repr(marker) == "env('PAYDESK_TEST_SECRET')"
    assert str(marker) == "env('PAYDESK_TEST_SECRET')"
    assert "hunter" not in repr({"OPTIONS": {"KEY": marker}})
    assert "hunter" not in f"{[marker]}"


def test_resolve_walks_nested_structures(monkeypatch):
    monkeypatch.setenv("PAYDESK_TEST_A", "a")
    monkeypatch.setenv("PAYDESK_TEST_B", "b")
    value = {
        "KEY": env("PAYDESK_TEST_A"),
        "LIST": [env("PAYDESK_TEST_B"), "plain"],
        "TUPLE": (env("PAYDESK_TEST_A"), 3),
        "NESTED": {"DEEP": {"X": env("PAYDESK_TEST_B")}},
        "NUM": 1,
    }
    assert resolve(value) == {
        "KEY": "a",
        "LIST": ["b", "plain"],
        "TUPLE": ("a", 3),
        "NESTED": {"DEEP": {"X": "b"}},
        "NUM": 1,
    }
    assert isinstance(resolve(value)["TUPLE"], tuple)
    # The settings themselves are not rewritten.
    assert isinstance(value["KEY"], Env)


def test_merged_settings_are_computed_once_until_settings_change():
    from paydesk.conf import PaydeskSettings

    conf = PaydeskSettings()
    with override_settings(PAYDESK={"WEBHOOKS": {"PROCESS": "inline"}}):
        first = conf.WEBHOOKS
        first["PROCESS"] = "changed by a caller"  # a copy: nothing shared changes
        assert conf.WEBHOOKS["PROCESS"] == "inline"
        assert conf.WEBHOOKS["MAX_ATTEMPTS"] == 8  # still merged over the defaults
    conf.reload()  # what setting_changed does for the shared instance
    with override_settings(PAYDESK={"WEBHOOKS": {"PROCESS": "task"}}):
        conf.reload()
        assert conf.WEBHOOKS["PROCESS"] == "task"


def test_settings_holding_env_markers_are_not_cached(monkeypatch):
    from paydesk.conf import PaydeskSettings

    conf = PaydeskSettings()
    with override_settings(PAYDESK={"PUBLIC_BASE_URL": env("PAYDESK_TEST_URL")}):
        monkeypatch.setenv("PAYDESK_TEST_URL", "https://one.example")
        assert conf.PUBLIC_BASE_URL == "https://one.example"
        monkeypatch.setenv("PAYDESK_TEST_URL", "https://two.example")
        assert conf.PUBLIC_BASE_URL == "https://two.example"
