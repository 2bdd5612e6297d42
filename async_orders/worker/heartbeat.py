"""Heartbeats for running orders, from one thread per process beside the views.

Each running attempt's lease is renewed every ``HEARTBEAT_INTERVAL`` seconds, so that
views that report no progress for a long time keep their order; progress writes renew
it too. One keeper thread serves every order of its process: starting and joining a
thread for each order cost more than a short order's own work. The keeper sleeps until
the next lease is due, so registering an order never wakes it; it holds a database
connection only while renewing. It survives an unreachable database (the next round
reconnects) and drops a lease at once when a renewal is refused: the view then stops
at its next checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from async_orders.conf import conf
from async_orders.worker.order_lease import OrderLease

logger = logging.getLogger("async_orders")


@contextmanager
def heartbeat(lease: OrderLease) -> Iterator[None]:
    """Renew ``lease`` every ``HEARTBEAT_INTERVAL`` seconds while the block runs."""
    keeper = _this_process_keeper()
    keeper.keep(lease)
    try:
        yield
    finally:
        keeper.release(lease)


class LeaseKeeper:
    """Renews the leases it keeps, each ``HEARTBEAT_INTERVAL`` after its last renewal.

    A renewal may still be under way when its order's block ends: it is then refused
    (the order has finished) or lands before the outcome, and so changes nothing.
    """

    def __init__(self) -> None:
        self._due: dict[OrderLease, float] = {}
        self._changed = threading.Condition()
        #: When the keeper wakes next unless told: a lease kept with the same interval
        #: is due later than that, so keeping one wakes the keeper only when the
        #: interval was shortened meanwhile (a test's settings).
        self._wake_at = 0.0
        self._thread = threading.Thread(target=self._run, name="async-orders-leases", daemon=True)
        self._thread.start()

    def keep(self, lease: OrderLease) -> None:
        with self._changed:
            due = self._due[lease] = time.monotonic() + conf.HEARTBEAT_INTERVAL
            if due < self._wake_at:
                self._changed.notify()

    def release(self, lease: OrderLease) -> None:
        with self._changed:
            self._due.pop(lease, None)

    def _run(self) -> None:
        while True:
            self._renew(self._wait_for_due())

    def _wait_for_due(self) -> list[OrderLease]:
        """Sleep until some lease is due: until the earliest one kept, or for one
        interval while none is."""
        with self._changed:
            while True:
                now = time.monotonic()
                if due := [lease for lease, at in self._due.items() if at <= now]:
                    return due
                self._wake_at = min(self._due.values(), default=now + conf.HEARTBEAT_INTERVAL)
                self._changed.wait(self._wake_at - now)

    def _renew(self, leases: list[OrderLease]) -> None:
        try:
            for lease in leases:
                renewed = self._renewal(lease)
                with self._changed:
                    if lease in self._due:
                        self._due[lease] = time.monotonic() + conf.HEARTBEAT_INTERVAL
                        if renewed is False:
                            del self._due[lease]
        finally:
            connection.close()  # the keeper's own connection: held only while renewing

    @staticmethod
    def _renewal(lease: OrderLease) -> bool | None:
        """Renew ``lease``: ``None`` when it could not be (tried again next interval).
        An unexpected error is logged, never raised: it would end the one thread that
        keeps every order of the process."""
        try:
            return lease.renew()
        except Exception:
            logger.exception("Order %s: its lease could not be renewed.", lease.order.pk)
            return None


_keeper: LeaseKeeper | None = None
_keeper_lock = threading.Lock()


def _this_process_keeper() -> LeaseKeeper:
    """The keeper of this process, started on first use."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            _keeper = LeaseKeeper()
        return _keeper


def _forget_keeper() -> None:
    """In a forked child (a prefork pool process), which starts its own keeper: the
    parent's thread did not survive the fork, and a lock held at it never opens."""
    global _keeper, _keeper_lock
    _keeper, _keeper_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_keeper)
