"""Run the development server behind an ngrok tunnel, so providers can reach its webhooks."""

from __future__ import annotations

import contextlib
import os
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from paydesk.conf import paydesk_settings
from paydesk.exceptions import ConfigurationError
from paydesk.providers.registry import providers
from paydesk.types import Capability

ALTERNATIVES = """\
Without a tunnel you can still exercise webhooks locally:
  * the sandbox provider delivers its signed webhooks in-process (OPTIONS
    "WEBHOOK_DELIVERY": "inprocess", the default), through the whole pipeline;
  * `paydesk sign-webhook --provider ALIAS --file event.json --format curl` prints a
    correctly signed curl command for a stored event, to POST to
    http://127.0.0.1:8000<prefix>/webhooks/ALIAS/ yourself;
  * a provider's own CLI (e.g. `stripe listen --forward-to ...`) forwards its events."""

NO_PYNGROK = (
    "pyngrok is not installed, so no tunnel can be opened.\n"
    'Install it with: pip install "django-paydesk[tunnel]", and set NGROK_AUTHTOKEN to the '
    "authtoken from your ngrok dashboard.\n" + ALTERNATIVES
)
NO_AUTH = (
    "ngrok needs an authtoken: set NGROK_AUTHTOKEN (or pass --authtoken, or run "
    "`ngrok config add-authtoken TOKEN` once).\n" + ALTERNATIVES
)


class Command(BaseCommand):
    help = (
        "Start the development server with an ngrok tunnel (pyngrok) and print each "
        "provider's public webhook URL, to paste into the provider's dashboard. Needs "
        'pip install "django-paydesk[tunnel]" and NGROK_AUTHTOKEN. Development only.'
    )
    requires_system_checks: list[str] = []  # runserver runs them

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="as runserver (default 8000)"
        )
        parser.add_argument(
            "--authtoken", help="ngrok authtoken (default: NGROK_AUTHTOKEN or ngrok's config)"
        )
        parser.add_argument("--region", help="ngrok region (us, eu, ap, au, sa, jp, in)")
        parser.add_argument("--domain", help="a reserved ngrok domain to use")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            conf = import_module("pyngrok.conf")
            ngrok = import_module("pyngrok.ngrok")
        except ImportError:
            raise CommandError(NO_PYNGROK) from None

        token = options["authtoken"] or os.environ.get("NGROK_AUTHTOKEN", "")
        if not token and not _config_has_authtoken(conf):
            raise CommandError(NO_AUTH)

        addrport = options["addrport"]
        port = addrport.rsplit(":", 1)[-1]
        config = conf.PyngrokConfig(auth_token=token or None, region=options["region"])
        extra: dict[str, Any] = {}
        if options["domain"]:
            extra["domain"] = options["domain"]
        try:
            tunnel = ngrok.connect(port, "http", pyngrok_config=config, **extra)
        except Exception as exc:  # pyngrok raises its own PyngrokError family
            raise CommandError(f"ngrok could not open a tunnel: {exc}\n" + ALTERNATIVES) from exc
        public_url = str(tunnel.public_url).replace("http://", "https://", 1).rstrip("/")
        try:
            self._expose(public_url)
            self._print_urls(public_url)
            self.serve(addrport)
        finally:
            try:
                ngrok.disconnect(tunnel.public_url, pyngrok_config=config)
                ngrok.kill(pyngrok_config=config)
            except Exception as exc:  # shutting down anyway; say so, do not mask the cause
                self.stderr.write(f"ngrok did not shut down cleanly: {exc}")

    def _expose(self, public_url: str) -> None:
        """Let Django answer on the tunnel's host, and advertise it to providers."""
        host = urlsplit(public_url).hostname or ""
        allowed = list(settings.ALLOWED_HOSTS)
        if not allowed and settings.DEBUG:
            allowed = [".localhost", "127.0.0.1", "[::1]"]  # what an empty list allows
        if host not in allowed and "*" not in allowed:
            settings.ALLOWED_HOSTS = [*allowed, host]
        trusted = list(getattr(settings, "CSRF_TRUSTED_ORIGINS", []))
        if public_url not in trusted:
            settings.CSRF_TRUSTED_ORIGINS = [*trusted, public_url]
        configured = dict(getattr(settings, "PAYDESK", None) or {})
        configured["PUBLIC_BASE_URL"] = public_url
        settings.PAYDESK = configured
        paydesk_settings.reload()
        providers.reset()

    def _print_urls(self, public_url: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"Tunnel open: {public_url} -> this server"))
        self.stdout.write('PAYDESK["PUBLIC_BASE_URL"] is set to it for this run.')
        self.stdout.write("Webhook URLs to paste into each provider's dashboard:")
        for alias in providers.aliases():
            path = reverse("paydesk:webhook", args=[alias])
            try:
                receives = providers[alias].supports(Capability.WEBHOOKS)
            except ConfigurationError as exc:
                self.stdout.write(f"  {alias}: {public_url}{path}  (not usable: {exc.message})")
                continue
            note = "" if receives else "  (this provider sends no webhooks)"
            self.stdout.write(f"  {alias}: {public_url}{path}{note}")

    def serve(self, addrport: str) -> None:
        """Run the development server in this process (no autoreloader: a reload would open
        a second tunnel)."""
        call_command("runserver", addrport, use_reloader=False)


def _config_has_authtoken(conf: Any) -> bool:
    """Whether ngrok's own config file (``ngrok config add-authtoken``) holds a token."""
    candidates = []
    with contextlib.suppress(Exception):  # any failure just means "not found there"
        candidates.append(conf.get_default().config_path)
    candidates.append(getattr(conf, "DEFAULT_NGROK_CONFIG_PATH", None))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            text = Path(candidate).read_text(encoding="utf-8")
        except OSError:
            continue
        if "authtoken" in text:
            return True
    return False
