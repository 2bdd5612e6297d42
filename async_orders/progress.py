"""Helpers for a view running as an order: the current order, progress, failure.

Outside an order (the same view called synchronously) every helper is transparent:
``ProgressItems`` iterates, ``fail_on_error`` re-raises, ``current_order()`` is None.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from async_orders import log_context
from async_orders.attempt_lease import AttemptLease
from async_orders.conf import conf
from async_orders.deprecation import renamed
from async_orders.outage import UNREACHABLE, reconnect_later

if TYPE_CHECKING:
    from async_orders.models import Order

logger = logging.getLogger("async_orders")

T = TypeVar("T")

#: How long one batch of ``ProgressItems`` should take the loop body at most, in
#: seconds: progress is counted (and cancellation noticed) between batches only.
#: With a shorter ``PROGRESS_INTERVAL`` that interval is the target instead, so
#: ``PROGRESS_INTERVAL = 0`` writes after every single item.
BATCH_SECONDS = 0.05
MAX_BATCH = 65536


class CancelRequested(BaseException):
    """Raised inside a running view by ``ProgressItems`` when its order was canceled.

    A ``BaseException``, like ``asyncio.CancelledError``, so that a view's broad
    ``except Exception`` does not swallow the request to stop.
    """


#: This exception was called ``OrderCanceled``, which clashed with the
#: client's :class:`async_orders.client.OrderCanceled`; the old name still works.
__getattr__ = renamed(__name__, {"OrderCanceled": "CancelRequested"})


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
    lease: AttemptLease = field(init=False)

    def __post_init__(self) -> None:
        self.lease = AttemptLease(self.order)

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


_current_run: ContextVar[OrderRun | None] = ContextVar("async_orders_run", default=None)


def current_order() -> Order | None:
    """The order the calling code runs in, or ``None`` outside a worker's order.

    A checkpoint too: it raises :class:`~async_orders.attempt_lease.LeaseLost` when this
    attempt has lost the order, and waits while its lease cannot be renewed. Hand
    ``current_order().attempt`` to side effects as their fencing token.
    """
    run = _current_run.get()
    if run is None:
        return None
    run.lease.check()
    return run.order


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


@contextmanager
def fail_on_error(message: str) -> Iterator[None]:
    """Fail the current order with ``message`` if the block raises; the error is re-raised.

    The exception is never shown to clients: ``message`` is what the order's ``error``
    says. It is not logged here either: the worker logs the failure once, with this
    message and the traceback, and keeps the traceback on the order for operators.
    Usable as a decorator too.
    """
    try:
        yield
    except Exception:
        run = _current_run.get()
        if run is not None and run.failure_message is None:
            run.failure_message = message
        raise


class ProgressItems(Generic[T]):
    """Iterate ``items``, reporting the count done (out of ``total``) on the current order.

    ``total`` defaults to ``len(items)`` when items has a length. Items are taken in
    batches sized to take about :data:`BATCH_SECONDS` each, and progress is written
    at most once per ``PROGRESS_INTERVAL``, so a million fast items cost a handful of
    UPDATEs and almost nothing per item. A batch is read ahead of the loop body.
    """

    def __init__(self, items: Iterable[T], total: int | None = None, message: str | None = None):
        self.items = items
        self.total = total if total is not None else _length(items)
        self.message = message

    def __iter__(self) -> Iterator[T]:
        run = _current_run.get()
        if run is None:
            return iter(self.items)
        return itertools.chain.from_iterable(self._batches(run))

    def _batches(self, run: OrderRun) -> Iterator[Sequence[T]]:
        take = _batch_reader(self.items)
        done, size = 0, 1
        target = min(BATCH_SECONDS, conf.PROGRESS_INTERVAL)
        run.report(done, self.total, self.message)
        while batch := take(done, size):
            started = time.monotonic()
            yield batch
            done += len(batch)
            size = _next_batch_size(size, time.monotonic() - started, target)
            run.report(done, self.total, self.message)
        run.report(done, self.total, self.message, final=True)


def _batch_reader(items: Iterable[T]) -> Callable[[int, int], Sequence[T]]:
    """``take(start, size)``: the next batch. A sequence's batches are slices of it (a
    range's slice is a range, a list's a C-level copy), which costs the loop almost
    nothing per item; any other iterable is read item by item into a list."""
    if isinstance(items, Sequence):
        return lambda start, size: items[start : start + size]
    source = iter(items)
    return lambda _start, size: list(itertools.islice(source, size))


def _length(items: Iterable[object]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


def _next_batch_size(size: int, seconds: float, target: float) -> int:
    if seconds < target / 2:
        return min(size * 2, MAX_BATCH)
    if seconds > target * 2:
        return max(size // 2, 1)
    return size
