"""``python -m benchmarks.peers.cpu``: what a drained job costs each side in CPU.

Row 10 says how fast each side drains; this says at what cost, and where: each side
drains a batch as in row 10 (``--jobs`` queued, then its 2 worker processes start),
and the CPU time of every process on the machine is read from /proc at the first
and at the last completion, by kind: the side's workers (Celery's main process, with
its pool apart as ``workers pool``, or the ``db_worker`` processes; only those this
benchmark started), the PostgreSQL backends of the benchmark's database, redis-server,
and the rest (this process polling the completion counter, the machine's own, other
databases'). Not a ratio row of ``make bench``: it prints figures, in ms of CPU per
job. Row 3's baseline, a raw no-op Celery task through the order task's worker, is
drained and counted last, then the same task acknowledged late (``acks_late``), as
an order's message is.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial

from benchmarks import harness, worker_throughput
from benchmarks.peers import measures

#: Kinds of process, by words of their command line.
KINDS = {
    "workers": ("celery", "db_worker"),
    "postgres": ("postgres",),
    "redis": ("redis-server",),
}


def machine_cpu(_: object) -> dict[str, float]:
    """By kind, on a machine others may share: the workers only this benchmark's, and
    PostgreSQL's the backends of its database (a backend that ended, when workers
    reconnect, is no longer counted; the postmaster's and other databases' are
    ``other``)."""
    from benchmarks import settings

    kinds = {**KINDS, "postgres": (f" {settings.DATABASE_NAME} ",)}
    return harness.cpu_by_kind(kinds, split_pools=("workers",), mine=("workers",))


#: What is drained: its name, how its jobs are queued, and its worker processes.
Drained = tuple[str, Callable[[int], None], Callable[[], AbstractContextManager[object]]]
#: Row 3's baseline, drained through the order task's worker after the sides of rows 8-11.
RAW_CELERY: Drained = ("raw Celery task", worker_throughput.publish_raw, harness.celery_worker)
#: The same, acknowledged after it ran as an order is: does that explain why Celery's
#: main process spends more per order than per raw task?
RAW_ACKED_LATE: Drained = (
    "raw Celery task, acks_late",
    partial(worker_throughput.publish_raw, late=True),
    harness.celery_worker,
)


def run(jobs: int) -> None:
    sides: list[Drained] = [(side.name, side.publish, side.workers) for side in measures.SIDES]
    for name, publish, workers in [*sides, RAW_CELERY, RAW_ACKED_LATE]:
        rate, used = worker_throughput.metered_drain(publish, jobs, workers, machine_cpu)
        parts = ", ".join(f"{kind} {seconds * 1000:.2f}" for kind, seconds in sorted(used.items()))
        total = sum(used.values()) * 1000
        harness.log(f"{name}: {rate:,.0f} jobs/s; ms of CPU per job: {parts}; all {total:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per drain")
    run(harness.parse_and_prepare(parser).jobs)


if __name__ == "__main__":
    main()
