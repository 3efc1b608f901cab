"""Check that each configured payment provider answers (and, with --production, is live)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from paydesk.health import ProviderHealthChecker


class Command(BaseCommand):
    help = (
        "Run each configured provider's health check (a cheap read-only call, or a "
        "configuration check for offline providers) concurrently, with a timeout. Exits "
        "non-zero when any provider is unhealthy. --production also fails sandbox providers, "
        "TEST_MODE, test keys and sandbox MODE."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--provider",
            action="append",
            dest="providers",
            metavar="ALIAS",
            help="check only this alias (repeatable); default: every configured provider",
        )
        parser.add_argument(
            "--production",
            action="store_true",
            help="apply live-mode rules: sandbox, TEST_MODE and test keys are unhealthy",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help='seconds per provider (default: PAYDESK["HEALTH"]["TIMEOUT"])',
        )
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="also print healthy providers' details (same as -v 2)",
        )
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        checker = ProviderHealthChecker(timeout=options["timeout"])
        results = checker.check_all_providers(
            test_mode=not options["production"], aliases=options["providers"]
        )
        verbose = options["verbose"] or options["verbosity"] >= 2
        if options["json"]:
            self.stdout.write(json.dumps([r.to_dict() for r in results], indent=2))
        else:
            if verbose:
                mode = "production (live-mode rules)" if options["production"] else "test"
                self.stdout.write(
                    f"Checking {len(results)} provider(s) in {mode} mode, "
                    f"timeout {checker.timeout:g} s each."
                )
            for result in results:
                took = (
                    f" ({result.response_time_ms:.0f} ms)"
                    if result.response_time_ms is not None
                    else ""
                )
                if result.healthy:
                    detail = f"{took}: {result.message}" if verbose else took
                    self.stdout.write(self.style.SUCCESS(f"OK    {result.provider}{detail}"))
                else:
                    self.stdout.write(
                        self.style.ERROR(f"FAIL  {result.provider}{took}: {result.message}")
                    )
        failing = [r.provider for r in results if not r.healthy]
        if not results:
            raise CommandError('No providers are configured (PAYDESK["PROVIDERS"]).')
        if failing:
            raise CommandError(
                f"{len(failing)} of {len(results)} provider(s) unhealthy: {', '.join(failing)}.",
                returncode=1,
            )
        if verbose:
            self.stdout.write(f"All {len(results)} provider(s) healthy.")
