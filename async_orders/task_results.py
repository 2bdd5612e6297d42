"""A task order as ``django.tasks`` sees it: its ``TaskResult``, and the framework's
signals sent as the order changes.

Below both the backend (:mod:`async_orders.task_backend`, which enqueues and answers
``get_result``) and the worker (which hands a running task its ``TaskContext``), so
that neither needs the other. Only code serving ``TASKS`` imports it (see
:mod:`async_orders.task_compat`).

What an order keeps today, and so what a ``TaskResult`` can show:

* ``started_at`` is the start of the *latest* attempt (a retry claims it again): the
  first attempt's start is not kept, so ``started_at == last_attempted_at``.
* ``errors`` holds the error of the attempt that failed the order, with its
  traceback; an attempt that failed and was retried keeps none.
* ``worker_ids`` has one entry per attempt, but only the latest worker is known:
  earlier attempts show ``""``.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from typing import Any

from django.dispatch import receiver
from django.utils.module_loading import import_string

from async_orders import signals
from async_orders.attempts import AttemptOutcome, history
from async_orders.envelope import check_text
from async_orders.exceptions import InvalidEnvelope
from async_orders.models import FINISHED, FailureCode, Order, OrderStatus
from async_orders.registry import ViewOptions, find_task
from async_orders.task_compat import (
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_finished,
    task_started,
)
from async_orders.task_compat import normalize_json as normalized

logger = logging.getLogger("async_orders")

#: Each order status as a ``TaskResultStatus``.
STATUSES = {
    OrderStatus.SCHEDULED: TaskResultStatus.READY,
    OrderStatus.QUEUED: TaskResultStatus.READY,
    OrderStatus.RUNNING: TaskResultStatus.RUNNING,
    OrderStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    OrderStatus.FAILED: TaskResultStatus.FAILED,
    OrderStatus.CANCELED: TaskResultStatus.FAILED,
}

#: The exception class a canceled order's ``TaskError`` names: what stops a running one.
CANCELED_CLASS = "async_orders.worker.run.CancelRequested"
#: The exception class of failures no exception of the task caused, by error code.
FAILURE_CLASSES = {
    FailureCode.WORKER_LOST.value: "billiard.exceptions.WorkerLostError",
    FailureCode.TIMED_OUT.value: "async_orders.worker.order_lease.AttemptTimedOut",
    FailureCode.START_DEADLINE_EXCEEDED.value: "builtins.TimeoutError",
}


class NotJSON(TypeError):
    """A task's arguments or return value that JSON cannot carry (Django's rule), or
    that no database stores (NUL, lone surrogates)."""


def json_text(value: Any, what: str) -> str:
    """``value`` as the JSON text an order stores, normalized as ``django.tasks`` does
    (tuples become lists, UTF-8 bytes text); :class:`NotJSON` naming ``what`` if not."""
    try:
        value = normalized(value)
        text = json.dumps(value, allow_nan=False)
        check_text(value)
    except (TypeError, ValueError) as error:
        raise NotJSON(f"{what} must be JSON ({error}).") from None
    except InvalidEnvelope as error:
        raise NotJSON(f"{what} must be storable JSON: {error.detail}") from None
    return text


def task_options(path: str, alias: str) -> ViewOptions:
    """The options an order of the task ``path`` enqueued with the backend ``alias``
    runs with: those it was opted in with by ``@schedulable``, its retries the
    backend's unless given there (see :func:`retry_options`)."""
    opted_in = find_task(path)
    if opted_in is None:
        return retry_options(alias)
    if opted_in.own_retries:
        return opted_in.options
    backend = retry_options(alias)
    return replace(opted_in.options, retries=backend.retries, retry_backoff=backend.retry_backoff)


def retry_options(alias: str) -> ViewOptions:
    """The retries of the tasks enqueued with the ``TASKS`` backend ``alias``: its
    ``OPTIONS`` ``RETRIES`` (further attempts after an exception or a lost worker,
    default 0) and ``RETRY_BACKOFF`` (seconds before the first, doubled after)."""
    options = task_backends[alias].options
    return ViewOptions(
        retries=int(options.get("RETRIES", 0)),
        retry_backoff=float(options.get("RETRY_BACKOFF", 1.0)),
    )


def find_task_order(result_id: str) -> Order:
    """The task order ``result_id``, or ``TaskResultDoesNotExist`` (a view's order, a
    malformed id and an unknown one alike)."""
    try:
        pk = uuid.UUID(str(result_id))
    except ValueError:
        raise TaskResultDoesNotExist(result_id) from None
    order = Order.objects.filter(pk=pk).order_by().first()
    if order is None or not order.is_task:
        raise TaskResultDoesNotExist(result_id)
    return order


def task_result_of(result_id: str) -> TaskResult[Any]:
    """``get_result``: the task order ``result_id`` as a ``TaskResult``;
    ``TaskResultDoesNotExist`` for anything else, and for an order whose task is gone
    (a ``TaskResult`` names its task)."""
    order = find_task_order(result_id)
    try:
        return task_result(order)
    except TaskUnavailable:
        raise TaskResultDoesNotExist(f"{result_id}: its task {order.view_name} is gone") from None


class TaskUnavailable(ImportError):
    """The order's task path no longer names a task (the code changed since)."""


def task_of(order: Order) -> Task[Any, Any]:
    """The task the order's path names now, with the backend it was enqueued with:
    only a ``Task`` may run, never whatever else the module holds under that name."""
    try:
        task = import_string(order.view_name)
    except ImportError as gone:
        raise TaskUnavailable(order.view_name) from gone
    if not isinstance(task, Task):
        raise TaskUnavailable(order.view_name)
    if order.task_backend and order.task_backend != task.backend:
        task = task.using(backend=order.task_backend)
    return task


def task_result(order: Order) -> TaskResult[Any]:
    """The ``TaskResult`` of the task order ``order``, as it is now;
    :class:`TaskUnavailable` when its task is gone."""
    task = task_of(order)
    status = STATUSES[OrderStatus(order.status)]
    result: TaskResult[Any] = TaskResult(
        task=task,
        id=str(order.pk),
        status=status,
        enqueued_at=order.created_at,
        started_at=order.started_at,
        last_attempted_at=order.started_at,
        finished_at=order.finished_at,
        args=order.args,
        kwargs=order.kwargs,
        backend=task.backend,
        **_attempts_of(order),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", return_value(order))
    return result


def return_value(order: Order) -> Any:
    """The task's return value, stored as the order's JSON result; ``None`` when it was
    larger than ``MAX_RESULT_BYTES`` (the order's message says so)."""
    body = order.response_body
    return None if body is None else json.loads(bytes(body))


def _attempts_of(order: Order) -> dict[str, list[Any]]:
    """``errors``, one per failed attempt with its traceback (and one for a cancel),
    and ``worker_ids``, one per attempt: from the attempt history
    (:mod:`async_orders.attempts`), which is read only when there was more than one
    attempt; a single attempt's facts are all on the order itself."""
    if order.attempts <= 1:
        failed = [(order.error, order.error_class, order.traceback)]
        if order.status != OrderStatus.FAILED:
            failed = []
        workers = [order.worker] if order.attempts else []
    else:
        attempts = history(order)
        failed = [
            (row.error, row.error_class, row.traceback)
            for row in attempts
            if row.outcome == AttemptOutcome.FAILED
        ]
        workers = [row.worker for row in attempts]
    errors = [_task_error(*failure) for failure in failed]
    if order.status == OrderStatus.CANCELED:
        errors.append(TaskError(exception_class_path=CANCELED_CLASS, traceback="Canceled."))
    return {"errors": errors, "worker_ids": workers}


def _task_error(error: dict[str, Any] | None, error_class: str, traceback: str) -> TaskError:
    """A failure as ``django.tasks`` tells it: the exception's class (for failures no
    exception of the task caused, the class standing for their code) and traceback."""
    error = error or {}
    path = error_class or FAILURE_CLASSES.get(error.get("code", ""), "builtins.Exception")
    return TaskError(exception_class_path=path, traceback=traceback or error.get("message", ""))


@receiver(signals.order_status_changed, dispatch_uid="async_orders.task_results")
def _send_task_signals(order: Order, status: OrderStatus, **kwargs: Any) -> None:
    """``task_started`` when an attempt claims a task order, ``task_finished`` when it
    finishes (however: completed, failed, canceled, lost), sent by the backend class.
    Not for an order following another backend's task: that backend sent them, with
    its own result."""
    if not order.is_task or order.is_followed or status not in (OrderStatus.RUNNING, *FINISHED):
        return
    try:
        result = task_result(order)
    except TaskUnavailable:
        logger.warning("Order %s: its task %s is gone; no task signal.", order.pk, order.view_name)
        return
    sender = type(task_backends[result.backend])
    signal = task_started if status == OrderStatus.RUNNING else task_finished
    signal.send(sender=sender, task_result=result)
