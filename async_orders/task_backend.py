"""``OrderBackend``: a ``django.tasks`` backend whose tasks run as orders.

    TASKS = {"default": {"BACKEND": "async_orders.task_backend.OrderBackend",
                         "QUEUES": ["default", "reports"]}}

``some_task.enqueue(*args, **kwargs)`` places an order whose unit of work is the task
function: published through :func:`async_orders.broker.publishing.send_order` once
committed, claimed and run by our worker under the same lease, heartbeat, fencing,
retries, cancel and reconciler as a view's order. ``TaskResult.id`` is the order's
id, so ``/async/orders/<id>/`` serves it at once.

How a task is represented on the order (see :class:`~async_orders.models.OrderKind`):
``kind = "task"`` and ``view_name`` = the task's dotted path, its JSON ``args`` and
``kwargs`` in the order's columns of those names, its queue, Celery priority and
``TASKS`` alias in ``queue``, ``priority`` and ``task_backend``, its return value as
the order's stored JSON result. A column, not a reserved prefix of ``view_name``:
any string is a URL name, so only a column tells the kinds apart for sure, and the
HTTP face (which will order tasks by path) and the lifecycle work of issue 27
(re-run, attempts, labels) read the kind without parsing names. The worker tells the
kinds apart in one place, :func:`async_orders.worker.units.unit_of`.

Mapping:

* ``queue_name``: the Celery queue of the same name; ``"default"`` is ``QUEUE`` (the
  queue of every order), so a plain ``@task`` goes where views' orders go.
* ``priority`` (-100..100): Celery priority 0-9 (:func:`~async_orders.broker.
  publishing.celery_priority`); the default 0 sends none. Redis honours it with its
  priority lists; RabbitMQ only on queues declared with ``x-max-priority``; SQS and
  a worker's prefetched messages ignore it.
* ``run_after``: the order's ``run_at`` (``scheduled`` until then), at most
  ``MAX_SCHEDULE_SECONDS`` ahead, as for views.
* ``OPTIONS``: ``RETRIES`` (default 0) and ``RETRY_BACKOFF`` (seconds, default 1),
  the retries of every task of the backend, as ``@schedulable(retries=...)`` for views
  (a task opted in with ``@schedulable(retries=...)`` has its own).

Who owns it: an order enqueued in code has no owner; its requester is
:data:`~async_orders.ownership.ENQUEUED`, so only holders of ``view_order`` see it
over HTTP (and the admin shows it). One placed over HTTP
(:mod:`async_orders.task_orders`) is the requester's, as a view's order is.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.utils import timezone

from async_orders.broker.publishing import celery_priority
from async_orders.conf import conf
from async_orders.envelope import Envelope
from async_orders.models import Order, OrderKind
from async_orders.ownership import ENQUEUED
from async_orders.placing import place_order
from async_orders.task_compat import (
    DEFAULT_TASK_QUEUE_NAME,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    task_enqueued,
)
from async_orders.task_results import (
    NotJSON,
    json_text,
    task_options,
    task_result,
    task_result_of,
)

__all__ = ["NotJSON", "OrderBackend"]

T = TypeVar("T")
P = ParamSpec("P")


class OrderBackend(BaseTaskBackend):
    """Run ``django.tasks`` tasks as async_orders orders, on our Celery worker."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Task[Any, Any]) -> None:
        super().validate_task(task)
        if task.run_after is not None:
            _run_at(task.run_after)

    def enqueue(
        self,
        task: Task[P, T],
        args: P.args,  # type: ignore[valid-type]
        kwargs: P.kwargs,  # type: ignore[valid-type]
    ) -> TaskResult[T]:
        """Place the task's order; published once the current transaction commits.

        Arguments that are not JSON raise :class:`NotJSON` (a ``TypeError``) and store
        nothing."""
        self.validate_task(task)
        envelope = task_envelope(task, list(args), dict(kwargs), _run_at(task.run_after))
        order, _ = place_order(envelope, owner=None, origin="", requester=ENQUEUED)
        return self.enqueued(order)

    def enqueued(self, order: Order) -> TaskResult[Any]:
        """The ``TaskResult`` of a task order just placed, announced with
        ``task_enqueued`` as the framework's backends do."""
        result: TaskResult[Any] = task_result(order)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The task order ``result_id`` as a ``TaskResult`` (``aget_result`` runs this
        in a thread); ``TaskResultDoesNotExist`` for anything else."""
        return task_result_of(result_id)


def task_envelope(
    task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], run_at: datetime | None
) -> Envelope:
    """The envelope of an order of ``task`` (its backend's alias, queue and priority,
    its retries) with these arguments: :class:`NotJSON` if they are not JSON."""
    return Envelope(
        view_name=task.module_path,
        method="",
        args=_json("The arguments", args),
        kwargs=_json("The keyword arguments", kwargs),
        query={},
        data=None,
        run_at=run_at,
        max_attempts=1 + task_options(task.module_path, task.backend).retries,
        kind=OrderKind.TASK,
        queue="" if task.queue_name == DEFAULT_TASK_QUEUE_NAME else task.queue_name,
        priority=celery_priority(task.priority, TASK_MIN_PRIORITY, TASK_MAX_PRIORITY),
        task_backend=task.backend,
    )


def _json(what: str, value: Any) -> Any:
    """``value`` as the order stores it: JSON only (Django's rule), normalized."""
    return json.loads(json_text(value, what))


def _run_at(run_after: datetime | None) -> datetime | None:
    """The order's ``run_at``: ``None`` for now (or a moment passed already)."""
    if run_after is None or run_after <= timezone.now():
        return None
    if (run_after - timezone.now()).total_seconds() > conf.MAX_SCHEDULE_SECONDS:
        raise InvalidTask(
            f"run_after may be at most MAX_SCHEDULE_SECONDS ({conf.MAX_SCHEDULE_SECONDS:g}) ahead."
        )
    return run_after
