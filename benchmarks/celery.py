"""The benchmark's Celery app: the order task (autodiscovered) and the raw baseline task.

Every finished task, order or raw, bumps one Redis counter, so the benchmark process
sees both kinds drain the same way and at the same small cost.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_ready

from benchmarks import work

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

DONE_KEY = "async-orders-bench:done"
READY_KEY = "async-orders-bench:ready"

app = Celery("benchmarks")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_redis: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """This process's client of the broker's Redis (one per worker child, made after the fork)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(app.conf.broker_url)
    return _redis


@app.task(name="benchmarks.noop")
def noop_task() -> dict[str, bool]:
    """The baseline: the same function as the order's view, called by a plain task."""
    return work.noop()


@app.task(name="benchmarks.noop_late", acks_late=True)
def noop_task_acked_late() -> dict[str, bool]:
    """The baseline acknowledged after it ran, as the order task is: what that costs
    Celery's main process (``benchmarks.peers.cpu``)."""
    return work.noop()


@task_postrun.connect
def count_done(**_: Any) -> None:
    redis_client().incr(DONE_KEY)


@worker_process_init.connect
def forget_parent_client(**_: Any) -> None:
    global _redis
    _redis = None  # a socket shared with the parent across fork would mix replies


@worker_ready.connect
def say_ready(**_: Any) -> None:
    redis_client().set(READY_KEY, 1)
