"""Orders of tasks that another ``TASKS`` backend runs: the order follows the result.

For a project whose ``TASKS`` backend is not :class:`~async_orders.task_backend.
OrderBackend` (django-tasks-db, an RQ or Celery backend), ``POST /async/tasks/<path>/
order/`` still places an order, with its owner, idempotency key, cap and webhook, and
enqueues the task with the task's own backend (:func:`enqueue_followed`). That
backend's worker runs it; the order keeps the backend's ``TaskResult`` id
(``external_id``) and follows it:

* through the ``django.tasks`` signals the other worker sends (``task_started``,
  ``task_finished``): it is a Django process of the same project, so our receivers
  (:mod:`async_orders.worker.following`) run there and move the order at once;
* through ``get_result`` when the order is polled, where the backend supports it:
  what a worker that sent no signal (or one lost before the id was stored) did.

What such an order lacks of ours (its representation lists it as ``limitations``):
the other worker holds no lease, so there is no fencing token and no recovery of a
lost worker beyond what that backend does; a task can be canceled only before it
starts, and only where we know how to drop it from the backend's queue
(:data:`CANCELERS`); and progress shows only when the task reports it with our
helpers (``ProgressItems``), which the receivers make work in that worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import DatabaseError

from async_orders import task_compat
from async_orders.conf import conf
from async_orders.exceptions import (
    CancelUnsupported,
    InvalidEnvelope,
    TaskBackendUnavailable,
    UnknownView,
)
from async_orders.models import ACTIVE, STARTABLE, FailureCode, Order, failure
from async_orders.paths import RESULT, order_path
from async_orders.placing import Submit
from async_orders.registry import find_task
from async_orders.task_backend import OrderBackend
from async_orders.task_compat import Task, TaskResult, TaskResultDoesNotExist, TaskResultStatus
from async_orders.task_results import NotJSON, json_text
from async_orders.view_response import ViewResponse

logger = logging.getLogger("async_orders")


def is_ours(alias: str) -> bool:
    """Whether the ``TASKS`` backend ``alias`` runs its tasks as our orders."""
    return isinstance(task_compat.task_backends[alias], OrderBackend)


def enqueue_followed(
    task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], run_at: datetime | None
) -> Submit:
    """What :func:`~async_orders.placing.place_order` calls, last in the transaction
    that inserts the order, instead of publishing it: enqueue the task with its own
    backend and keep the result's id on the order. A backend that stores its tasks
    in the same database (django-tasks-db) enqueues in that transaction, so its
    worker sees the task only with its order; a result finished already (a backend
    that runs at once) is followed there and then."""

    def submit(order: Order) -> None:
        try:
            result = (task.using(run_after=run_at) if run_at else task).enqueue(*args, **kwargs)
        except task_compat.InvalidTask as error:  # the backend refused it: a 400
            raise InvalidEnvelope({"body": [str(error)]}) from None
        except DatabaseError:
            raise  # our own database's 503
        except Exception as error:  # the backend's broker or store: the client may retry
            logger.warning("Tasks backend %r failed to enqueue: %r", task.backend, error)
            raise TaskBackendUnavailable(task.backend, conf.RETRY_AFTER) from error
        order.external_id = str(result.id)
        Order.objects.filter(pk=order.pk).update(external_id=order.external_id)
        follow_result(order, result)

    return submit


def resubmission(order: Order) -> Submit:
    """How a re-run of ``order`` is sent: its task enqueued again with the backend that
    ran it, never on our worker. :class:`~async_orders.exceptions.UnknownView` when the
    task is no longer opted in (or its module not imported by this process)."""
    opted_in = find_task(order.view_name)
    if opted_in is None:
        raise UnknownView(order.view_name)
    return enqueue_followed(opted_in.task, order.args, order.kwargs, None)


def follow(order: Order) -> None:
    """Bring an active followed order up to date with its backend's ``get_result``,
    where the backend has it; a result the backend no longer knows changes nothing."""
    if not order.is_followed or order.status not in ACTIVE:
        return
    backend = task_compat.task_backends[order.task_backend]
    if not backend.supports_get_result:
        return
    try:
        result = backend.get_result(order.external_id)
    except TaskResultDoesNotExist:
        return
    except DatabaseError:
        raise  # our own database's 503
    except Exception as error:  # its store cannot answer now: the order shows what it knew
        logger.warning(
            "Tasks backend %r cannot answer for order %s: %r", order.task_backend, order.pk, error
        )
        return
    follow_result(order, result)


def follow_result(order: Order, result: TaskResult[Any], message: str | None = None) -> None:
    """Move the order to where the followed ``result`` is; each move is conditional,
    so a signal and a poll that both see the same change apply it once. ``message``:
    a failure's, when the task named it with ``fail_on_error``."""
    if result.status == TaskResultStatus.RUNNING:
        order.follow_start(worker=result.worker_ids[-1] if result.worker_ids else "")
    elif result.status == TaskResultStatus.SUCCESSFUL:
        _complete(order, result)
    elif result.status == TaskResultStatus.FAILED:
        error = result.errors[-1] if result.errors else None
        order.follow_fail(
            failure(FailureCode.EXCEPTION, message or "The task raised an error."),
            traceback=error.traceback if error else "",
            error_class=error.exception_class_path if error else "",
        )


def _complete(order: Order, result: TaskResult[Any]) -> None:
    try:
        body = json_text(result.return_value, "The return value").encode()
    except NotJSON as error:  # the other backend stored what JSON cannot carry
        order.follow_fail(failure(FailureCode.EXCEPTION, str(error)), "", "")
        return
    response = ViewResponse(200, "application/json", body, location=None)
    order.follow_complete(response, resource_url=order_path(order.pk, RESULT))


def cancel_followed(order: Order) -> bool:
    """Cancel a followed order that has not started: drop its task from the backend's
    queue, then the order. ``False`` when the order had finished; :class:`~async_orders.
    exceptions.CancelUnsupported` when it runs, or the backend cannot drop a task."""
    if order.status not in STARTABLE:
        if order.status in ACTIVE:
            raise CancelUnsupported(order.task_backend, started=True)
        return False
    canceler = _canceler(task_compat.task_backends[order.task_backend])
    if canceler is None:
        raise CancelUnsupported(order.task_backend, started=False)
    if not canceler(order.external_id):
        follow(order)  # it started (or finished) meanwhile
        raise CancelUnsupported(order.task_backend, started=True)
    return order.cancel()


def _cancel_db_task(result_id: str) -> bool:
    """django-tasks-db: delete the task's row while it is still ready. The worker
    claims a row with ``SELECT ... FOR UPDATE SKIP LOCKED`` and marks it running in
    that transaction, so a row it claimed is either locked (the DELETE waits, then
    finds it running) or running already: never both deleted and run."""
    from django_tasks_db.models import DBTaskResult

    ready = DBTaskResult.objects.filter(id=result_id, status=TaskResultStatus.READY)
    return ready.delete()[0] == 1


#: How to drop a task that has not started from a backend's queue, by the backend's
#: class path; a backend of no other class can have its tasks canceled.
CANCELERS: dict[str, Callable[[str], bool]] = {
    "django_tasks_db.backend.DatabaseBackend": _cancel_db_task,
}


def _canceler(backend: object) -> Callable[[str], bool] | None:
    return CANCELERS.get(f"{type(backend).__module__}.{type(backend).__qualname__}")


def follower(task_result: TaskResult[Any]) -> Order | None:
    """The order that follows ``task_result``, a result of another backend; ``None``
    for a result of ours, or one no order follows (a task enqueued in code)."""
    if is_ours(task_result.backend):
        return None
    followers = Order.objects.filter(
        task_backend=task_result.backend, external_id=str(task_result.id)
    )
    return followers.order_by().first()
