"""Celery wiring: the task definitions, and nothing else.

``execute_order`` runs an order (:mod:`async_orders.worker.execution` does the work),
``reconcile_orders`` is the reconciler's pass for projects that schedule it with beat,
``purge_orders`` the retention. They are shared tasks, so a standard Django + Celery
project picks them up through ``app.autodiscover_tasks()`` with no extra wiring. Their
names are in every message already queued: never change them. Sending an order's
message is :mod:`async_orders.broker.publishing`'s job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.worker.request import Request
from django.db import close_old_connections

from async_orders.broker import publishing
from async_orders.broker.publishing import ORDER_TASK
from async_orders.models import OrderStatus
from async_orders.outage import UNREACHABLE
from async_orders.retention import purge_finished
from async_orders.worker import execution, reconciler

logger = logging.getLogger("async_orders")


class OrderRequest(Request):
    """The order task's request, in the worker's main process: when the pool process
    running an order dies (OOM killer, SIGKILL, a crash in C), that process knows at
    once, and so the order is recovered at once instead of when its lease expires."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False):
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        if _lost_its_process(exc_info.exception) and self.worker_pid:
            reconciler.recover_order_of_dead_process(
                self.args[0], f"{self.hostname}:{self.worker_pid}"
            )

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Past Celery's hard time limit (the order's timeout, plus ``LEASE_MARGIN``:
        :func:`~async_orders.broker.publishing.hard_time_limit`) the pool process is
        replaced. Billiard calls this before it kills the process, so the process is
        killed and seen dead here first; only then is the order recovered (as
        ``timed_out``), and its next attempt cannot overlap the abandoned one."""
        super().on_timeout(soft, timeout)
        if soft or not self.worker_pid:
            return
        abandon_process(self.worker_pid)
        reconciler.recover_order_of_dead_process(self.args[0], f"{self.hostname}:{self.worker_pid}")


def abandon_process(pid: int, wait: float = 5.0) -> None:
    """SIGKILL the pool process ``pid`` and wait until it has died (a zombie, or
    gone): a killed process runs nothing more, whatever it was stuck in."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs, by its state in ``/proc`` (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:  # reaped already, or no /proc to ask
        return False


def _lost_its_process(error: BaseException) -> bool:
    error = getattr(error, "exc", error)  # billiard's ExceptionWithTraceback
    return isinstance(error, (WorkerLostError, SystemExit, KeyboardInterrupt))


@shared_task(
    name=ORDER_TASK,
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
    """Run one order; see :func:`async_orders.worker.execution.run_order`.

    Acknowledged only once done, and given back to the broker when its worker
    process dies, so a message is never lost with a worker; running it twice is
    harmless because only one worker can claim the order. A database that cannot be
    reached before the claim sends the message again later, with backoff.
    """
    # As at the start of a web request: a connection kept from the last task (with
    # CELERY_DB_REUSE_MAX and CONN_MAX_AGE) is closed if it failed or is too old, and
    # with CONN_HEALTH_CHECKS Django pings it before the claim, its first statement
    # (skipping that ping through Django's private flag gained no drain rate
    # measurably: docs/performance.md).
    close_old_connections()
    worker = f"{task.request.hostname}:{os.getpid()}"
    order = execution.run_order(order_id, worker=worker)
    if order is not None and order.status == OrderStatus.SCHEDULED:
        publishing.send_order(order)  # a retry, or a message that came before the order was due


@shared_task(name="async_orders.reconcile", ignore_result=True)
def reconcile_orders() -> None:
    """One reconciler pass as a Celery task, for projects that schedule it with beat;
    prefer ``manage.py reconcile_orders --loop``, which does not wait behind the
    orders' backlog for a worker (see docs/deployment.md)."""
    reconciler.reconcile()


@shared_task(name="async_orders.purge", ignore_result=True)
def purge_orders() -> None:
    """Periodic: delete finished orders older than ``RETENTION_SECONDS``."""
    purge_finished()
