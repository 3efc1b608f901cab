"""The ``paydesk`` command line: look at, check and try a paydesk configuration.

This module owns one decision: how an operator reaches paydesk without writing a Django
project. Settings come from the first of these that is given:

1. ``--config FILE`` (or ``PAYDESK_CONFIG``): a TOML file whose ``[paydesk]`` table is the
   ``PAYDESK`` setting (``{ env = "VAR" }`` names a secret held in the environment);
2. ``DJANGO_SETTINGS_MODULE``: an existing project's settings and database;
3. the environment alone: ``PAYDESK_<ALIAS>_<OPTION>`` variables, as the demo reads them.

Environment variables override the file. For 1 and 3 the CLI configures a minimal Django
(paydesk, auth, contenttypes, an immediate task backend) on an SQLite file: ``--database``,
``PAYDESK_DATABASE`` or the file's ``database``, else a temporary file deleted on exit;
``test-payment`` migrates it first.

Commands: ``list-providers``, ``check-health``, ``validate-config``, ``test-payment`` and
``sign-webhook``. Exit codes: 0 success, 1 failure (unhealthy, invalid, declined, cannot
sign), 2 usage error, 3 ``test-payment`` needs the customer (a redirect or 3-D Secure).
Commands only read paydesk's state or go through ``paydesk.services``; none writes a
payment itself.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

__all__ = [
    "EXIT_ACTION_REQUIRED",
    "EXIT_FAILURE",
    "EXIT_OK",
    "build_paydesk_settings",
    "cli",
    "load_config",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_ACTION_REQUIRED = 3

CONFIG_ENV = "PAYDESK_CONFIG"
DATABASE_ENV = "PAYDESK_DATABASE"
SECRET_KEY_ENV = "PAYDESK_SECRET_KEY"
PROVIDERS_ENV = "PAYDESK_PROVIDERS"
#: ``PAYDESK`` keys that can also be set as ``PAYDESK_<KEY>`` environment variables.
TOP_LEVEL_ENV_KEYS = ("DEFAULT_PROVIDER", "DEFAULT_CURRENCY", "PUBLIC_BASE_URL")
#: Test payment methods that complete without a person, per backend class name.
DEFAULT_TEST_TOKENS = {
    "SandboxProvider": "pm_sandbox_visa",
    "StripeProvider": "pm_card_visa",
    "BankTransferProvider": "bt_test_approved",
}
_CONFIG_KEYS = frozenset({"paydesk", "database", "secret_key"})
# Only the sandbox and a development key: the CLI's Django never serves a request.
_DEFAULT_SECRET_KEY = "paydesk-cli-not-a-secret"
_URLCONF = "paydesk_cli_urls"


class CliError(click.ClickException):
    """A failure the user can act on: printed as ``Error: ...``, exit code 1."""

    exit_code = EXIT_FAILURE


# -- configuration (pure: no Django needed) ------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``paydesk.toml``; a ``database`` path in it is taken relative to the file."""
    import tomllib

    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise CliError(f"Config file {str(file)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"Config file {str(file)!r} is not valid TOML: {exc}") from None
    data = {key.lower() if key.upper() == "PAYDESK" else key: value for key, value in data.items()}
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        raise CliError(
            f"Config file {str(file)!r} has unknown key(s) {', '.join(unknown)}; the file holds "
            "a [paydesk] table (the PAYDESK setting), and optionally database and secret_key."
        )
    if not isinstance(data.get("paydesk", {}), dict):
        raise CliError(f"In {str(file)!r}, paydesk must be a table ([paydesk]).")
    if data.get("database"):
        data["database"] = str((file.parent / str(data["database"])).resolve())
    return data


def _env_markers(value: Any) -> Any:
    """``{ env = "VAR", default = ... }`` tables become ``paydesk.conf.env()`` markers."""
    from .conf import env

    if isinstance(value, dict):
        if "env" in value and set(value) <= {"env", "default"}:
            return env(str(value["env"]), value.get("default"))
        return {key: _env_markers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_env_markers(item) for item in value]
    return value


def env_prefix(alias: str) -> str:
    """``PAYDESK_<ALIAS>_``, the alias upper-cased with anything but letters and digits as _."""
    return "PAYDESK_" + re.sub(r"[^A-Z0-9]", "_", alias.upper()) + "_"


def build_paydesk_settings(
    config: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The ``PAYDESK`` setting from a loaded config file (or none) and the environment.

    Without a file, the providers are ``PAYDESK_PROVIDERS`` (comma-separated aliases) or else
    the sandbox plus every built-in provider with a ``PAYDESK_<NAME>_...`` variable set. Each
    provider's ``BACKEND`` defaults to its alias (a built-in name); every
    ``PAYDESK_<ALIAS>_<OPTION>`` variable sets, or overrides, that option. Values taken from
    the environment are ``env()`` markers, so they are read when the provider is built and
    never printed.
    """
    from .conf import env
    from .providers.registry import BUILTIN_BACKENDS

    paydesk: dict[str, Any] = _env_markers(dict((config or {}).get("paydesk") or {}))
    configured = paydesk.get("PROVIDERS")
    if configured is not None and not isinstance(configured, dict):
        raise CliError("PAYDESK PROVIDERS must be a table of alias = { BACKEND, OPTIONS }.")
    providers: dict[str, Any] = {alias: dict(conf) for alias, conf in (configured or {}).items()}
    if configured is None:
        listed = environ.get(PROVIDERS_ENV, "")
        if listed.strip():
            aliases = [alias.strip() for alias in listed.split(",") if alias.strip()]
        else:
            aliases = ["sandbox"] + [
                name
                for name in BUILTIN_BACKENDS
                if name != "sandbox" and any(key.startswith(env_prefix(name)) for key in environ)
            ]
        providers = {alias: {"BACKEND": alias} for alias in aliases}
    # Longest prefix first: PAYDESK_BANK_TRANSFER_X belongs to bank_transfer, not to "bank".
    for alias in sorted(providers, key=lambda a: len(env_prefix(a)), reverse=True):
        entry = providers[alias]
        options = dict(entry.get("OPTIONS") or {})
        prefix = env_prefix(alias)
        longer = [env_prefix(a) for a in providers if len(env_prefix(a)) > len(prefix)]
        for key in sorted(environ):
            if not key.startswith(prefix) or any(key.startswith(p) for p in longer):
                continue
            name = key[len(prefix) :]
            if name == "BACKEND":
                entry["BACKEND"] = environ[key]
            elif name:
                options[name] = env(key)
        entry.setdefault("BACKEND", alias)
        entry["OPTIONS"] = options
    paydesk["PROVIDERS"] = providers
    for key in TOP_LEVEL_ENV_KEYS:
        if environ.get(f"PAYDESK_{key}"):
            paydesk[key] = environ[f"PAYDESK_{key}"]
    if "DEFAULT_PROVIDER" not in paydesk and providers and "sandbox" not in providers:
        paydesk["DEFAULT_PROVIDER"] = next(iter(providers))
    # The CLI is a tool for trying things: the sandbox may run with DEBUG off.
    paydesk.setdefault("SANDBOX_IN_PRODUCTION", True)
    return paydesk


def django_settings(paydesk: Mapping[str, Any], *, database: str, secret_key: str) -> dict:
    """The minimal Django settings the CLI runs paydesk under."""
    import django

    if django.VERSION >= (6, 0):
        immediate = "django.tasks.backends.immediate.ImmediateBackend"
        task_apps: list[str] = []
    else:
        immediate = "django_tasks.backends.immediate.ImmediateBackend"
        task_apps = ["django_tasks"]
    return {
        "DEBUG": False,
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": ["*"],
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "paydesk",
            *task_apps,
        ],
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": database,
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            }
        },
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "ROOT_URLCONF": _URLCONF,
        "TASKS": {"default": {"BACKEND": immediate}},
        "PAYDESK": dict(paydesk),
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
            },
            "loggers": {"paydesk": {"handlers": ["stderr"], "level": "WARNING"}},
        },
    }


# -- Django setup ---------------------------------------------------------------------------


class Runtime:
    """How this invocation reached Django: ``standalone`` (own settings) or ``project``."""

    def __init__(self, config: str | None, database: str | None) -> None:
        self.config_path = config
        self.database = database
        self.mode = ""
        self.database_path = ""
        self._ready = False

    def setup(self) -> Runtime:
        if self._ready:
            return self
        import django
        from django.conf import settings

        if settings.configured:
            if self.config_path:
                raise CliError(
                    "Django settings are already configured in this process; --config and "
                    f"{CONFIG_ENV} only apply when paydesk configures Django itself."
                )
            self.mode = "project"
            django.setup()
        elif self.config_path is None and os.environ.get("DJANGO_SETTINGS_MODULE"):
            self.mode = "project"
            django.setup()
        else:
            self.mode = "standalone"
            config = load_config(self.config_path) if self.config_path else None
            paydesk = build_paydesk_settings(config, os.environ)
            database = self.database or (config or {}).get("database")
            if not database:
                folder = tempfile.mkdtemp(prefix="paydesk-cli-")
                atexit.register(shutil.rmtree, folder, ignore_errors=True)
                database = os.path.join(folder, "paydesk.sqlite3")
            self.database_path = str(database)
            secret = (
                os.environ.get(SECRET_KEY_ENV)
                or (config or {}).get("secret_key")
                or _DEFAULT_SECRET_KEY
            )
            settings.configure(
                **django_settings(paydesk, database=self.database_path, secret_key=str(secret))
            )
            _install_urlconf()
            django.setup()
        self._ready = True
        return self

    def migrate(self) -> None:
        """Create or update the standalone database; in a project, check it is migrated."""
        from django.core.management import call_command
        from django.db import connection

        if self.mode == "standalone":
            call_command("migrate", verbosity=0, interactive=False)
            return
        if "paydesk_payment" not in connection.introspection.table_names():
            raise CliError(
                "paydesk's tables do not exist in this project's database: run "
                "`python manage.py migrate` first."
            )


def _install_urlconf() -> None:
    """The URLconf of the standalone settings: paydesk's URLs under /paydesk/."""
    module = types.ModuleType(_URLCONF)

    def module_getattr(name: str) -> Any:
        # Built on first use (a reverse() or a request), not on every command's start.
        if name != "urlpatterns":
            raise AttributeError(name)
        from django.urls import include, path

        patterns = [path("paydesk/", include("paydesk.urls"))]
        module.urlpatterns = patterns  # type: ignore[attr-defined]
        return patterns

    setattr(module, "__getattr__", module_getattr)  # noqa: B010 (PEP 562 module __getattr__)
    sys.modules[_URLCONF] = module


def _runtime(ctx: click.Context) -> Runtime:
    runtime: Runtime = ctx.find_object(Runtime)  # type: ignore[assignment]
    return runtime.setup()


def _provider(alias: str | None) -> Any:
    from .exceptions import PaydeskError
    from .providers import get_payment_provider

    try:
        return get_payment_provider(alias)
    except PaydeskError as exc:
        raise CliError(exc.message) from exc


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# -- the commands -----------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar=CONFIG_ENV,
    help=f"A paydesk.toml to configure from (also {CONFIG_ENV}).",
)
@click.option(
    "--database",
    type=click.Path(dir_okay=False),
    envvar=DATABASE_ENV,
    help=f"SQLite file for standalone runs (also {DATABASE_ENV}); default: a temporary file.",
)
@click.version_option(package_name="django-paydesk", prog_name="paydesk")
@click.pass_context
def cli(ctx: click.Context, config: str | None, database: str | None) -> None:
    """Inspect, check and try paydesk's payment providers.

    Settings come from --config (TOML), else from DJANGO_SETTINGS_MODULE, else from
    PAYDESK_<ALIAS>_<OPTION> environment variables (the sandbox is always there).
    """
    ctx.obj = Runtime(config, database)


@cli.command("list-providers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_providers(ctx: click.Context, as_json: bool) -> None:
    """List the configured providers, their capabilities and configuration problems."""
    _runtime(ctx)
    from .exceptions import ConfigurationError
    from .providers.registry import native_async_operations, providers

    rows: list[dict[str, Any]] = []
    for alias in providers.aliases():
        try:
            provider = providers[alias]
        except ConfigurationError as exc:
            rows.append({"alias": alias, "configured": False, "problems": [exc.message]})
            continue
        info = provider.info()
        rows.append(
            {
                "alias": alias,
                "backend": info.backend,
                "display_name": info.display_name,
                "configured": info.configured,
                "problems": list(info.problems),
                "capabilities": sorted(str(c) for c in info.capabilities),
                "native_async": sorted(native_async_operations(provider)),
            }
        )
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No providers are configured.")
        return
    for row in rows:
        state = (
            click.style("configured", fg="green")
            if row["configured"]
            else click.style("not configured", fg="yellow")
        )
        click.echo(f"{row['alias']}  ({row.get('backend', 'cannot be built')})  {state}")
        if row.get("capabilities"):
            click.echo(f"    capabilities: {', '.join(row['capabilities'])}")
        if "native_async" in row:
            click.echo(f"    native async: {', '.join(row['native_async']) or 'none'}")
        for problem in row["problems"]:
            click.echo(f"    problem: {problem}")


def _health_of(alias: str, *, production: bool) -> dict[str, Any]:
    """One provider's health, through ``paydesk.health`` when present."""
    from .exceptions import PaydeskError
    from .providers.registry import providers

    try:  # paydesk.health: concurrent checks with a deadline, live-mode rules
        health: Any = importlib.import_module("paydesk.health")
    except ImportError:
        health = None
    if health is not None:
        checked = health.ProviderHealthChecker().check_provider(alias, test_mode=not production)
        return {
            "provider": alias,
            "healthy": bool(checked.healthy),
            "message": checked.message,
            "response_time_ms": checked.response_time_ms,
        }
    started = time.perf_counter()
    try:
        answer = providers[alias].health_check()
    except PaydeskError as exc:
        healthy, message, elapsed = False, exc.message, None
    except Exception as exc:  # a broken adapter is reported, not a crash of the whole run
        healthy, message, elapsed = False, f"{type(exc).__name__}: {exc}", None
    else:
        healthy, message, elapsed = answer.ok, answer.detail, answer.response_time_ms
    if elapsed is None:
        elapsed = round((time.perf_counter() - started) * 1000, 3)
    return {
        "provider": alias,
        "healthy": bool(healthy),
        "message": message or ("ok" if healthy else "unhealthy"),
        "response_time_ms": elapsed,
    }


@cli.command("check-health")
@click.option(
    "--provider",
    "aliases",
    multiple=True,
    metavar="ALIAS",
    help="Check only this provider (repeatable); default: all configured.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show each provider's detail and timing.")
@click.option(
    "--production", is_flag=True, help="Apply live-mode rules (a test key or sandbox fails)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON at the end.")
@click.pass_context
def check_health(
    ctx: click.Context, aliases: tuple[str, ...], verbose: bool, production: bool, as_json: bool
) -> None:
    """Call each provider's cheap, read-only health check; exit 1 if any is unhealthy.

    The checks run concurrently; a line is printed as each one finishes.
    """
    _runtime(ctx)
    from .providers.registry import providers

    configured = providers.aliases()
    unknown = [alias for alias in aliases if alias not in configured]
    if unknown:
        raise click.BadParameter(
            f"not configured: {', '.join(unknown)} (configured: {', '.join(configured)})",
            param_hint="--provider",
        )
    targets = list(dict.fromkeys(aliases)) or configured
    if not targets:
        raise CliError("No providers are configured.")
    out = sys.stderr if as_json else sys.stdout
    click.echo(f"Checking {len(targets)} provider(s)...", file=out)
    results = []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        futures = {pool.submit(_health_of, alias, production=production) for alias in targets}
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            results.append(result)
            mark = (
                click.style("ok", fg="green")
                if result["healthy"]
                else click.style("UNHEALTHY", fg="red")
            )
            line = f"[{done}/{len(targets)}] {result['provider']}: {mark}"
            if verbose or not result["healthy"]:
                line += f" - {result['message']}"
            if verbose and result["response_time_ms"] is not None:
                line += f" ({result['response_time_ms']:.0f} ms)"
            click.echo(line, file=out)
    results.sort(key=lambda r: targets.index(r["provider"]))
    if as_json:
        _echo_json(results)
    unhealthy = [r["provider"] for r in results if not r["healthy"]]
    if unhealthy:
        click.echo(f"Unhealthy: {', '.join(unhealthy)}", file=out)
        ctx.exit(EXIT_FAILURE)
    click.echo("All healthy.", file=out)


@cli.command("validate-config")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def validate_config(ctx: click.Context, strict: bool, as_json: bool) -> None:
    """Run paydesk's system checks (paydesk.E/W...); exit 1 on errors."""
    _runtime(ctx)
    from .checks import validate_settings

    report = validate_settings()
    failed = not report.ok or (strict and bool(report["warnings"]))
    if as_json:
        _echo_json({"ok": not failed, **report})
    else:
        for message in report["errors"]:
            click.echo(click.style("error   ", fg="red") + message)
        for message in report["warnings"]:
            click.echo(click.style("warning ", fg="yellow") + message)
        counts = f"{len(report['errors'])} error(s), {len(report['warnings'])} warning(s)"
        click.echo(("Invalid: " if failed else "Valid: ") + counts)
    if failed:
        ctx.exit(EXIT_FAILURE)


def _live_reason(provider: Any) -> str:
    """Why ``provider`` would move real money ("" when it is in a test mode)."""
    if getattr(provider, "is_sandbox", False):
        return ""
    livemode = getattr(provider, "livemode", None)
    if isinstance(livemode, bool):
        return "it uses a live key" if livemode else ""
    mode = getattr(provider, "mode", None) or provider.options.get("MODE") or ""
    if str(mode).strip().lower() in ("live", "production", "prod"):
        return f"its MODE is {mode!r}"
    if type(provider).__name__ == "BankTransferProvider":
        return ""  # no money moves through paydesk; test tokens need TEST_MODE anyway
    if not mode:
        return "paydesk cannot tell whether it is in test mode (set MODE)"
    return ""


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a decimal amount such as 10.00") from None
    if not amount.is_finite() or amount <= 0:
        raise click.BadParameter("the amount must be greater than zero")
    return amount


def _payment_report(payment: Any) -> dict[str, Any]:
    from .models import TransactionLog

    entries = TransactionLog.objects.filter(payment=payment).order_by("pk")
    return {
        "id": payment.pk,
        "provider": payment.provider,
        "status": payment.status,
        "amount": str(payment.money),
        "captured": str(payment.captured_amount),
        "provider_payment_id": payment.provider_payment_id,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "next_action": payment.next_action or None,
        "ledger": [entry.kind for entry in entries],
    }


@cli.command("test-payment")
@click.option("--provider", "alias", metavar="ALIAS", help="Provider alias; default: the default.")
@click.option("--amount", required=True, help="Decimal amount, e.g. 10.00.")
@click.option("--currency", help="ISO 4217 code; default: PAYDESK DEFAULT_CURRENCY.")
@click.option(
    "--token",
    help="Payment method token; default: the provider's succeeding test card "
    "(pm_sandbox_visa, pm_card_visa, bt_test_approved) or none (a redirect).",
)
@click.option("--authorize-only", is_flag=True, help="Authorize without capturing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def test_payment(
    ctx: click.Context,
    alias: str | None,
    amount: str,
    currency: str | None,
    token: str | None,
    authorize_only: bool,
    as_json: bool,
) -> None:
    """Create and confirm a test payment through paydesk's services; print the result.

    Refuses providers in live mode. Exit 0 when the payment is completed or authorized,
    1 when it failed, 3 when the customer must act (the redirect is printed).
    """
    runtime = _runtime(ctx)
    value = _amount(amount)
    from .exceptions import PaydeskError
    from .services import confirm_payment, create_payment, process_payment
    from .states import PaymentStatus

    provider = _provider(alias)
    reason = _live_reason(provider)
    if reason:
        raise CliError(
            f"Provider {provider.alias!r} is not in test mode ({reason}); test-payment never "
            "moves real money."
        )
    if token is None:
        token = DEFAULT_TEST_TOKENS.get(type(provider).__name__, "")
    out = sys.stderr if as_json else sys.stdout
    runtime.migrate()
    try:
        payment = create_payment(
            amount=value,
            currency=currency,
            provider=provider.alias,
            capture=not authorize_only,
            reference=f"paydesk-cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
            description="paydesk test-payment",
        )
        click.echo(f"Created {payment.pk} for {payment.money} via {payment.provider}", file=out)
        payment = process_payment(payment=payment, payment_method_token=token)
        click.echo(f"Processed: {payment.status}", file=out)
        if payment.status in (PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING):
            payment = confirm_payment(payment=payment)
            click.echo(f"Confirmed: {payment.status}", file=out)
    except PaydeskError as exc:
        raise CliError(exc.message) from exc
    report = _payment_report(payment)
    if as_json:
        _echo_json(report)
    else:
        for key in ("id", "status", "amount", "provider_payment_id"):
            click.echo(f"{key}: {report[key]}")
        if report["failure_code"]:
            click.echo(f"failure: {report['failure_code']}: {report['failure_message']}")
        if report["next_action"]:
            click.echo(f"next action: {json.dumps(report['next_action'])}")
        click.echo(f"ledger: {', '.join(report['ledger'])}")
    if payment.status in (PaymentStatus.COMPLETED, PaymentStatus.AUTHORIZED):
        return
    if payment.status == PaymentStatus.REQUIRES_ACTION:
        ctx.exit(EXIT_ACTION_REQUIRED)
    ctx.exit(EXIT_FAILURE)


# -- sign-webhook -----------------------------------------------------------------------------


def _sign(provider: Any, body: bytes, timestamp: int | None) -> dict[str, str]:
    """The provider's own signature (``PaymentProvider.sign_webhook``, which the dashboard's
    test deliveries use too); a refusal in the CLI's words, naming what to set."""
    from .exceptions import NotSupported

    try:
        headers: dict[str, str] = provider.sign_webhook(body, timestamp=timestamp)
    except NotSupported:
        option = provider.webhook_secret_option
        if option:  # it could sign, with a secret it has not got
            raise CliError(
                f"{provider.display_name} provider {provider.alias!r} has no {option} to sign with."
            ) from None
        if type(provider).__name__ == "PayPalProvider":
            why = (
                "PayPal signs with the private key of its own certificate, which nobody else "
                "has; send a test event from PayPal's developer dashboard (Webhooks simulator)"
            )
        else:
            why = f"{type(provider).__name__} has no webhook signature paydesk can produce"
        raise CliError(f"Cannot sign webhooks for {provider.alias!r}: {why}.") from None
    return headers


def _webhook_url(alias: str) -> str:
    from django.urls import NoReverseMatch, reverse

    from .conf import paydesk_settings

    try:
        path = reverse("paydesk:webhook", args=[alias])
    except (NoReverseMatch, ImportError):
        path = f"/paydesk/webhooks/{alias}/"
    base = str(paydesk_settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000").rstrip("/")
    return base + path


def _read_body(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {file!r}: {exc.strerror}", param_hint="--file"
        ) from None


@cli.command("sign-webhook")
@click.option("--provider", "alias", required=True, metavar="ALIAS", help="Provider alias.")
@click.option(
    "--file",
    "file",
    required=True,
    metavar="PATH",
    help="The event body, sent byte for byte ('-' for stdin).",
)
@click.option("--timestamp", type=int, help="Unix time to sign with (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["headers", "curl", "json"]),
    default="headers",
    show_default=True,
    help="Header lines, a complete curl command, or JSON.",
)
@click.option("--url", help="Webhook URL for --format curl; default: PUBLIC_BASE_URL's.")
@click.pass_context
def sign_webhook(
    ctx: click.Context, alias: str, file: str, timestamp: int | None, fmt: str, url: str | None
) -> None:
    """Print the headers a valid webhook delivery of FILE needs, for curl.

    Signs as sandbox, stripe (Stripe-Signature), nowpayments (x-nowpayments-sig) and iyzico
    (X-Iyz-Signature-V3) do, with the configured secret, then checks the result with the
    provider's own verification before printing it.
    """
    _runtime(ctx)
    from .exceptions import PaydeskError

    provider = _provider(alias)
    body = _read_body(file)
    try:
        headers = _sign(provider, body, timestamp)
        provider.verify_webhook(body, headers)
    except PaydeskError as exc:
        raise CliError(f"The signed delivery does not verify: {exc.message}") from exc
    if fmt == "json":
        _echo_json({"headers": headers, "url": url or _webhook_url(provider.alias)})
    elif fmt == "curl":
        parts = ["curl", "-sS", "-X", "POST", url or _webhook_url(provider.alias)]
        for name, value in headers.items():
            parts += ["-H", f"{name}: {value}"]
        parts += ["--data-binary", f"@{file}"]
        click.echo(" ".join(shlex.quote(part) for part in parts))
    else:
        for name, value in headers.items():
            click.echo(f"{name}: {value}")
        if timestamp is None and "t=" in "".join(headers.values()):
            click.echo("(valid for the provider's timestamp tolerance, 5 minutes)", err=True)


def main(argv: list[str] | None = None) -> int:
    """The ``paydesk`` console script."""
    try:
        cli.main(args=argv, prog_name="paydesk", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILURE)
    return EXIT_OK
