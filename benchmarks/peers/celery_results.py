"""The Celery + django-celery-results peer: its own Celery app, queue and no-op task.

An app of its own, because its result settings (status rows in the database, the
task's name and arguments stored, ``STARTED`` recorded) must not change the main
benchmark app, whose raw task keeps the Redis result backend. It is never made the
current app, so ``async_orders``' shared task keeps publishing through the main one.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from django.conf import settings

# The main app's signal handlers (worker ready, task finished) apply to this one too.
from benchmarks import celery as benchmark_celery
from benchmarks import work


class Config:
    """What a user of django-celery-results configures, on the benchmark's broker."""

    broker_url = settings.CELERY_BROKER_URL
    broker_connection_retry_on_startup = True
    worker_hijack_root_logger = False
    task_default_queue = settings.PEER_CELERY_QUEUE
    result_backend = "django-db"
    result_extended = True
    task_track_started = True


app = Celery("benchmarks.peers", set_as_current=False)
app.config_from_object(Config)

#: The counter every finished job bumps, shared with the main benchmark app.
DONE_KEY = benchmark_celery.DONE_KEY


@app.task(name="benchmarks.peers.noop")
def noop_job(data: Any = None) -> dict[str, bool]:
    """The job: the same function as the order's view, its input ignored."""
    return work.noop()
