"""``manage.py reconcile_orders``: one pass of the reconciler, or ``--loop`` for the
process that deployments run beside their workers."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from async_orders.conf import conf
from async_orders.worker.reconciler import reconcile, reconcile_forever


class Command(BaseCommand):
    help = (
        "Re-send lost order messages and recover orders whose worker died. With --loop, "
        "run a pass every RECONCILE_INTERVAL seconds until stopped (several may run: one leads)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop", action="store_true", help="Keep running; SIGTERM or Ctrl-C stops it."
        )

    def handle(self, *args: Any, loop: bool = False, **options: Any) -> None:
        if loop:
            self._loop()
            return
        report = reconcile()
        if not report.leader:
            self.stdout.write("Another reconciler leads; nothing done.")
            return
        self.stdout.write(
            f"{len(report.republished)} republished, {len(report.requeued)} requeued, "
            f"{len(report.failed)} failed as worker lost, {len(report.canceled)} canceled, "
            f"{len(report.expired)} past their start deadline."
        )

    def _loop(self) -> None:
        stop = threading.Event()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, lambda signum, frame: stop.set())
        self.stdout.write(f"Reconciling every {conf.RECONCILE_INTERVAL:g}s; Ctrl-C stops.")
        self.stdout.flush()
        reconcile_forever(stop)
