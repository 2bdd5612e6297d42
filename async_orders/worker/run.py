"""The order a worker is running, as the code inside it sees it.

The worker makes an order current for the code it runs (:func:`running`); the public
helpers of :mod:`async_orders.progress` read it through :func:`current_run`, and are
transparent where there is none.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from async_orders import log_context
from async_orders.conf import conf
from async_orders.outage import UNREACHABLE, reconnect_later
from async_orders.worker.order_lease import OrderLease

if TYPE_CHECKING:
    from async_orders.models import Order


class CancelRequested(BaseException):
    """Raised inside a running view by ``ProgressItems`` when its order was canceled.

    A ``BaseException``, like ``asyncio.CancelledError``, so that a view's broad
    ``except Exception`` does not swallow the request to stop.
    """


@dataclass
class OrderRun:
    """What the worker knows about the order it is running, for the helpers to use."""

    order: Order
    #: The message of the innermost ``fail_on_error`` block an exception left.
    failure_message: str | None = None
    #: When progress was last written; the claim just wrote the order, so a loop that
    #: starts and ends within ``PROGRESS_INTERVAL`` costs one write, its final one.
    last_report: float = field(default_factory=time.monotonic)
    #: The latest progress counted, written or not: kept when the order stops.
    progress: tuple[int, int | None] = (0, None)
    lease: OrderLease = field(init=False)

    def __post_init__(self) -> None:
        self.lease = OrderLease(self.order)

    def report(
        self, current: int, total: int | None, message: str | None, *, final: bool = False
    ) -> None:
        """A checkpoint: store progress, throttled; raise :class:`CancelRequested` if asked
        to stop, :class:`~async_orders.attempt_lease.LeaseLost` if the order is no longer ours.

        The ``final`` report of a loop is always written and never raises: the work
        it reports is done, so stopping now would only throw it away.
        """
        self.progress = (current, total)
        if not final:
            self.lease.check()
        now = time.monotonic()
        if final or now - self.last_report >= conf.PROGRESS_INTERVAL:
            self.last_report = now
            self._write(current, total, message, final=final)

    def _write(self, current: int, total: int | None, message: str | None, *, final: bool) -> None:
        """One progress write, which renews the lease too. An unreachable database
        only delays the progress shown: the lease decides when the view must wait."""
        asked_at = time.monotonic()
        try:
            if self.order.report_progress(current, total, message):
                self.lease.record(True, asked_at)
                return
            if final:
                return
            if self.order.renew_lease():  # still ours, so it was asked to stop
                raise CancelRequested(self.order.pk)
        except UNREACHABLE:
            reconnect_later()
            return
        self.lease.record(False, asked_at)
        self.lease.check()  # raises LeaseLost


class Unleased(OrderLease):
    """The lease of an order another ``TASKS`` backend's worker runs: it holds none of
    ours, so a checkpoint has nothing to check and a write nothing to record."""

    def check(self) -> None:
        return None

    def record(self, renewed: bool, asked_at: float) -> None:
        return None


@dataclass
class FollowedRun(OrderRun):
    """An order whose task another backend's worker runs: the helpers write its
    progress and name its failure; there is no lease, so no fencing, and no cancel to
    notice (such an order is canceled only before it starts)."""

    def __post_init__(self) -> None:
        self.lease = Unleased(self.order)


_current_run: ContextVar[OrderRun | None] = ContextVar("async_orders_run", default=None)


def current_run() -> OrderRun | None:
    """The run of the order the calling code runs in, or ``None`` outside one."""
    return _current_run.get()


def follow_run(order: Order | None) -> OrderRun | None:
    """In another backend's worker, make ``order`` the current order from the task's
    start (``None``: none, at its end); the run that was current before."""
    before = _current_run.get()
    _current_run.set(FollowedRun(order) if order is not None else None)
    return before


@contextmanager
def running(order: Order) -> Iterator[OrderRun]:
    """Make ``order`` the current order for the code run inside the block, and the
    order its log records carry (see :mod:`async_orders.log_context`)."""
    run = OrderRun(order)
    token = _current_run.set(run)
    try:
        with log_context.about(order):
            yield run
    finally:
        _current_run.reset(token)
