"""``manage.py orders_health``: one line and an exit code, for probes and cron."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from async_orders import health


class Command(BaseCommand):
    help = (
        "Say in one line whether orders can flow (broker, database, reconciler, queue, "
        "workers); exit 0 when healthy, 1 when not."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--probe",
            choices=sorted(health.PROBES),
            default="all",
            help="live: no outside facts; ready: the database; all (default): every fact.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = health.check(options["probe"])
        self.stdout.write(report.line())
        if not report.healthy:
            sys.exit(1)
