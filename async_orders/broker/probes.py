"""Asking the broker about itself: does it answer, and did it lose what it held?"""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger("async_orders")

#: Seconds a broker may take to accept a connection before it counts as down.
BROKER_TIMEOUT = 2.0
#: The key whose absence tells that the (Redis) broker lost what it held.
BROKER_SENTINEL = "async_orders:broker-sentinel"


def broker_reachable() -> bool:
    """A new connection to the broker opens (not a pooled one, which may be stale)."""
    try:
        with current_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
    except Exception as error:  # kombu's and the transport's errors differ: any is "down"
        logger.warning("Health: the broker cannot be reached: %s", error)
        return False
    return True


def broker_lost_messages() -> bool:
    """Whether the broker lost its messages since this was last asked: a Redis broker
    restarted empty or flushed no longer has the key this sets. Always ``False`` for
    brokers that keep messages on disk (RabbitMQ) or that cannot be reached now."""
    try:
        with current_app.pool.acquire(block=True) as connection:
            if connection.transport.driver_type != "redis":
                return False
            return bool(connection.default_channel.client.set(BROKER_SENTINEL, 1, nx=True))
    except Exception:
        logger.warning("The broker cannot be reached; its messages are checked next time.")
        return False
