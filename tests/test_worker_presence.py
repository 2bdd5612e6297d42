"""Workers' presence leases: a worker that stops renewing its own is gone, and so are
the messages it had prefetched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from async_orders.conf import conf
from async_orders.models import ProcessLease
from async_orders.worker import reconciler
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def test_a_worker_whose_presence_expired_gets_waiting_orders_published_again(
    published, watching
) -> None:
    waiting = make_order()
    silent = timezone.now() - timedelta(seconds=conf.WORKER_LOST_AFTER + 1)
    ProcessLease.objects.create(
        name="worker:celery@gone:1", holder="w", renewed_at=silent, since=silent
    )

    assert reconciler.reconcile().republished == published == [waiting.pk]
    # That presence alone: a live worker of the session may hold one in this database.
    assert not ProcessLease.objects.filter(name="worker:celery@gone:1").exists()
    assert reconciler.reconcile().republished == []  # once per death
