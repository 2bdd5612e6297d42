"""A heartbeat for a running order, from a thread beside the view.

It renews the attempt's lease every ``HEARTBEAT_INTERVAL`` seconds, so that views
that report no progress for a long time keep their order; progress writes renew it
too. It survives an unreachable database (the next beat reconnects) and stops at
once when a renewal is refused: the view then stops at its next checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from async_orders.attempt_lease import AttemptLease
from async_orders.conf import conf


@contextmanager
def heartbeat(lease: AttemptLease) -> Iterator[None]:
    """Renew ``lease`` every ``HEARTBEAT_INTERVAL`` seconds while the block runs."""
    stop = threading.Event()
    beater = threading.Thread(
        target=_beat_until, args=(lease, stop), name=f"heartbeat-{lease.order.pk}", daemon=True
    )
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()


def _beat_until(lease: AttemptLease, stop: threading.Event) -> None:
    try:
        while not stop.wait(conf.HEARTBEAT_INTERVAL):
            if lease.renew() is False:
                return
    finally:
        connection.close()  # this thread's own connection
