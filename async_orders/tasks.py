"""Celery wiring: the order task, publishing an order to it, and the purge task.

``execute_order`` is a shared task, so a standard Django + Celery project picks it
up through ``app.autodiscover_tasks()`` with no extra wiring. Placing an order is
:mod:`async_orders.placing`'s job; the reconciler's periodic task is in
:mod:`async_orders.reconciler`, which publishes through this module.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.worker.request import Request
from django.db import close_old_connections, connections, router
from django.db.models import Q

from async_orders import execution, log_context, redis_publish
from async_orders.conf import conf
from async_orders.models import Order, OrderStatus
from async_orders.outage import UNREACHABLE
from async_orders.registry import options_for
from async_orders.retention import purge_finished

logger = logging.getLogger("async_orders")

TASK_NAME = "async_orders.execute_order"


class OrderRequest(Request):
    """The order task's request, in the worker's main process: when the pool process
    running an order dies (OOM killer, SIGKILL, a crash in C), that process knows at
    once, and so the order is recovered at once instead of when its lease expires."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False):
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        if _lost_its_process(exc_info.exception) and self.worker_pid:
            _recover_order_of(self.args[0], f"{self.hostname}:{self.worker_pid}")


def _lost_its_process(error: BaseException) -> bool:
    error = getattr(error, "exc", error)  # billiard's ExceptionWithTraceback
    return isinstance(error, (WorkerLostError, SystemExit, KeyboardInterrupt))


def _recover_order_of(order_id: str, process: str) -> None:
    """Recover the order ``process`` was running when it died, if it still is. This
    runs in the worker's main process: a database it cannot reach is logged, never
    raised, and the order is then recovered when its lease expires."""
    died_running_it = Q(worker=process)
    try:
        running = Order.objects.filter(died_running_it, pk=order_id, status=OrderStatus.RUNNING)
        order = running.first()
        if order is not None and order.recover_lost(died_running_it) == OrderStatus.QUEUED:
            publish(order)
    except UNREACHABLE:
        logger.warning("Order %s: its process died; the reconciler will recover it.", order_id)


@shared_task(
    name=TASK_NAME,
    bind=True,
    Request=OrderRequest,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=UNREACHABLE,
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=20,
)
def execute_order(task: Task, order_id: str) -> None:
    """Run one order; see :func:`async_orders.execution.execute_order`.

    Acknowledged only once done, and given back to the broker when its worker
    process dies, so a message is never lost with a worker; running it twice is
    harmless because only one worker can claim the order. A database that cannot be
    reached before the claim sends the message again later, with backoff.
    """
    _check_kept_connections()
    worker = f"{task.request.hostname}:{os.getpid()}"
    order = execution.execute_order(order_id, worker=worker)
    if order is not None and order.status == OrderStatus.SCHEDULED:
        publish(order)  # a retry, or a message that came before the order was due


def _check_kept_connections() -> None:
    """As at the start of a web request: a connection kept from the last task (with
    ``CELERY_DB_REUSE_MAX`` and ``CONN_MAX_AGE``) is closed if it failed or is too old.

    The orders' connection is not pinged before use, even with ``CONN_HEALTH_CHECKS``:
    that would be one more round trip per order, and the claim, its first statement,
    is tried again on a new connection when the kept one was dropped.
    """
    close_old_connections()
    # Django's own flag (not in django-stubs): this request's health check is done.
    connections[router.db_for_write(Order)].health_check_done = True  # type: ignore[attr-defined]


@shared_task(name="async_orders.purge", ignore_result=True)
def purge_orders() -> None:
    """Periodic: delete finished orders older than ``RETENTION_SECONDS``."""
    purge_finished()


def publish(order: Order) -> None:
    """Send the order's message, routed by its view's options: on a Redis broker with
    one ``LPUSH`` when that is the message ``apply_async`` would send
    (:mod:`async_orders.redis_publish`), else through ``apply_async``.

    A broker failure is logged and noted on the order (``published_at`` empty); the
    order stays accepted and the reconciler sends it once the broker is back. Run at
    commit, maybe after the placing code returned: the order is named again for logs.
    """
    options = options_for(order.view_name, order.method)
    sending: dict[str, Any] = {
        "queue": options.queue or conf.QUEUE,
        "routing_key": options.routing_key,
        "priority": options.priority,
        "eta": order.run_at,
    }
    args = [str(order.pk)]
    with log_context.about(order):
        try:
            if not redis_publish.push(execute_order.app, TASK_NAME, args, **sending):
                execute_order.apply_async(args=args, **sending)
        except Exception:
            logger.exception("Order %s could not be published; the reconciler retries.", order.pk)
            order.mark_unpublished()


#: The key whose absence tells that the (Redis) broker lost what it held.
BROKER_SENTINEL = "async_orders:broker-sentinel"


def broker_lost_messages() -> bool:
    """Whether the broker lost its messages since this was last asked: a Redis broker
    restarted empty or flushed no longer has the key this sets. Always ``False`` for
    brokers that keep messages on disk (RabbitMQ) or that cannot be reached now."""
    try:
        with execute_order.app.pool.acquire(block=True) as connection:
            if connection.transport.driver_type != "redis":
                return False
            return bool(connection.default_channel.client.set(BROKER_SENTINEL, 1, nx=True))
    except Exception:
        logger.warning("The broker cannot be reached; its messages are checked next time.")
        return False
