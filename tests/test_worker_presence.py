"""Workers' presence leases: a worker that stops renewing its own is gone, and so are
the messages it had prefetched."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from async_orders.conf import conf
from async_orders.models import ProcessLease
from async_orders.worker import presence, reconciler
from tests.factories import make_order
from tests.helpers import wait_until

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


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_stops_cleanly_gives_its_presence_up_at_once() -> None:
    presence.start_presence(sender=SimpleNamespace(hostname="celery@stopping"))
    mine = ProcessLease.objects.filter(name__startswith="worker:celery@stopping:")
    wait_until(mine.exists, what="the presence to be held")

    presence.stop_presence()

    # Gone at once, not left to expire: the reconciler never takes it for dead.
    assert not mine.exists()
