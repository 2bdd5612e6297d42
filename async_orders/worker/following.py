"""In another ``TASKS`` backend's worker: the order that follows the task it runs.

That worker is a process of the same Django project, so these receivers of the
``django.tasks`` signals it sends run there. ``task_started`` moves the order to
``running`` and makes it the current order while the task runs, so that
``ProgressItems`` writes progress on it and ``fail_on_error`` names its failure (no
lease: there is no fencing token, see :class:`~async_orders.worker.run.FollowedRun`);
``task_finished`` records the outcome.

Whatever goes wrong here is logged, never raised: an exception would fail the task in
that worker; the next poll of the order follows the result with ``get_result``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from async_orders.followed_tasks import follow_result, follower
from async_orders.task_compat import TaskResult, task_finished, task_started
from async_orders.worker.run import follow_run

logger = logging.getLogger("async_orders")


@receiver(task_started, dispatch_uid="async_orders.worker.following.started")
def _started(sender: Any, task_result: TaskResult[Any], **kwargs: Any) -> None:
    try:
        order = follower(task_result)
        if order is None:
            return
        follow_result(order, task_result)
        order.refresh_from_db(fields=["status", "attempts"])  # a poll may have moved it
        follow_run(order)
    except Exception:
        logger.exception("The order following task %s could not start.", task_result.id)


@receiver(task_finished, dispatch_uid="async_orders.worker.following.finished")
def _finished(sender: Any, task_result: TaskResult[Any], **kwargs: Any) -> None:
    # Sent with the backend's class, but django-tasks-db's worker sends the instance:
    # ``follower`` tells the backends apart by the result's alias instead.
    run = follow_run(None)
    try:
        order = follower(task_result)
        if order is not None:
            follow_result(order, task_result, run.failure_message if run else None)
    except Exception:
        logger.exception("The order following task %s could not finish.", task_result.id)
