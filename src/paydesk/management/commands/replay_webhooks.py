"""Replay stored webhook deliveries through the pipeline's processing step."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from paydesk.webhooks.replay import WebhookReplayer, process_due


class Command(BaseCommand):
    help = (
        "Process stored webhook deliveries again. With no option: what the retry schedule "
        "says is due. Replays never apply a delivery twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--failed", action="store_true", help="failed and dead-lettered")
        parser.add_argument("--pending", action="store_true", help="pending or abandoned")
        parser.add_argument("--provider", help="only this provider alias")
        parser.add_argument("--limit", type=int, default=None, help="at most this many")
        parser.add_argument(
            "--no-backoff",
            action="store_true",
            help="with --failed: replay now, even those whose next_retry_at is in the future",
        )
        parser.add_argument("--id", type=int, action="append", dest="ids", help="delivery id")

    def handle(self, *args: Any, **options: Any) -> None:
        replayer = WebhookReplayer()
        runs: list[tuple[str, dict[str, int]]] = []
        if options["ids"]:
            runs.append(("by id", replayer.replay_ids(options["ids"])))
        if options["failed"]:
            runs.append(
                (
                    "failed",
                    replayer.replay_failed(
                        provider=options["provider"],
                        limit=options["limit"],
                        respect_backoff=not options["no_backoff"],
                    ),
                )
            )
        if options["pending"]:
            runs.append(
                (
                    "pending",
                    replayer.replay_pending(provider=options["provider"], limit=options["limit"]),
                )
            )
        if not runs:
            runs.append(("due", process_due(limit=options["limit"] or 500)))
        for label, stats in runs:
            self.stdout.write(
                f"{label}: {stats['total']} replayed, {stats['success']} succeeded, "
                f"{stats['failed']} failed"
            )
