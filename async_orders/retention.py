"""Deleting finished orders after ``RETENTION_SECONDS``, in batches."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from async_orders.conf import conf
from async_orders.models import FINISHED, Order, RequesterLock


def purge_finished(now: datetime | None = None) -> int:
    """Delete finished orders older than the retention; return how many.

    Batches of ``PURGE_BATCH_SIZE`` keep each DELETE (and its locks) short on a big
    table. Active orders are never touched: only finished ones match.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=conf.RETENTION_SECONDS)
    # A requester who placed nothing for that long needs no lock row (on databases
    # other than PostgreSQL one is made again on its next order); the row's own time
    # decides, never a held lock.
    RequesterLock.objects.filter(placed_at__lt=cutoff).delete()
    expired = Order.objects.filter(status__in=FINISHED, finished_at__lt=cutoff)
    deleted = 0
    while batch := list(expired.values_list("pk", flat=True)[: conf.PURGE_BATCH_SIZE]):
        Order.objects.filter(pk__in=batch, status__in=FINISHED).delete()
        deleted += len(batch)
    return deleted
