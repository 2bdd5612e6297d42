"""The reconciler: the Order rows are the truth, so whatever the broker or a worker
lost is found there and made right.

- A due order whose message was never sent (broker down at POST time) or has not
  been picked up for ``REPUBLISH_AFTER`` seconds (message dropped, Redis restarted)
  is published again. A duplicate message is harmless: only one worker can claim.
- A running order whose worker has been silent for ``WORKER_LOST_AFTER`` seconds is
  queued again if it has attempts left, else failed as "worker lost"; one asked to
  cancel is canceled instead. Its locks are released when it ends.

Run it periodically: the ``async_orders.reconcile`` Celery task (beat) or the
``reconcile_orders`` management command.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from async_orders.conf import conf
from async_orders.models import STARTABLE, Order, Status
from async_orders.tasks import publish

logger = logging.getLogger("async_orders")

#: Orders handled per kind per run, so one run stays short after a long outage.
BATCH = 500


@dataclass
class Reconciliation:
    """What one run did, order ids per outcome."""

    republished: list[uuid.UUID] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    canceled: list[uuid.UUID] = field(default_factory=list)


def reconcile(now: datetime | None = None) -> Reconciliation:
    """One pass over the orders that need help; safe to run from several places."""
    now = now or timezone.now()
    report = Reconciliation()
    _republish_unsent(now, report)
    _recover_lost(now, report)
    if report.republished or report.requeued or report.failed:
        logger.warning(
            "Reconciled orders: %d republished, %d requeued, %d failed as worker lost.",
            len(report.republished),
            len(report.requeued),
            len(report.failed),
        )
    return report


def _republish_unsent(now: datetime, report: Reconciliation) -> None:
    stale = now - timedelta(seconds=conf.REPUBLISH_AFTER)
    waiting_long = Q(published_at__lt=stale) & (Q(run_at__isnull=True) | Q(run_at__lt=stale))
    unsent = Order.objects.filter(Q(published_at__isnull=True) | waiting_long)
    for order in unsent.filter(status__in=STARTABLE)[:BATCH]:
        # Claim the re-send, so that two reconcilers never both publish it.
        claimed = Order.objects.filter(pk=order.pk, published_at=order.published_at)
        if claimed.filter(status__in=STARTABLE).update(published_at=now):
            publish(order)
            report.republished.append(order.pk)


def _recover_lost(now: datetime, report: Reconciliation) -> None:
    silent_since = now - timedelta(seconds=conf.WORKER_LOST_AFTER)
    lost = Order.objects.filter(status=Status.RUNNING, heartbeat_at__lt=silent_since)
    for order in lost[:BATCH]:
        if order.cancel_requested:
            if order.cancel_lost(silent_since):
                report.canceled.append(order.pk)
        elif order.attempts < order.max_attempts:
            if order.requeue_lost(silent_since):
                publish(order)
                report.requeued.append(order.pk)
        elif order.fail_lost(silent_since, _worker_lost(order)):
            report.failed.append(order.pk)


def _worker_lost(order: Order) -> dict[str, object]:
    return {
        "code": "worker_lost",
        "message": (
            f"The worker running this order stopped responding "
            f"(attempt {order.attempts} of {order.max_attempts})."
        ),
        "status_code": None,
        "body": None,
    }
