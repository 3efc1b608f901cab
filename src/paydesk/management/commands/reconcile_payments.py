"""Compare unsettled payments and refunds with their providers; print the drift report."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from paydesk.exceptions import ConfigurationError
from paydesk.services.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Find payments pending, processing or requiring action, and refunds in flight, older "
        "than a threshold; ask their providers; record what was missed; print the drift "
        "(status and amount differences, refunds one side has and the other lacks). Payments "
        "unsettled past the final timeout are marked failed (or cancelled, per "
        'PAYDESK["RECONCILE"]["FINAL_STATUS"]). --dry-run changes nothing. Run it from cron, '
        "e.g. every 15 minutes, or with --enqueue to hand the run to a task worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="MINUTES",
            help='check what is unsettled for longer (default: RECONCILE["OLDER_THAN_MINUTES"])',
        )
        parser.add_argument(
            "--final-timeout",
            type=float,
            metavar="HOURS",
            help='give up after this long (default: RECONCILE["FINAL_TIMEOUT_HOURS"])',
        )
        parser.add_argument("--provider", metavar="ALIAS", help="only this provider alias")
        parser.add_argument("--limit", type=int, help="at most this many payments and refunds")
        parser.add_argument(
            "--dry-run", action="store_true", help="ask the providers, but write nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--fail-on-drift",
            action="store_true",
            help="exit with status 1 when anything was found (for monitoring from cron)",
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="enqueue paydesk.tasks.reconcile_payments_task instead of running here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["enqueue"]:
            from paydesk.tasks import enqueue_reconcile

            enqueue_reconcile(
                older_than_minutes=options["older_than"],
                final_timeout_hours=options["final_timeout"],
                provider=options["provider"],
                dry_run=options["dry_run"],
            )
            self.stdout.write("enqueued paydesk.tasks.reconcile_payments_task")
            return
        try:
            report = reconcile(
                older_than=(
                    dt.timedelta(minutes=options["older_than"])
                    if options["older_than"] is not None
                    else None
                ),
                final_timeout=(
                    dt.timedelta(hours=options["final_timeout"])
                    if options["final_timeout"] is not None
                    else None
                ),
                provider=options["provider"],
                dry_run=options["dry_run"],
                limit=options["limit"],
            )
        except ConfigurationError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
        else:
            for line in report.lines():
                self.stdout.write(line)
        if options["fail_on_drift"] and not report.clean:
            raise CommandError(f"{len(report.drift)} finding(s); see the report.", returncode=1)
