"""``manage.py reconcile_orders``: one pass of the reconciler (cron-friendly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from async_orders.reconciler import reconcile


class Command(BaseCommand):
    help = "Re-send lost order messages and recover orders whose worker died."

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile()
        self.stdout.write(
            f"{len(report.republished)} republished, {len(report.requeued)} requeued, "
            f"{len(report.failed)} failed as worker lost."
        )
