"""Row 3: orders a worker completes per second for a no-op view, against raw Celery.

One ``celery worker`` process, prefork with 2 children. A batch is published while
no worker runs; then the worker starts and drains it. The rate is taken between the
first and the last completion, so the worker's start-up is not in it. The baseline is
a raw task calling the same function, its result ignored as the order task's is.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from benchmarks import harness

BATCH = 1500
RUNS = 2
DRAIN_TIMEOUT = 120.0


def publish_orders(count: int) -> None:
    from async_orders.broker.publishing import send_order
    from async_orders.models import Order, OrderStatus

    orders = Order.objects.bulk_create(
        Order(view_name="noop", origin="http://127.0.0.1", status=OrderStatus.QUEUED)
        for _ in range(count)
    )
    for order in orders:
        send_order(order)


def publish_raw(count: int, late: bool = False) -> None:
    """``count`` raw tasks; ``late``: acknowledged after they ran (``acks_late``)."""
    from benchmarks.celery import noop_task, noop_task_acked_late

    for _ in range(count):
        (noop_task_acked_late if late else noop_task).apply_async(ignore_result=True)


def drain(
    publish: Callable[[int], None],
    batch: int = BATCH,
    worker: Callable[[], AbstractContextManager[object]] = harness.celery_worker,
) -> float:
    """Completions per second of one batch, from the first completion to the last.

    ``worker`` starts the processes that drain the batch; each completion must bump
    :data:`benchmarks.celery.DONE_KEY` (the peers' workers do it too).
    """
    return metered_drain(publish, batch, worker)[0]


#: CPU seconds used so far, by kind of process, read when a drain's clock starts and stops.
Meter = Callable[[object], dict[str, float]]


def worker_cpu(process: object) -> dict[str, float]:
    """The CPU of the worker (its processes) when ``worker`` yields its process."""
    if not isinstance(process, subprocess.Popen):
        return {}
    return {"worker": harness.cpu_seconds(process)}


def metered_drain(
    publish: Callable[[int], None],
    batch: int,
    worker: Callable[[], AbstractContextManager[object]],
    meter: Meter = worker_cpu,
) -> tuple[float, dict[str, float]]:
    """:func:`drain`'s rate, and what ``meter`` counted per completion over the same
    window (by default the worker's CPU seconds, when ``worker`` yields its process)."""
    from benchmarks import celery

    client = celery.redis_client()
    harness.purge_queue()
    client.set(celery.DONE_KEY, 0)
    publish(batch)
    with worker() as process:
        harness.wait_until(lambda: int(client.get(celery.DONE_KEY)) >= 1, "a first completion")
        first, at_first = time.monotonic(), meter(process)
        harness.wait_until(
            lambda: int(client.get(celery.DONE_KEY)) >= batch, "the batch", DRAIN_TIMEOUT
        )
        last, at_last = time.monotonic(), meter(process)
    per_completion = {
        kind: (used - at_first.get(kind, 0.0)) / (batch - 1) for kind, used in at_last.items()
    }
    return (batch - 1) / (last - first), per_completion


def completed_orders() -> int:
    from async_orders.models import Order, OrderStatus

    return Order.objects.filter(status=OrderStatus.COMPLETED).count()


def run(database: str) -> None:
    subject, baseline = harness.best_of(
        RUNS, lambda: drain(publish_orders), lambda: drain(publish_raw)
    )
    harness.log(f"{completed_orders()} orders completed (expected {BATCH * RUNS})")
    harness.report(
        harness.Result(
            3,
            "worker: orders/s vs raw Celery tasks/s",
            database,
            subject,
            baseline,
            "per s",
            0.4,
            True,
            why="two durable state changes (claim, outcome) against none",
        )
    )


if __name__ == "__main__":
    harness.main(run, harness.DATABASES)
