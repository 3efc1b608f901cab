"""Expire bank transfers whose payment window closed without a transfer or a receipt."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from paydesk.models.eft import BankTransfer, BankTransferStatus
from paydesk.services.eft import expire_transfers


class Command(BaseCommand):
    help = (
        "Expire bank transfers still awaiting the customer's transfer after their expires_at "
        "(EXPIRY_HOURS); their payments are cancelled. Transfers with a receipt waiting for "
        "review are left for staff. Run it from cron, e.g. hourly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count them")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            due = BankTransfer.objects.filter(
                status=BankTransferStatus.AWAITING_TRANSFER, expires_at__lte=timezone.now()
            ).count()
            self.stdout.write(f"would expire {due} bank transfers")
            return
        self.stdout.write(f"expired {expire_transfers()} bank transfers")
