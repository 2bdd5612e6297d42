"""Celery wiring: the order task, and publishing an order to it after commit.

``execute_order`` is a shared task, so a standard Django + Celery project picks it
up through ``app.autodiscover_tasks()`` with no extra wiring.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from functools import partial
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.worker.request import Request
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Count, Q

from async_orders import execution, locks
from async_orders.attempt_lease import UNREACHABLE
from async_orders.conf import conf
from async_orders.envelope import Envelope
from async_orders.exceptions import (
    IdempotencyKeyNeedsClient,
    IdempotencyKeyReused,
    TooManyActiveOrders,
)
from async_orders.models import ACTIVE, ANONYMOUS, Order, OrderStatus, RequesterLock
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
    """Recover the order ``process`` was running when it died, if it still is."""
    died_running_it = Q(worker=process)
    order = Order.objects.filter(died_running_it, pk=order_id, status=OrderStatus.RUNNING).first()
    if order is not None and order.recover_lost(died_running_it) == OrderStatus.QUEUED:
        publish(order)


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
    # As at the start of a web request: a connection kept from the last task (with
    # CELERY_DB_REUSE_MAX and CONN_MAX_AGE) is checked, and closed if broken or old.
    close_old_connections()
    worker = f"{task.request.hostname}:{os.getpid()}"
    order = execution.execute_order(order_id, worker=worker)
    if order is not None and order.status == OrderStatus.SCHEDULED:
        publish(order)  # a retry, or a message that came before the order was due


@shared_task(name="async_orders.reconcile", ignore_result=True)
def reconcile_orders() -> None:
    """One reconciler pass; prefer ``manage.py reconcile_orders --loop``, which does
    not wait behind the orders' backlog for a worker (see docs/deployment.md)."""
    from async_orders.reconciler import reconcile  # it publishes through this module

    reconcile()


@shared_task(name="async_orders.purge", ignore_result=True)
def purge_orders() -> None:
    """Periodic: delete finished orders older than ``RETENTION_SECONDS``."""
    purge_finished()


def place_order(
    envelope: Envelope,
    owner: Any,
    origin: str,
    *,
    requester: str = ANONYMOUS,
    idempotency_key: str = "",
) -> tuple[Order, bool]:
    """Create the order and publish its message once the order's row is committed.

    A worker can therefore never receive an order it cannot read, and a rolled-back
    order is never published. With an ``idempotency_key`` already used by this
    requester, the existing order is returned instead (``created`` is False); the
    database's unique constraint decides between concurrent duplicates. An anonymous
    requester without a session may not send a key: nothing would tell two such
    clients apart. The order's conflict locks are taken in the same transaction
    (:class:`~async_orders.locks.Locked` if one is held).
    """
    if idempotency_key and requester == ANONYMOUS:
        raise IdempotencyKeyNeedsClient()
    try:
        with transaction.atomic():
            if existing := _admit(requester, idempotency_key):
                return _same_request(existing, envelope), False
            order = Order.objects.create(
                **envelope.order_fields(),
                owner=owner if owner is not None and owner.is_authenticated else None,
                requester=requester,
                idempotency_key=idempotency_key,
                origin=origin,
                status=OrderStatus.SCHEDULED if envelope.run_at else OrderStatus.QUEUED,
            )
            if envelope.lock_keys:
                locks.take(order, envelope.lock_keys)  # raises Locked: nothing is kept
            transaction.on_commit(partial(publish, order))
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key inserted first: that one is ours.
        order = Order.objects.get(requester=requester, idempotency_key=idempotency_key)
        return _same_request(order, envelope), False
    return order, True


def _same_request(order: Order, envelope: Envelope) -> Order:
    if order.fingerprint != envelope.fingerprint:
        raise IdempotencyKeyReused()
    return order


def _admit(requester: str, idempotency_key: str) -> Order | None:
    """In the placing transaction: the order ``idempotency_key`` placed already, else
    ``None`` once the requester may place one more (``MAX_ACTIVE_ORDERS``; 429 if not).

    The requester's lock row is taken first, so concurrent placements of one requester
    count one after the other and the cap holds. The count and the key's lookup are one
    query: a capped POST costs the lock, that query and the INSERT. Anonymous requests
    without a session have no identity to count by (one cap for all would let one
    client lock out the rest): limit them with ``THROTTLE_CLASSES``.
    """
    cap = conf.MAX_ACTIVE_ORDERS
    if cap is None or requester == ANONYMOUS:
        return _keyed(requester, idempotency_key) if idempotency_key else None
    RequesterLock.take(requester)
    active, keyed = _count_active_and_keyed(requester, idempotency_key)
    if keyed:
        return _keyed(requester, idempotency_key)
    if active >= cap:
        raise TooManyActiveOrders(cap, retry_after=conf.RETRY_AFTER)
    return None


def _count_active_and_keyed(requester: str, idempotency_key: str) -> tuple[int, int]:
    """The requester's active orders, and its orders with ``idempotency_key`` (0 or 1)."""
    mine = Order.objects.filter(requester=requester).order_by()
    active = Q(status__in=ACTIVE)
    if not idempotency_key:
        return mine.filter(active).count(), 0
    keyed = Q(idempotency_key=idempotency_key)
    counts = mine.filter(active | keyed).aggregate(
        active=Count("pk", filter=active), keyed=Count("pk", filter=keyed)
    )
    return counts["active"], counts["keyed"]


def _keyed(requester: str, idempotency_key: str) -> Order | None:
    mine = Order.objects.filter(requester=requester, idempotency_key=idempotency_key)
    return next(iter(mine.order_by()[:1]), None)


def rerun_order(order: Order) -> Order:
    """Place a new order with ``order``'s envelope, owner and origin (admin "re-run"),
    to run now; it takes the same conflict locks and has the same attempts."""
    envelope = replace(Envelope.of_order(order), run_at=None)
    again, _ = place_order(envelope, order.owner, order.origin, requester=order.requester)
    return again


def publish(order: Order) -> None:
    """Send the order's message, routed by its view's options.

    A broker failure is logged and noted on the order (``published_at`` empty); the
    order stays accepted and the reconciler sends it once the broker is back.
    """
    options = options_for(order.view_name, order.method)
    try:
        execute_order.apply_async(
            args=[str(order.pk)],
            eta=order.run_at,
            queue=options.queue or conf.QUEUE,
            routing_key=options.routing_key,
            priority=options.priority,
        )
    except Exception:
        logger.exception("Order %s could not be published; the reconciler will retry.", order.pk)
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
