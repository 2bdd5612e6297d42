"""Row 5: ``ProgressItems`` over 1,000,000 items against a bare ``for`` loop.

Both loops do the same small computation per item; the ``ProgressItems`` loop runs
inside a real order (so it batches, counts and writes progress to the database at
the library's default ``PROGRESS_INTERVAL``). Each loop runs alternately ``RUNS``
times; the fastest run of each is compared.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from benchmarks import harness

ITEMS = 1_000_000
RUNS = 5


def bare(items: Iterable[int]) -> int:
    total = 0
    for item in items:
        total += item * item % 7
    return total


def with_progress(items: range) -> int:
    from async_orders import ProgressItems

    total = 0
    for item in ProgressItems(items):
        total += item * item % 7
    return total


def seconds(loop: object, items: range) -> float:
    started = time.perf_counter()
    loop(items)  # type: ignore[operator]
    return time.perf_counter() - started


def write_seconds(order: object) -> float:
    """What the two progress UPDATEs every loop makes (its first and final) take here."""
    started = time.perf_counter()
    for _ in range(2):
        order.report_progress(ITEMS, ITEMS, None)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def run(database: str) -> None:
    from async_orders.models import Order, OrderStatus
    from async_orders.worker.run import running

    order = Order.objects.create(view_name="noop", origin="http://127.0.0.1")
    order.start()
    items = range(ITEMS)
    assert bare(items) == with_progress(items)
    subjects, baselines = [], []
    for _ in range(RUNS):
        baselines.append(seconds(bare, items))
        with running(order):
            subjects.append(seconds(with_progress, items))
    subject, baseline = min(subjects), min(baselines)
    writes = write_seconds(order)
    harness.log(f"of which the first and final progress writes: {writes * 1000:.1f} ms")
    harness.log(f"per item, writes left out: {(subject - baseline - writes) / ITEMS * 1e9:.1f} ns")
    order.refresh_from_db()
    assert order.status == OrderStatus.RUNNING
    assert order.progress_current == ITEMS
    harness.report(
        harness.Result(
            5,
            "ProgressItems 1M items vs bare for",
            database,
            subject * 1000,
            baseline * 1000,
            "ms",
            1.10,
            False,
        )
    )


if __name__ == "__main__":
    harness.main(run, harness.DATABASES)
