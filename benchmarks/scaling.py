"""Scaling: orders drained per second by 1, 2 and 4 worker processes, and the
worker's CPU per order, so that a deployment can be sized (docs/performance.md).

``python -m benchmarks.scaling``: a batch of no-op orders is queued while no worker
runs, then one prefork worker with N children drains it; the rate is taken between
the first and the last completion, the CPU (the worker and its children, from
/proc) over the same window. Not a ratio row of ``make bench``: it prints figures.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

from benchmarks import harness, worker_throughput

PROCESSES = (1, 2, 4)


def run(batch: int) -> None:
    harness.log(f"{os.cpu_count()} CPUs; {batch} no-op orders per drain")
    for processes in PROCESSES:
        rate, used = worker_throughput.metered_drain(
            worker_throughput.publish_orders, batch, partial(harness.celery_worker, processes)
        )
        cpu = used.get("worker")
        per_cpu = 1 / cpu if cpu else float("nan")
        harness.log(
            f"{processes} worker process(es): {rate:,.0f} orders/s, "
            f"{(cpu or 0) * 1000:.1f} ms CPU per order ({per_cpu:,.0f} orders per CPU-second)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000, help="orders per drain")
    run(harness.parse_and_prepare(parser).batch)


if __name__ == "__main__":
    main()
