"""The provider registry: lazy, cached per alias, rebuilt when PAYDESK changes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from paydesk.exceptions import ConfigurationError
from paydesk.providers import registry
from paydesk.providers.base import PaymentProvider, ProviderInfo
from paydesk.providers.registry import (
    get_payment_provider,
    list_available_providers,
    providers,
    register_provider_class,
)
from paydesk.providers.sandbox import SandboxProvider
from paydesk.testing import MockPaymentProvider
from paydesk.types import Capability

SANDBOX = {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}}
HERE = "tests.test_registry"


class AcmeProvider(PaymentProvider):
    display_name = "Acme Pay"
    icon = "rocket"
    capabilities = frozenset({Capability.REFUND, Capability.WEBHOOKS})
    webhook_signature_header = "Acme-Signature"
    webhook_signature_algorithm = "HMAC-SHA512"
    required_options = ("API_KEY", "WEBHOOK_SECRET")


class SlowProvider(PaymentProvider):
    """Counts how often it is built; building takes a while, to widen any race."""

    built = 0
    built_lock = threading.Lock()

    def __init__(self, *, alias: str, options: dict[str, Any] | None = None) -> None:
        time.sleep(0.05)
        with SlowProvider.built_lock:
            SlowProvider.built += 1
        super().__init__(alias=alias, options=options)


def paydesk(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"DEFAULT_PROVIDER": "sandbox", "PROVIDERS": {"sandbox": SANDBOX}}
    config.update(overrides)
    return config


@pytest.fixture
def clean_registered() -> Iterator[None]:
    saved = dict(registry._registered)
    yield
    registry._registered.clear()
    registry._registered.update(saved)
    providers.reset()


# -- lazy settings and caching ---------------------------------------------------------


def test_default_provider_follows_the_settings():
    assert isinstance(get_payment_provider(), SandboxProvider)
    assert get_payment_provider().alias == "sandbox"
    config = paydesk(
        DEFAULT_PROVIDER="acme",
        PROVIDERS={"sandbox": SANDBOX, "acme": {"BACKEND": f"{HERE}.AcmeProvider"}},
    )
    with override_settings(PAYDESK=config):
        provider = get_payment_provider()
        assert isinstance(provider, AcmeProvider)
        assert provider.alias == "acme"
    assert isinstance(get_payment_provider(), SandboxProvider)


def test_a_provider_is_built_once_per_alias():
    first = get_payment_provider("sandbox")
    assert get_payment_provider("sandbox") is first
    assert get_payment_provider() is first
    assert providers["sandbox"] is first


def test_two_aliases_of_one_backend_are_two_instances_with_their_own_options():
    config = paydesk(
        PROVIDERS={
            "sandbox": SANDBOX,
            "eu": {"BACKEND": f"{HERE}.AcmeProvider", "OPTIONS": {"API_KEY": "eu"}},
            "us": {"BACKEND": f"{HERE}.AcmeProvider", "OPTIONS": {"API_KEY": "us"}},
        }
    )
    with override_settings(PAYDESK=config):
        eu, us = get_payment_provider("eu"), get_payment_provider("us")
        assert eu is not us
        assert (eu.alias, eu.options["API_KEY"]) == ("eu", "eu")
        assert (us.alias, us.options["API_KEY"]) == ("us", "us")


def test_providers_are_rebuilt_after_a_settings_change():
    before = get_payment_provider("sandbox")
    with override_settings(PAYDESK=paydesk()):
        during = get_payment_provider("sandbox")
        assert during is not before
        assert get_payment_provider("sandbox") is during
    after = get_payment_provider("sandbox")
    assert after is not during
    assert after is not before


def test_options_change_is_seen_by_the_rebuilt_provider():
    entry = {"BACKEND": f"{HERE}.AcmeProvider", "OPTIONS": {"API_KEY": "one"}}
    with override_settings(PAYDESK=paydesk(PROVIDERS={"sandbox": SANDBOX, "acme": entry})):
        assert get_payment_provider("acme").options["API_KEY"] == "one"
        changed = {"BACKEND": f"{HERE}.AcmeProvider", "OPTIONS": {"API_KEY": "two"}}
        with override_settings(PAYDESK=paydesk(PROVIDERS={"sandbox": SANDBOX, "acme": changed})):
            assert get_payment_provider("acme").options["API_KEY"] == "two"
        assert get_payment_provider("acme").options["API_KEY"] == "one"


def test_concurrent_first_use_builds_one_instance():
    SlowProvider.built = 0
    entry = {"BACKEND": f"{HERE}.SlowProvider"}
    with override_settings(PAYDESK=paydesk(PROVIDERS={"sandbox": SANDBOX, "slow": entry})):
        barrier = threading.Barrier(8, timeout=10)
        seen: list[PaymentProvider] = []

        def worker() -> None:
            barrier.wait()
            seen.append(get_payment_provider("slow"))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

        assert len(seen) == 8
        assert len({id(p) for p in seen}) == 1
        assert SlowProvider.built == 1


def test_set_instance_overrides_until_reset():
    mock = MockPaymentProvider(alias="sandbox")
    providers.set_instance("sandbox", mock)
    assert get_payment_provider("sandbox") is mock
    providers.reset()
    assert isinstance(get_payment_provider("sandbox"), SandboxProvider)


# -- errors ----------------------------------------------------------------------------


def test_unknown_alias_lists_the_configured_ones():
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "acme": {"BACKEND": f"{HERE}.AcmeProvider"}})
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError) as info:
        get_payment_provider("stripe")
    message = info.value.message
    assert "'stripe'" in message
    assert "configured: acme, sandbox" in message
    assert info.value.code == "configuration_error"


def test_default_provider_that_is_not_configured_is_a_configuration_error():
    config = paydesk(DEFAULT_PROVIDER="paypal")
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError, match="'paypal'"):
        get_payment_provider()


@pytest.mark.parametrize(
    "backend", ["paydesk.providers.nope.NopeProvider", "nodots", "paydesk.providers.sandbox.Nope"]
)
def test_backend_that_cannot_be_imported(backend):
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "bad": {"BACKEND": backend}})
    with override_settings(PAYDESK=config):
        with pytest.raises(ConfigurationError) as info:
            get_payment_provider("bad")
        assert backend in info.value.message
        assert "register_provider_class" in info.value.message  # says what to do instead
        # The good alias is unaffected.
        assert isinstance(get_payment_provider("sandbox"), SandboxProvider)


@pytest.mark.parametrize("backend", ["paydesk.conf.Env", "paydesk.conf.paydesk_settings"])
def test_backend_that_is_not_a_provider(backend):
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "bad": {"BACKEND": backend}})
    expected = re.escape("is not a paydesk.providers.base.PaymentProvider")
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError, match=expected):
        get_payment_provider("bad")


def test_backend_given_as_a_class_is_a_configuration_error_not_a_crash():
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "bad": {"BACKEND": SandboxProvider}})
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError):
        get_payment_provider("bad")


def test_entry_without_backend():
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "bad": {"OPTIONS": {}}})
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError, match="BACKEND"):
        get_payment_provider("bad")


def test_providers_not_a_dict():
    config = paydesk(PROVIDERS=["sandbox"])
    with override_settings(PAYDESK=config), pytest.raises(ConfigurationError, match="a dict"):
        get_payment_provider("sandbox")


# -- registering short names -----------------------------------------------------------


@pytest.mark.usefixtures("clean_registered")
def test_register_provider_class_makes_a_short_backend_name():
    register_provider_class("acme", AcmeProvider)
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "payments": {"BACKEND": "acme"}})
    with override_settings(PAYDESK=config):
        provider = get_payment_provider("payments")
    assert type(provider) is AcmeProvider
    assert provider.alias == "payments"


@pytest.mark.usefixtures("clean_registered")
def test_register_provider_class_drops_cached_instances():
    first = get_payment_provider("sandbox")
    register_provider_class("acme", AcmeProvider)
    assert get_payment_provider("sandbox") is not first


@pytest.mark.usefixtures("clean_registered")
def test_a_registered_name_can_replace_a_builtin_name():
    register_provider_class("sandbox", MockPaymentProvider)
    config = paydesk(PROVIDERS={"sandbox": {"BACKEND": "sandbox"}})
    with override_settings(PAYDESK=config):
        assert isinstance(get_payment_provider("sandbox"), MockPaymentProvider)


def test_builtin_short_name_sandbox():
    with override_settings(PAYDESK=paydesk(PROVIDERS={"sandbox": {"BACKEND": "sandbox"}})):
        assert isinstance(get_payment_provider("sandbox"), SandboxProvider)


@pytest.mark.usefixtures("clean_registered")
@pytest.mark.parametrize(
    "cls", [object, "paydesk.providers.sandbox.SandboxProvider", SandboxProvider(alias="x"), None]
)
def test_register_provider_class_refuses_non_providers(cls):
    with pytest.raises(ConfigurationError, match="needs a PaymentProvider subclass"):
        register_provider_class("bad", cls)
    assert "bad" not in registry._registered


# -- listing ---------------------------------------------------------------------------


def test_list_available_providers_describes_each_configured_provider():
    config = paydesk(
        PROVIDERS={
            "sandbox": SANDBOX,
            "acme": {
                "BACKEND": f"{HERE}.AcmeProvider",
                "OPTIONS": {"API_KEY": "k", "WEBHOOK_SECRET": "w"},
            },
        }
    )
    with override_settings(PAYDESK=config):
        infos = {info.alias: info for info in list_available_providers()}

    assert set(infos) == {"sandbox", "acme"}
    sandbox = infos["sandbox"]
    assert isinstance(sandbox, ProviderInfo)
    assert sandbox.backend == "paydesk.providers.sandbox.SandboxProvider"
    assert sandbox.display_name == "Sandbox"
    assert sandbox.icon == "flask"
    assert {Capability.REFUND, Capability.CAPTURE, Capability.HOSTED_CHECKOUT} <= (
        sandbox.capabilities
    )
    assert sandbox.webhook_signature_header == "Paydesk-Sandbox-Signature"
    assert sandbox.webhook_signature_algorithm == "HMAC-SHA256"
    assert sandbox.configured is True
    assert sandbox.problems == ()

    acme = infos["acme"]
    assert acme == ProviderInfo(
        alias="acme",
        backend=f"{HERE}.AcmeProvider",
        display_name="Acme Pay",
        icon="rocket",
        capabilities=frozenset({Capability.REFUND, Capability.WEBHOOKS}),
        webhook_signature_header="Acme-Signature",
        webhook_signature_algorithm="HMAC-SHA512",
        configured=True,
        problems=(),
    )


def test_provider_with_missing_required_options_is_listed_as_not_configured():
    entry = {"BACKEND": f"{HERE}.AcmeProvider", "OPTIONS": {"API_KEY": ""}}
    with override_settings(PAYDESK=paydesk(PROVIDERS={"sandbox": SANDBOX, "acme": entry})):
        (acme,) = [i for i in list_available_providers() if i.alias == "acme"]
        assert get_payment_provider("acme").is_configured is False
    assert acme.configured is False
    assert acme.problems == (
        "OPTIONS['API_KEY'] is not set",
        "OPTIONS['WEBHOOK_SECRET'] is not set",
    )


def test_unbuildable_providers_are_left_out_of_the_list():
    config = paydesk(PROVIDERS={"sandbox": SANDBOX, "bad": {"BACKEND": "nope.Nope"}})
    with override_settings(PAYDESK=config):
        assert [i.alias for i in list_available_providers()] == ["sandbox"]
