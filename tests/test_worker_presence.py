"""Workers' presence leases: a worker that stops renewing its own is gone, and so are
the messages it had prefetched."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest
from django.db import connection

from async_orders.models import ProcessLease
from async_orders.worker import presence, reconciler
from tests import services
from tests.factories import dead_worker, make_order
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db


def test_a_worker_whose_presence_expired_gets_waiting_orders_published_again(
    published, watching, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a broker whose unacknowledged messages cannot be read (not Redis, or not
    now), nobody knows which messages the worker took: every waiting order's is sent
    again. (On Redis, only those it took: tests/test_unacked.py.)"""
    monkeypatch.setattr("async_orders.broker.unacked.held_since", lambda seconds: None)
    waiting = make_order()
    gone = dead_worker()

    assert reconciler.reconcile().republished == published == [waiting.pk]
    # That presence alone: a live worker of the session may hold one in this database.
    assert not ProcessLease.objects.filter(name=gone).exists()
    assert reconciler.reconcile().republished == []  # once per death


def test_a_death_in_a_pass_that_finds_the_broker_emptied_is_counted_in_that_pass(
    published, watching, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("async_orders.worker.reconciler.broker_lost_messages", lambda: True)
    waiting = make_order()
    gone = dead_worker()

    assert reconciler.reconcile().republished == published == [waiting.pk]
    assert not ProcessLease.objects.filter(name=gone).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_stops_cleanly_gives_its_presence_up_at_once() -> None:
    presence.start_presence(sender=SimpleNamespace(hostname="celery@stopping"))
    mine = ProcessLease.objects.filter(name__startswith="worker:celery@stopping:")
    wait_until(mine.exists, what="the presence to be held")

    presence.stop_presence()

    # Gone at once, not left to expire: the reconciler never takes it for dead.
    assert not mine.exists()


# Forking a process that runs threads is what a prefork worker does, and what this
# test is about; Python 3.12+ warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.skipif(services.DATABASE != "sqlite", reason="SQLite's connections only")
@pytest.mark.django_db(transaction=True)
def test_on_sqlite_a_fork_waits_for_the_presence_and_inherits_no_connection_of_it() -> None:
    """A pool process forked while the presence renews would inherit its connection,
    and with it SQLite's record of the locks it held (the write lock, mid-renewal)."""
    inside, leave = threading.Event(), threading.Event()
    after: list[object] = []

    def renew() -> None:
        with presence._out_of_forks():
            ProcessLease.objects.exists()  # the thread's connection is open
            inside.set()
            leave.wait(5)
        after.append(connection.connection)

    renewing = threading.Thread(target=renew)
    renewing.start()
    assert inside.wait(5)
    threading.Timer(0.3, leave.set).start()
    started = time.monotonic()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        os._exit(0)
    waited = time.monotonic() - started
    os.waitpid(child, 0)
    renewing.join(5)

    assert waited >= 0.25  # the fork came only once the renewal was done
    assert after == [None]  # and the connection closed
