"""Rows 12 and 13: what the Prometheus metrics cost the POST and the worker.

Rows 1 and 3 measured against themselves: one gunicorn (or Celery worker) records
metrics, in multiprocess mode as in production (``METRICS_ENABLED`` and a fresh
``PROMETHEUS_MULTIPROC_DIR``), the other has them off; both run in the same run,
alternately, so that the drift of a shared machine falls on both sides alike.
Metrics may cost at most 5 %: the ratio on/off must stay at or above 0.95.
"""

from __future__ import annotations

import argparse
import os
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measures of each side")
    parser.add_argument("--seconds", type=int, default=http_throughput.SECONDS)
    parser.add_argument("--batch", type=int, default=worker_throughput.BATCH)
    args = harness.parse_and_prepare(parser)
    harness.report(post_rates(args.db, args.runs, args.seconds))
    harness.report(drain_rates(args.db, args.runs, args.batch))


if __name__ == "__main__":
    main()
