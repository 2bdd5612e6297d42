"""Row 16: a queue of no-op ``@task``s drained through ``OrderBackend`` against
django-tasks-db's ``db_worker`` (issue 26: target >= 1.0x).

The same task function (:func:`benchmarks.peers.tasks_db.noop_job`) is enqueued with
``task.enqueue()`` on each side: with the ``orders`` alias, each enqueue places an
order that our Celery worker runs (prefork, 2 children) under its claim, lease and
fencing; with django-tasks-db (the ``default`` alias) a row that 2 ``db_worker``
processes run. As in row 10, the jobs are queued while no worker runs, then the
workers start; the rate is taken from the first completion to the last, and the
sides alternate. No Celery ``django.tasks`` backend is a side yet: django-tasks-celery
needs Python >= 3.12 (the benchmarks run on 3.11); django-tasks-fennel 0.1 installs
but is not measured.

``python -m benchmarks.task_drain --jobs 200 --runs 1`` is a quick check.
"""

from __future__ import annotations

import argparse
from functools import partial

from benchmarks import harness, worker_throughput

ROW = 16
JOBS = 1500
RUNS = 3


def publish_task_orders(count: int) -> None:
    """``count`` task orders of ``OrderBackend`` (each published as it commits)."""
    from benchmarks.peers.tasks_db import noop_job

    as_orders = noop_job.using(backend="orders")
    for _ in range(count):
        as_orders.enqueue({"name": "x"})


def run(jobs: int, runs: int) -> None:
    from benchmarks.peers import measures

    sides = {
        "OrderBackend": partial(
            worker_throughput.drain, publish_task_orders, jobs, harness.celery_worker
        ),
        "django-tasks-db": partial(
            worker_throughput.drain, measures.publish_tasks_db, jobs, measures.TASKS_DB.workers
        ),
    }
    samples = harness.alternate(runs, sides)
    subject, baseline = samples["OrderBackend"], samples["django-tasks-db"]
    harness.report(
        harness.Result(
            ROW,
            "drain no-op @tasks: OrderBackend vs django-tasks-db",
            "postgres",
            subject.median,
            baseline.median,
            "jobs/s",
            1.0,
            True,
            subject.spread,
            baseline.spread,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.task_drain", description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS, help="tasks per drain")
    parser.add_argument("--runs", type=int, default=RUNS, help="drains of each side")
    args = harness.parse_and_prepare(parser)
    run(args.jobs, args.runs)
