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

#: What a user of django-celery-results adds to the standard Django configuration.
RESULTS = {
    "task_default_queue": settings.PEER_CELERY_QUEUE,
    "result_backend": "django-db",
    "result_extended": True,
    "task_track_started": True,
}

app = Celery("benchmarks.peers", set_as_current=False)
# The standard Django way, as the quickstart configures the subject's app: the same
# CELERY_ settings (CELERY_DB_REUSE_MAX among them, which Celery's Django fix-up reads
# from the app's configuration) reach both workers. It once had a Config class of its
# own, so its worker closed its connections around every task while the subject's
# kept them (docs/performance.md, "Worker settings").
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(RESULTS)

#: The counter every finished job bumps, shared with the main benchmark app.
DONE_KEY = benchmark_celery.DONE_KEY


@app.task(name="benchmarks.peers.noop")
def noop_job(data: Any = None) -> dict[str, bool]:
    """The job: the same function as the order's view, its input ignored."""
    return work.noop()
