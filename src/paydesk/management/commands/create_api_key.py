"""Create an API key for a user and print it, once.

    manage.py create_api_key alice --name "billing server" --scope read --scope write
    manage.py create_api_key alice --name "refund bot" --scope refund --expires-in-days 90

The full key (``pdk_<prefix>_<secret>``) is printed on its own line on stdout, followed by
a warning on stderr: only its hash is stored, so it cannot be shown again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from paydesk.api.keys import create_api_key
from paydesk.exceptions import PaydeskError
from paydesk.models import APIKeyScope


class Command(BaseCommand):
    help = "Create an API key acting as USER with the given scopes; prints the key once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="the owner's username (USERNAME_FIELD)")
        parser.add_argument("--name", required=True, help="what the key is for")
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            choices=APIKeyScope.values,
            help="read, write or refund; repeat for several (default: read)",
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument("--expires-in-days", type=int, help="expire after this many days")
        expiry.add_argument("--expires-at", help="expire at this ISO 8601 date and time")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            owner = user_model._default_manager.get_by_natural_key(options["user"])
        except user_model.DoesNotExist:
            raise CommandError(f"No user {options['user']!r}.") from None
        expires_at = self._expiry(options)
        try:
            key, full_key = create_api_key(
                owner=owner,
                name=options["name"],
                scopes=options["scopes"] or [APIKeyScope.READ],
                expires_at=expires_at,
            )
        except PaydeskError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(full_key)
        self.stderr.write(
            self.style.WARNING(
                f"API key {key.name!r} (pdk_{key.prefix}_…) for {owner} with scopes "
                f"{', '.join(key.scopes)}. Store it now, in a secret store: it is shown only "
                "this once and cannot be recovered (revoke it in the admin if it leaks)."
            )
        )

    def _expiry(self, options: dict[str, Any]) -> dt.datetime | None:
        if options.get("expires_in_days") is not None:
            days = options["expires_in_days"]
            if days <= 0:
                raise CommandError("--expires-in-days must be a positive number of days.")
            return timezone.now() + dt.timedelta(days=days)
        raw = options.get("expires_at")
        if not raw:
            return None
        value = parse_datetime(raw)
        if value is None:
            raise CommandError(f"--expires-at {raw!r} is not an ISO 8601 date and time.")
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value
