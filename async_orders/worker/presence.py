"""Each Celery worker's presence: a lease its main process renews while it lives.

A worker that dies without a clean shutdown (SIGKILL after a container's stop
timeout, a lost machine) takes the messages it had prefetched with it; with the
Redis transport they come back only after the visibility timeout (an hour). Its
presence lease expiring is how the reconciler learns of it within seconds, and it
then publishes the waiting orders again.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.db import connection

from async_orders.conf import conf
from async_orders.outage import UNREACHABLE, reconnect_later
from async_orders.worker import role_leases

logger = logging.getLogger("async_orders")

_stop = threading.Event()


_keeper: list[threading.Thread] = []
#: How long a stopping worker waits for its presence to be given up.
RELEASE_TIMEOUT = 5.0

#: Held while the presence thread uses SQLite, and while this process forks:
#: :func:`_out_of_forks`.
_forking = threading.Lock()
os.register_at_fork(
    before=_forking.acquire, after_in_parent=_forking.release, after_in_child=_forking.release
)


@worker_ready.connect
def start_presence(sender: Any, **kwargs: Any) -> None:
    """Start renewing this worker's presence, under a name new at every start."""
    name = f"{role_leases.WORKER_PREFIX}{sender.hostname}:{uuid.uuid4().hex[:8]}"
    _stop.clear()
    keeper = threading.Thread(
        target=_renew_until_stopped, args=(name,), name="presence", daemon=True
    )
    keeper.start()
    _keeper[:] = [keeper]


@worker_shutdown.connect
def stop_presence(**kwargs: Any) -> None:
    """At the end of a warm shutdown (Celery sends ``worker_shutdown`` once the
    consumer has handed its prefetched messages back to the broker, and never on a
    cold one), give the presence up: a worker that took nothing with it must not be
    taken for dead, or every waiting order is published again (measured in a rolling
    restart under a 3,000-order backlog: over 1,000 duplicate messages a restart)."""
    _stop.set()
    for keeper in _keeper:
        keeper.join(RELEASE_TIMEOUT)


def _renew_until_stopped(name: str) -> None:
    try:
        while True:
            with _out_of_forks():
                _renew(name)
            if _stop.wait(conf.HEARTBEAT_INTERVAL):
                with _out_of_forks():
                    _release(name)
                return
    finally:
        connection.close()


@contextmanager
def _out_of_forks() -> Iterator[None]:
    """On SQLite, keep this thread's connection out of the pool processes billiard
    forks from this process (to replace one past its hard time limit, or one that
    died): no fork while it is in use, and closed after each use.

    A pool process would inherit it open and never close it (its thread is not
    there), and SQLite keeps one record of the locks of all of a process's
    connections to a file: the pool process's own connection then takes no lock of
    its own, and waits out its busy timeout on a write lock the inherited one held at
    the fork, which nothing releases. A retry's claim did, so its hard time limit
    found the order still queued (https://www.sqlite.org/howtocorrupt.html, 2.6). A
    fork meanwhile waits for the renewal, at most the busy timeout.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with _forking:
        try:
            yield
        finally:
            connection.close()


def _renew(name: str) -> None:
    try:
        role_leases.hold(name, name, conf.WORKER_LOST_AFTER)
    except UNREACHABLE:
        reconnect_later()
    except Exception:
        logger.exception("The presence of worker %s could not be renewed.", name)


def _release(name: str) -> None:
    try:
        role_leases.release(name, name)
    except UNREACHABLE:  # it expires instead: its waiting orders are published again
        logger.warning("The presence of worker %s could not be given up.", name)
