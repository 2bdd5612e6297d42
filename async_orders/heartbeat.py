"""A heartbeat for a running order, from a thread beside the view.

The reconciler takes a running order whose heartbeat stopped for a dead worker's.
A view that reports progress beats with every write too; this thread keeps views
that report nothing for a long time from being taken for dead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

from async_orders.conf import conf
from async_orders.models import Order

logger = logging.getLogger("async_orders")


@contextmanager
def heartbeat(order: Order) -> Iterator[None]:
    """Beat every ``HEARTBEAT_INTERVAL`` seconds while the block runs."""
    stop = threading.Event()
    beater = threading.Thread(
        target=_beat_until, args=(order, stop), name=f"heartbeat-{order.pk}", daemon=True
    )
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()


def _beat_until(order: Order, stop: threading.Event) -> None:
    try:
        while not stop.wait(conf.HEARTBEAT_INTERVAL):
            try:
                order.beat()
            except DatabaseError:  # a blip must not silence the order for good
                logger.warning("Heartbeat of order %s failed; trying again.", order.pk)
                connection.close()
    finally:
        connection.close()  # this thread's own connection
