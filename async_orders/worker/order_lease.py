"""The running attempt's lease on its order, as the worker sees it.

The order row holds the lease on the database's clock (``heartbeat_at``); the
reconciler starts another attempt only once it has gone unrenewed for
``WORKER_LOST_AFTER`` plus ``LEASE_MARGIN`` seconds of a reachable database. The
attempt keeps its own, stricter view on its monotonic clock: it may go on only
until ``WORKER_LOST_AFTER`` after the start of its last successful renewal. At
each checkpoint past that, it waits until a renewal succeeds (the database was
only unreachable: nobody took the order meanwhile) or is refused (the order was
recovered: stop, and never write again). Two attempts therefore never run at the
same time as long as the time between two checkpoints stays below the margin.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from async_orders.conf import conf
from async_orders.outage import UNREACHABLE, reconnect_later

if TYPE_CHECKING:
    from async_orders.models import Order

logger = logging.getLogger("async_orders")


class LeaseLost(BaseException):
    """Raised at a checkpoint of an attempt that lost its order to another attempt.

    A ``BaseException``, like :class:`~async_orders.worker.run.CancelRequested`, so that
    a view's broad ``except Exception`` cannot swallow it and carry on.
    """


class AttemptTimedOut(BaseException):
    """Raised at a checkpoint of an attempt that ran past its order's ``timeout``.

    A ``BaseException`` for the same reason as :class:`LeaseLost`. The lease is not
    renewed past the timeout either, so an attempt that reaches no checkpoint loses
    its order to the reconciler (or its process to Celery's hard time limit) and is
    fenced out of it like any lost attempt.
    """


class OrderLease:
    """What the attempt knows of its lease: until when it is surely valid, and
    whether a renewal was refused. Shared by the view's thread and the heartbeat's."""

    def __init__(self, order: Order) -> None:
        self.order = order
        #: The claim just took the lease.
        self.valid_until = time.monotonic() + conf.WORKER_LOST_AFTER
        self.lost = False
        #: When the order's ``timeout`` ends this attempt (monotonic); ``None``: never.
        self.ends_at = None if order.timeout is None else time.monotonic() + order.timeout

    def timed_out(self) -> bool:
        return self.ends_at is not None and time.monotonic() >= self.ends_at

    def renew(self) -> bool | None:
        """Renew now: ``True`` renewed, ``False`` refused (lost), ``None`` not renewed
        (unreachable, or past the timeout: such a lease is left to lapse)."""
        if self.timed_out():
            return None
        asked_at = time.monotonic()
        try:
            renewed = self.order.renew_lease()
        except UNREACHABLE:
            logger.warning("Order %s: its lease could not be renewed; retrying.", self.order.pk)
            reconnect_later()
            return None
        self.record(renewed, asked_at)
        return renewed

    def record(self, renewed: bool, asked_at: float) -> None:
        """Note a renewal's answer; ``asked_at`` is when it was sent (monotonic), since
        the database may have stamped it any time after that. A refusal is silent
        here: the heartbeat's last renewal may race the attempt's own outcome."""
        if renewed:
            self.valid_until = max(self.valid_until, asked_at + conf.WORKER_LOST_AFTER)
        else:
            self.lost = True

    def check(self) -> None:
        """A checkpoint: raise :class:`LeaseLost` if the order is no longer this
        attempt's, :class:`AttemptTimedOut` past its timeout; past the lease's validity,
        wait here until it is renewed or refused."""
        delay = 0.05
        while not self.lost and time.monotonic() >= self.valid_until:
            if self.timed_out():
                break
            if self.renew() is None:
                time.sleep(delay)
                delay = min(delay * 2, conf.HEARTBEAT_INTERVAL)
        if self.lost:
            logger.warning(
                "Order %s: attempt %d lost its lease; it stops and writes nothing more.",
                self.order.pk,
                self.order.attempt,
            )
            raise LeaseLost(self.order.pk)
        if self.timed_out():
            raise AttemptTimedOut(self.order.pk)
