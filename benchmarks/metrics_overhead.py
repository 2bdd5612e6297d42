"""Rows 12 to 14: what the Prometheus metrics cost the POST and the worker.

Rows 1 and 3 measured against themselves: one gunicorn (or Celery worker) records
metrics, in multiprocess mode as in production (``METRICS_ENABLED`` and a fresh
``PROMETHEUS_MULTIPROC_DIR``), the other has them off; both run in the same run,
alternately, so that the drift of a shared machine falls on both sides alike.
Metrics may cost at most 5 %: the ratio on/off must stay at or above 0.95.

On a shared machine those throughputs move by more than 5 % from one run to the
next, so row 14 measures the cost itself, in this process: the CPU time the metrics'
receivers add to one order (placed, started, finished; multiprocess mode), against
the CPU time of placing and running one order with metrics off.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

from benchmarks import harness, http_throughput, worker_throughput

T = TypeVar("T")

TARGET = 0.95
#: Read by benchmarks.settings: "1" turns METRICS_ENABLED on in the processes started.
SWITCH = "ASYNC_ORDERS_BENCH_METRICS"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
PLACE = "/async/noop/order/"
#: Per server and round of the warm-up: one second is not enough for a fresh gunicorn
#: on a loaded machine (its first POSTs import and compile what the rest reuse).
WARM_UP_SECONDS = 2


@contextmanager
def with_metrics(on: bool, start: Callable[[], AbstractContextManager[T]]) -> Iterator[T]:
    """Start processes with ``start`` and metrics ``on`` or off; this process's own
    environment is left as it was, so that the other side starts without them."""
    with tempfile.TemporaryDirectory(prefix="async-orders-metrics-") as directory:
        saved = dict(os.environ)
        os.environ[SWITCH] = "1" if on else "0"
        os.environ.pop(MULTIPROC_DIR, None)
        if on:
            os.environ[MULTIPROC_DIR] = directory
        try:
            with ExitStack() as stack:
                yield stack.enter_context(start())
                if on:
                    written = len(list(Path(directory).glob("*.db")))
                    harness.log(f"metrics on: {written} files in the multiprocess directory")
        finally:
            os.environ.clear()
            os.environ.update(saved)


def post_rates(database: str, runs: int, seconds: int) -> harness.Result:
    """Row 12: POST req/s of two gunicorns, metrics on and off, alternated."""
    script = http_throughput.post_script({"data": {"name": "x"}}, http_throughput.client_sessions())
    with (
        with_metrics(True, harness.gunicorn) as on,
        with_metrics(False, harness.gunicorn) as off,
    ):
        for url in (on, off, on, off):  # a fresh gunicorn is slow for its first seconds
            harness.wrk(url + PLACE, script, WARM_UP_SECONDS)
        samples = harness.alternate(
            runs,
            {
                "POST, metrics on": lambda: http_throughput.rate(on, PLACE, script, seconds),
                "POST, metrics off": lambda: http_throughput.rate(off, PLACE, script, seconds),
            },
        )
        _check_counted(on)
    return _result(12, "POST order: metrics on vs off", database, samples, "req/s")


def _check_counted(base_url: str) -> None:
    """The "on" server did count: its scrape shows the placed orders."""
    import requests

    text = requests.get(base_url + "/async/metrics/", timeout=10).text
    [line] = [x for x in text.splitlines() if x.startswith("async_orders_orders_placed_total")]
    harness.log(f"metrics on, scraped: {line}")


def drain_rates(database: str, runs: int, batch: int) -> harness.Result:
    """Row 13: orders/s a prefork worker drains, metrics on and off, alternated."""

    def drain(on: bool) -> float:
        worker = partial(with_metrics, on, harness.celery_worker)
        return worker_throughput.drain(worker_throughput.publish_orders, batch, worker)

    samples = harness.alternate(
        runs,
        {"worker, metrics on": lambda: drain(True), "worker, metrics off": lambda: drain(False)},
    )
    return _result(13, "worker: orders/s, metrics on vs off", database, samples, "per s")


def _result(
    row: int, what: str, database: str, samples: dict[str, harness.Samples], unit: str
) -> harness.Result:
    on, off = samples.values()
    return harness.Result(
        row, what, database, on.median, off.median, unit, TARGET, True, on.spread, off.spread
    )


def receiver_cost(database: str, runs: int, orders: int = 200) -> harness.Result:
    """Row 14: the CPU the metrics add per order (a difference of two loops over the
    receivers alone, on and off), against one order's CPU with metrics off."""
    added = min(_signals_per_order(True) - _signals_per_order(False) for _ in range(runs))
    order = min(_order_cpu(orders) for _ in range(runs))
    return harness.Result(
        14,
        "CPU the metrics add per order vs the order's CPU",
        database,
        added,
        order,
        "us",
        1 - TARGET,
        False,
    )


def _metrics(on: bool) -> None:
    from django.conf import settings

    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "METRICS_ENABLED": on}


def _signals_per_order(on: bool, repeat: int = 5000) -> float:
    """Microseconds of CPU for the signals one order sends in its life, every receiver
    included (the change notifications' too), with metrics ``on`` or off."""
    from django.utils import timezone

    from async_orders import metrics, signals
    from async_orders.models import Order, OrderStatus

    now = timezone.now()
    started = Order(view_name="noop", status=OrderStatus.RUNNING, created_at=now, started_at=now)
    done = Order(view_name="noop", status=OrderStatus.COMPLETED, started_at=now, finished_at=now)
    changed = signals.order_status_changed
    _metrics(on)
    begin = time.process_time()
    for _ in range(repeat):
        metrics._placed(Order, started, True, "default")
        changed.send(Order, order=started, previous=OrderStatus.QUEUED, status=started.status)
        changed.send(Order, order=done, previous=OrderStatus.RUNNING, status=done.status)
        signals.order_finished.send(Order, order=done)
    return (time.process_time() - begin) / repeat * 1e6


def _order_cpu(orders: int) -> float:
    """Microseconds of CPU to POST one order (Django's test client) and run it, with
    metrics off and no broker (what the metrics would add to)."""
    from django.test import Client

    from async_orders.broker import publishing
    from async_orders.worker import execution

    _metrics(False)
    client, send_order = Client(), publishing.send_order
    publishing.send_order = lambda order: None
    try:
        begin = time.process_time()
        for _ in range(orders):
            response = client.post(PLACE, {"data": {}}, content_type="application/json")
            execution.run_order(response.json()["id"])
        return (time.process_time() - begin) / orders * 1e6
    finally:
        publishing.send_order = send_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # An even number, so that each side is measured first in as many rounds: the
    # first round after the warm-up ran slower for both sides in every trial run.
    parser.add_argument("--runs", type=int, default=4, help="measures of each side")
    parser.add_argument("--seconds", type=int, default=http_throughput.SECONDS)
    parser.add_argument("--batch", type=int, default=worker_throughput.BATCH)
    # This process too counts in multiprocess mode, for row 14; the servers and
    # workers started for rows 12 and 13 get directories of their own.
    os.environ[MULTIPROC_DIR] = own = tempfile.mkdtemp(prefix="async-orders-metrics-")
    atexit.register(shutil.rmtree, own, True)
    args = harness.parse_and_prepare(parser)
    harness.report(receiver_cost(args.db, args.runs))
    harness.report(post_rates(args.db, args.runs, args.seconds))
    harness.report(drain_rates(args.db, args.runs, args.batch))


if __name__ == "__main__":
    main()
