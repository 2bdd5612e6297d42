"""``manage.py purge_orders``: delete finished orders older than ``RETENTION_SECONDS``.

The same work as the periodic ``async_orders.purge`` Celery task, for cron.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from async_orders.retention import purge_finished


class Command(BaseCommand):
    help = "Delete finished orders older than ASYNC_ORDERS['RETENTION_SECONDS']."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{purge_finished()} finished orders deleted.")
