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
from typing import TYPE_CHECKING, Generic, TypeVar

from async_orders.conf import conf
from async_orders.deprecation import renamed
from async_orders.worker.run import CancelRequested, OrderRun, current_run

if TYPE_CHECKING:
    from async_orders.models import Order

__all__ = ["CancelRequested", "ProgressItems", "current_order", "fail_on_error"]

logger = logging.getLogger("async_orders")

T = TypeVar("T")

#: How long one batch of ``ProgressItems`` should take the loop body at most, in
#: seconds: progress is counted (and cancellation noticed) between batches only.
#: With a shorter ``PROGRESS_INTERVAL`` that interval is the target instead, so
#: ``PROGRESS_INTERVAL = 0`` writes after every single item.
BATCH_SECONDS = 0.05
MAX_BATCH = 65536


#: This exception was called ``OrderCanceled``, which clashed with the
#: client's :class:`async_orders.client.OrderCanceled`; the old name still works.
__getattr__ = renamed(__name__, {"OrderCanceled": "CancelRequested"})


def current_order() -> Order | None:
    """The order the calling code runs in, or ``None`` outside a worker's order.

    A checkpoint too: it raises :class:`~async_orders.worker.order_lease.LeaseLost` when this
    attempt has lost the order, and waits while its lease cannot be renewed. Hand
    ``current_order().attempt`` to side effects as their fencing token.
    """
    run = current_run()
    if run is None:
        return None
    run.lease.check()
    return run.order


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
        run = current_run()
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
        run = current_run()
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
