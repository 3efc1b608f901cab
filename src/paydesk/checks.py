"""System checks for paydesk's configuration.

This module owns one decision: which misconfigurations are caught before traffic is, and
under which stable id. ``manage.py check`` (and ``check --deploy``) run them; so can
``validate_settings()`` and ``check_configuration()`` from your own code.

=============  =========  =============================================================
id             level      meaning
=============  =========  =============================================================
paydesk.E001   Error      ``PAYDESK`` is not a dict
paydesk.E002   Error      ``PAYDESK["PROVIDERS"]`` is missing, empty or not a dict
paydesk.E003   Error      a provider entry has no ``BACKEND``
paydesk.E004   Error      a provider's ``BACKEND`` cannot be imported / is not a provider
paydesk.E005   Error      ``DEFAULT_PROVIDER`` names no configured provider
paydesk.E006   Error      ``DEFAULT_CURRENCY`` is not an ISO 4217 currency
paydesk.E007   Error      ``PROCESSING_FEE_RATE`` is not a number from 0 to 100
paydesk.E008   Error      ``REFUND_POLICY`` cannot be imported
paydesk.E009   Error      an unknown key in ``PAYDESK`` (usually a typo)
paydesk.E010   Error      the provider cannot be built from its OPTIONS
paydesk.E011   Error      a provider alias is a reserved webhook path segment
                          (``providers``, ``health``, ``stats``)
paydesk.E012   Error      ``PAYDESK["DASHBOARD"]`` has an unknown key, or ``POLL_SECONDS`` /
                          ``PAGE_SIZE`` is not a whole number in range
paydesk.E013   Error      ``PAYDESK["FRAUD"]``: a rule cannot be loaded, or the thresholds are wrong
paydesk.E014   Error      ``PAYDESK["AUTO_REFUNDS"]``: a rule cannot be loaded
paydesk.E015   Error      ``PAYDESK["RATES"]``: the source, rounding, maximum age or cross
                          currency is invalid
paydesk.W001   Warning    a provider is missing credentials (it stays configured but unusable)
paydesk.W002   Warning    a provider's webhook secret is missing
paydesk.W003   Warning    the sandbox provider is configured while ``DEBUG`` is False
paydesk.W004   Warning    SQLite without ``"transaction_mode": "IMMEDIATE"``: concurrent
                          refunds could both pass the over-refund check
paydesk.W005   Warning    a provider has ``TEST_MODE`` on while ``DEBUG`` is False
=============  =========  =============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections
from django.utils.module_loading import import_string

from .conf import DEFAULTS, paydesk_settings, resolve
from .exceptions import ConfigurationError, PaydeskError

__all__ = ["ValidationReport", "check_configuration", "paydesk_checks", "validate_settings"]

_WEBHOOK_OPTIONS = ("WEBHOOK_SECRET", "WEBHOOK_SECRETS", "WEBHOOK_ID")


def _provider_messages() -> list[checks.CheckMessage]:
    from .providers.registry import load_backend
    from .webhooks.info import RESERVED_SEGMENTS

    out: list[checks.CheckMessage] = []
    configured = paydesk_settings.user_settings.get("PROVIDERS", DEFAULTS["PROVIDERS"])
    if not isinstance(configured, Mapping) or not configured:
        return [
            checks.Error(
                'PAYDESK["PROVIDERS"] must be a non-empty dict of alias -> {"BACKEND", "OPTIONS"}.',
                hint='Start with {"sandbox": {"BACKEND": '
                '"paydesk.providers.sandbox.SandboxProvider"}}.',
                id="paydesk.E002",
            )
        ]
    for alias, params in configured.items():
        where = f'PAYDESK["PROVIDERS"][{alias!r}]'
        if alias in RESERVED_SEGMENTS:
            out.append(
                checks.Error(
                    f"{where}: the alias {alias!r} is a reserved webhook path segment; its "
                    f"webhooks would reach the read-only <prefix>/webhooks/{alias}/ view "
                    "instead of the pipeline.",
                    hint=f"Rename the alias (reserved: {', '.join(sorted(RESERVED_SEGMENTS))}).",
                    id="paydesk.E011",
                )
            )
        if not isinstance(params, Mapping) or not params.get("BACKEND"):
            out.append(
                checks.Error(
                    f"{where} has no BACKEND.",
                    hint='Use {"BACKEND": "dotted.path.Provider", "OPTIONS": {...}} '
                    "as in STORAGES.",
                    id="paydesk.E003",
                )
            )
            continue
        try:
            cls = load_backend(params["BACKEND"])
        except ConfigurationError as exc:
            out.append(checks.Error(f"{where}: {exc.message}", id="paydesk.E004"))
            continue
        try:
            provider = cls(alias=alias, options=resolve(params.get("OPTIONS") or {}))
        except (PaydeskError, LookupError, TypeError, ValueError) as exc:
            out.append(
                checks.Error(
                    f"{where} cannot be built: {exc}",
                    hint="Check its OPTIONS against the provider's documentation.",
                    id="paydesk.E010",
                )
            )
            continue
        problems = provider.configuration_problems()
        webhook = [p for p in problems if any(name in p for name in _WEBHOOK_OPTIONS)]
        other = [p for p in problems if p not in webhook]
        if other:
            out.append(
                checks.Warning(
                    f"{where} is not usable yet: {'; '.join(other)}.",
                    hint=f"Set the options (the demo reads PAYDESK_{alias.upper()}_<OPTION>).",
                    id="paydesk.W001",
                )
            )
        if webhook:
            out.append(
                checks.Warning(
                    f"{where}: {'; '.join(webhook)}; its webhooks will be refused.",
                    hint="Copy the signing secret from the provider's dashboard into OPTIONS.",
                    id="paydesk.W002",
                )
            )
        if getattr(provider, "test_mode", False) and not settings.DEBUG:
            out.append(
                checks.Warning(
                    f"{where} has TEST_MODE on while DEBUG is False: its test tokens can mark "
                    "payments paid without money moving.",
                    hint="Remove TEST_MODE from its OPTIONS in production.",
                    id="paydesk.W005",
                )
            )
        sandbox_live = getattr(provider, "is_sandbox", False) and not settings.DEBUG
        if sandbox_live and not paydesk_settings.SANDBOX_IN_PRODUCTION:
            out.append(
                checks.Warning(
                    f"{where} is the sandbox provider and DEBUG is False: it accepts "
                    "test cards and moves no money.",
                    hint='Remove it in production, or set PAYDESK["SANDBOX_IN_PRODUCTION"] '
                    "= True for a staging site.",
                    id="paydesk.W003",
                )
            )
    default = paydesk_settings.DEFAULT_PROVIDER
    if default not in configured:
        out.append(
            checks.Error(
                f'PAYDESK["DEFAULT_PROVIDER"] = {default!r} is not a configured provider.',
                hint=f"Use one of: {', '.join(map(str, configured))}.",
                id="paydesk.E005",
            )
        )
    return out


def _settings_messages() -> list[checks.CheckMessage]:
    from .money import is_supported_currency

    out: list[checks.CheckMessage] = []
    unknown = sorted(set(paydesk_settings.user_settings) - set(DEFAULTS))
    if unknown:
        out.append(
            checks.Error(
                f"Unknown PAYDESK setting(s): {', '.join(unknown)}.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="paydesk.E009",
            )
        )
    currency = paydesk_settings.DEFAULT_CURRENCY
    if not isinstance(currency, str) or not is_supported_currency(currency):
        out.append(
            checks.Error(
                f'PAYDESK["DEFAULT_CURRENCY"] = {currency!r} is not an ISO 4217 currency code.',
                hint='Use a three-letter code such as "USD", "EUR" or "TRY".',
                id="paydesk.E006",
            )
        )
    rate: Any = paydesk_settings.PROCESSING_FEE_RATE
    try:
        if isinstance(rate, float):
            raise TypeError
        value = Decimal(str(rate))
        if not (0 <= value <= 100):
            raise ValueError
    except (InvalidOperation, TypeError, ValueError):
        out.append(
            checks.Error(
                f'PAYDESK["PROCESSING_FEE_RATE"] = {rate!r} must be a percentage from 0 to 100 '
                "given as a string or Decimal (not a float).",
                hint='For a 3 % fee write "3".',
                id="paydesk.E007",
            )
        )
    try:
        import_string(paydesk_settings.REFUND_POLICY)
    except ImportError as exc:
        out.append(
            checks.Error(
                f'PAYDESK["REFUND_POLICY"] cannot be imported: {exc}',
                hint="Point it at a subclass of paydesk.policy.RefundPolicy.",
                id="paydesk.E008",
            )
        )
    out.extend(_dashboard_messages())
    out.extend(_loader_messages())
    return out


def _fraud_config() -> None:
    from .fraud.pipeline import load_rules, thresholds

    load_rules()
    thresholds()


def _auto_refund_config() -> None:
    from .services.autorefunds import load_rules

    load_rules()


def _rates_config() -> None:
    from .services.rates import check_settings

    check_settings()


#: Settings whose own loaders already say exactly what is wrong (ConfigurationError): the
#: check runs the loader at startup, so the mistake surfaces in ``manage.py check`` instead
#: of in the first payment screened, refund run or rates update.
_LOADERS = (
    ("paydesk.E013", "FRAUD", _fraud_config, "See docs/fraud.md for the rule format."),
    (
        "paydesk.E014",
        "AUTO_REFUNDS",
        _auto_refund_config,
        "See docs/fraud.md (automatic refunds) for the rule format.",
    ),
    ("paydesk.E015", "RATES", _rates_config, "See docs/rates.md for the settings."),
)


def _loader_messages() -> list[checks.CheckMessage]:
    out: list[checks.CheckMessage] = []
    for check_id, key, load, hint in _LOADERS:
        try:
            load()
        except PaydeskError as exc:
            out.append(
                checks.Error(f'PAYDESK["{key}"] is invalid: {exc.message}', hint=hint, id=check_id)
            )
    return out


def _dashboard_messages() -> list[checks.CheckMessage]:
    config = paydesk_settings.DASHBOARD
    problems = []
    unknown = sorted(set(config) - set(DEFAULTS["DASHBOARD"]))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}")
    for key, low, high in (("POLL_SECONDS", 5, 3600), ("PAGE_SIZE", 1, 500)):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.append(f"{key} = {value!r} must be a whole number from {low} to {high}")
    if not problems:
        return []
    return [
        checks.Error(
            'PAYDESK["DASHBOARD"]: ' + "; ".join(problems) + ".",
            hint=f"Known keys and defaults: {DEFAULTS['DASHBOARD']!r}.",
            id="paydesk.E012",
        )
    ]


def _database_messages() -> list[checks.CheckMessage]:
    out: list[checks.CheckMessage] = []
    for alias in connections:
        conf = connections.settings[alias] if hasattr(connections, "settings") else {}
        if conf.get("ENGINE") == "django.db.backends.sqlite3":
            mode = (conf.get("OPTIONS") or {}).get("transaction_mode")
            if mode != "IMMEDIATE":
                out.append(
                    checks.Warning(
                        f"Database {alias!r} is SQLite without "
                        '"transaction_mode": "IMMEDIATE"; two concurrent refunds could both '
                        "read the same balance before either writes.",
                        hint='Add OPTIONS={"transaction_mode": "IMMEDIATE"} (Django 5.1+), '
                        "or use PostgreSQL.",
                        id="paydesk.W004",
                    )
                )
    return out


@checks.register("paydesk")
def paydesk_checks(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    configured = getattr(settings, "PAYDESK", {})
    if not isinstance(configured, Mapping):
        return [
            checks.Error(
                "settings.PAYDESK must be a dict.",
                hint="See paydesk.conf for the keys and their defaults.",
                id="paydesk.E001",
            )
        ]
    paydesk_settings.reload()
    return _settings_messages() + _provider_messages() + _database_messages()


class ValidationReport(dict[str, list[str]]):
    """``{"errors": [...], "warnings": [...]}`` with ``ok`` for a quick test."""

    @property
    def ok(self) -> bool:
        return not self["errors"]


def validate_settings(raise_on_error: bool = False) -> ValidationReport:
    """Run paydesk's checks and return their messages; optionally raise on errors."""
    messages = paydesk_checks()
    report = ValidationReport(
        errors=[f"{m.id}: {m.msg}" for m in messages if m.level >= checks.ERROR],
        warnings=[f"{m.id}: {m.msg}" for m in messages if m.level < checks.ERROR],
    )
    if raise_on_error and report["errors"]:
        raise ConfigurationError("paydesk is misconfigured:\n" + "\n".join(report["errors"]))
    return report


def check_configuration() -> None:
    """For ``AppConfig.ready()``: raise ``ConfigurationError`` if paydesk cannot work."""
    validate_settings(raise_on_error=True)
