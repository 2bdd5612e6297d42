"""``manage.py purge_orders``: delete finished orders past ``RETENTION_SECONDS``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from async_orders.retention import purge_finished


class Command(BaseCommand):
    help = "Delete finished orders older than ASYNC_ORDERS['RETENTION_SECONDS'], in batches."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = purge_finished()
        self.stdout.write(f"Deleted {deleted} finished order(s).")
