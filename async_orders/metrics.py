"""Prometheus metrics of orders, recorded from the signals orders already send.

Nothing here is called by the code it measures: receivers of :mod:`async_orders.signals`
(and of ``post_save`` for placed orders and webhook deliveries) count what happened,
in the process where it happened (web or Celery worker). That keeps the metrics
optional: without the ``metrics`` extra (``prometheus_client``) or with
``METRICS_ENABLED`` off, every receiver returns at once.

Under gunicorn or Celery's prefork pool, set ``PROMETHEUS_MULTIPROC_DIR`` before the
processes start: each process then writes its values to files there, and a scrape
adds up the files of all of them (:func:`exposition`). The orders by status are not
counted by any process: they are read from the database at scrape time, one
``GROUP BY`` reused for ``METRICS_STATUS_CACHE_SECONDS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.db.models.signals import post_save
from django.dispatch import receiver

from async_orders import signals
from async_orders.conf import conf
from async_orders.models import Order, OrderStatus, WebhookDelivery

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
        multiprocess,
    )
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # the optional extra "metrics" is not installed
    AVAILABLE = False
else:
    AVAILABLE = True

#: Seconds, from a blink to an hour: orders wait and run for much longer than requests.
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

if AVAILABLE:
    ORDERS_PLACED = Counter(
        "async_orders_orders_placed", "Orders placed (committed), by view.", ["view"]
    )
    ORDERS_FINISHED = Counter(
        "async_orders_orders_finished",
        "Orders finished, by view, outcome (completed, failed, canceled) and, for "
        "failed ones, error code.",
        ["view", "outcome", "error_code"],
    )
    QUEUE_WAIT = Histogram(
        "async_orders_queue_wait_seconds",
        "Seconds from an order being due (created, or its run_at) to a worker starting it.",
        ["view"],
        buckets=BUCKETS,
    )
    RUN_TIME = Histogram(
        "async_orders_run_seconds",
        "Seconds from the start of an order's last attempt to its end.",
        ["view"],
        buckets=BUCKETS,
    )
    RETRIES = Counter("async_orders_retries", "Attempts that raised and were retried.", ["view"])
    WORKER_LOST = Counter(
        "async_orders_worker_lost",
        "Attempts whose worker died or went silent (requeued or failed as worker_lost).",
        ["view"],
    )
    PROGRESS = Counter("async_orders_progress_updates", "Progress writes, by view.", ["view"])
    RECONCILER_REPUBLISHED = Counter(
        "async_orders_reconciler_republished", "Orders whose message the reconciler sent again."
    )
    RECONCILER_RECOVERED = Counter(
        "async_orders_reconciler_recovered",
        "Running orders of lost workers the reconciler ended, by what became of them.",
        ["outcome"],
    )
    WEBHOOK_DELIVERIES = Counter(
        "async_orders_webhook_deliveries",
        "Webhook delivery attempts, by outcome (delivered, failed).",
        ["outcome"],
    )
    WAITERS = Gauge(
        "async_orders_waiters",
        "Requests waiting for an order to change (long-polls, event streams), by kind "
        "(blocking: holding a thread; async: a coroutine).",
        ["kind"],
        multiprocess_mode="livesum",
    )


def recording() -> bool:
    """Whether metrics are recorded now: read on every signal, so that a test (or the
    overhead benchmark) can turn them on and off."""
    return AVAILABLE and conf.METRICS_ENABLED


# --- the receivers --------------------------------------------------------------------


@receiver(post_save, sender=Order, dispatch_uid="async_orders.metrics.placed")
def _placed(sender: Any, instance: Order, created: bool, using: str, **kwargs: Any) -> None:
    """Counted once the order is committed: a placement rolled back (409) never was."""
    if created and recording():
        transaction.on_commit(partial(ORDERS_PLACED.labels(view=instance.view_name).inc), using)


@receiver(signals.order_status_changed, dispatch_uid="async_orders.metrics.status")
def _status_changed(order: Order, previous: str, status: str, **kwargs: Any) -> None:
    if not recording():
        return
    if status == OrderStatus.RUNNING:
        QUEUE_WAIT.labels(view=order.view_name).observe(_queue_wait(order))
    elif previous == OrderStatus.RUNNING and status == OrderStatus.SCHEDULED:
        RETRIES.labels(view=order.view_name).inc()
    elif previous == OrderStatus.RUNNING and status == OrderStatus.QUEUED:
        WORKER_LOST.labels(view=order.view_name).inc()  # only a lost worker requeues


def _queue_wait(order: Order) -> float:
    """Seconds since the order was due: a scheduled order (or a retry) waits from its
    ``run_at``, not from when it was placed."""
    due = max(order.created_at, order.run_at or order.created_at)
    return max((order.started_at - due).total_seconds(), 0.0) if order.started_at else 0.0


@receiver(signals.order_finished, dispatch_uid="async_orders.metrics.finished")
def _finished(order: Order, **kwargs: Any) -> None:
    if not recording():
        return
    code = (order.error or {}).get("code", "") if order.status == OrderStatus.FAILED else ""
    ORDERS_FINISHED.labels(view=order.view_name, outcome=order.status, error_code=code).inc()
    if code == "worker_lost":
        WORKER_LOST.labels(view=order.view_name).inc()
    if order.started_at and order.finished_at:
        seconds = (order.finished_at - order.started_at).total_seconds()
        RUN_TIME.labels(view=order.view_name).observe(max(seconds, 0.0))


@receiver(signals.order_progress, dispatch_uid="async_orders.metrics.progress")
def _progress(order: Order, **kwargs: Any) -> None:
    if recording():
        PROGRESS.labels(view=order.view_name).inc()


@receiver(signals.orders_reconciled, dispatch_uid="async_orders.metrics.reconciled")
def _reconciled(report: Any, **kwargs: Any) -> None:
    if not recording():
        return
    RECONCILER_REPUBLISHED.inc(len(report.republished))
    for outcome in ("requeued", "failed", "canceled"):
        RECONCILER_RECOVERED.labels(outcome=outcome).inc(len(getattr(report, outcome)))


@receiver(post_save, sender=WebhookDelivery, dispatch_uid="async_orders.metrics.webhook")
def _webhook(sender: Any, instance: WebhookDelivery, created: bool, **kwargs: Any) -> None:
    if created and recording():
        outcome = "delivered" if instance.delivered else "failed"
        WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


@receiver(signals.waiters_changed, dispatch_uid="async_orders.metrics.waiters")
def _waiters(blocking: bool, delta: int, **kwargs: Any) -> None:
    if recording():
        WAITERS.labels(kind="blocking" if blocking else "async").inc(delta)


# --- orders by status, at scrape time -------------------------------------------------

_status_counts: tuple[float, dict[str, int]] | None = None


def forget_status_counts() -> None:
    """Drop the cached counts, so that the next scrape reads the database."""
    global _status_counts
    _status_counts = None


def status_counts() -> dict[str, int]:
    """Orders per status: one ``GROUP BY`` over the indexed status column, reused for
    ``METRICS_STATUS_CACHE_SECONDS`` so that scrapers cannot load the database."""
    global _status_counts
    now = time.monotonic()
    if _status_counts is None or now - _status_counts[0] >= conf.METRICS_STATUS_CACHE_SECONDS:
        rows = Order.objects.order_by().values_list("status").annotate(n=Count("pk"))
        counted = dict.fromkeys(OrderStatus.values, 0) | dict(rows)
        _status_counts = (now, counted)
    return _status_counts[1]


class OrdersByStatus:
    """A collector of the ``async_orders_orders`` gauge from :func:`status_counts`."""

    NAME = "async_orders_orders"
    HELP = "Orders in the database, by status (read at scrape time, briefly cached)."

    def describe(self) -> list[Any]:
        """Names only: registering the collector must not query the database."""
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=["status"])]

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["status"])
        for status, count in status_counts().items():
            family.add_metric([status], count)
        yield family


_ORDERS_BY_STATUS = OrdersByStatus()
if AVAILABLE:
    REGISTRY.register(_ORDERS_BY_STATUS)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) a fresh registry reads the
    files every process wrote, as ``prometheus_client`` prescribes; otherwise this
    process's own registry answers.
    """
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_ORDERS_BY_STATUS)
    return generate_latest(registry), CONTENT_TYPE_LATEST
