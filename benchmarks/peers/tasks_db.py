"""The django-tasks-db peer: a no-op task of Django's tasks API, stored in the database.

``db_worker`` imports this module (the task's path) before it finishes the first
task, so the receiver below counts every completion in the same Redis counter as the
Celery workers, at the same small cost.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from django_tasks import task
from django_tasks.signals import task_finished

from benchmarks import celery as benchmark_celery
from benchmarks import work


@task()
def noop_job(data: Any = None) -> dict[str, bool]:
    """The job: the same function as the order's view, its input ignored."""
    return work.noop()


@receiver(task_finished)
def count_done(task_result: Any, **_: Any) -> None:
    # The same task run as an order (benchmarks.task_drain) is counted by the Celery
    # worker's task_postrun, like every order: once is enough.
    if task_result.backend == "default":
        benchmark_celery.redis_client().incr(benchmark_celery.DONE_KEY)
