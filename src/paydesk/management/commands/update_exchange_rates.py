"""Fetch exchange rates from the configured source and store them (run it daily, e.g. cron).

The ECB publishes once per working day at about 16:00 CET; running this once or twice a
day after that is enough, and running it again stores nothing twice.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from paydesk.exceptions import PaydeskError
from paydesk.rates import RatesSource, get_rates_source
from paydesk.services.rates import update_rates


class Command(BaseCommand):
    help = (
        'Fetch exchange rates from PAYDESK["RATES"]["SOURCE"] (or --source) and store them; '
        "prints how many rates were stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            default=None,
            help="dotted path of a paydesk.rates.RatesSource to use instead of the setting",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = self._source(options["source"])
            stored = update_rates(source=source)
        except PaydeskError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(f"Stored {stored} exchange rates from {source.name}.")

    def _source(self, path: str | None) -> RatesSource:
        if not path:
            return get_rates_source()
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise CommandError(f"--source {path!r} cannot be imported: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, RatesSource)):
            raise CommandError(f"--source {path!r} is not a paydesk.rates.RatesSource subclass.")
        return cls()
