"""Delete old, successfully handled webhook deliveries (failures are kept)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from paydesk.webhooks.replay import WebhookReplayer


class Command(BaseCommand):
    help = "Delete handled webhook deliveries older than --days (default: RETENTION_DAYS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None)
        parser.add_argument("--dry-run", action="store_true", help="only count them")

    def handle(self, *args: Any, **options: Any) -> None:
        stats = WebhookReplayer().cleanup_old_events(options["days"], dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(f"{verb} {stats['total']} webhook deliveries")
