"""The order messages a Redis broker handed out and got no acknowledgement for.

kombu's Redis transport keeps each message it delivers in a hash (``unacked``),
indexed by the time of delivery (``unacked_index``), until the consumer acknowledges
it; a consumer that dies leaves its messages there until ``visibility_timeout`` (an
hour by default) has passed. So when a worker dies, the orders it had taken from the
queue, prefetched but not started, would wait an hour. The reconciler reads them
here instead, and puts back in their queue those of orders still waiting: those
messages alone, each at most once, rather than every waiting order's (which would
double every message of a backlog).

Other brokers need none of this: RabbitMQ gives a dead consumer's messages to
another as soon as its connection is gone.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from celery import current_app
from kombu.serialization import prepare_accept_content
from kombu.utils.encoding import bytes_to_str

from async_orders.broker.publishing import ORDER_TASK

logger = logging.getLogger("async_orders")


@dataclass(frozen=True)
class Held:
    """An unacknowledged order message: its delivery tag and its order."""

    tag: bytes
    order_id: uuid.UUID


def held_since(seconds: float) -> list[Held] | None:
    """The order messages delivered at least ``seconds`` ago (on the consumers'
    clocks) and not acknowledged yet. ``None`` when the broker is not Redis or cannot
    be read now: then which messages a consumer took is not known."""
    try:
        with current_app.pool.acquire(block=True) as connection:
            if connection.transport.driver_type != "redis":
                return None
            return list(_read(connection.default_channel, time.time() - seconds))
    except Exception:
        logger.warning("The broker's unacknowledged messages cannot be read now.")
        return None


def restore(tags: Iterable[bytes]) -> None:
    """Put the messages ``tags`` back at the end of their queues, as kombu does when
    their visibility timeout has passed: each in a transaction that also removes it
    from the unacknowledged ones, so that a message restored twice is queued once."""
    with current_app.pool.acquire(block=True) as connection:
        qos = connection.default_channel.qos
        for tag in tags:
            qos.restore_by_tag(tag)


def _read(channel: Any, delivered_before: float) -> Iterator[Held]:
    """The order messages of the index's entries up to ``delivered_before``. The
    client adds the transport's ``global_keyprefix`` to the commands used here."""
    client = channel.client
    index = channel.unacked_index_key
    tags = client.zrange(index, "-inf", delivered_before, byscore=True)
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.hget(channel.unacked_key, tag)
    accept = prepare_accept_content(current_app.conf.accept_content)
    for tag, raw in zip(tags, pipe.execute(), strict=True):
        order_id = raw and _order_of(channel, raw, accept)
        if order_id:
            yield Held(tag, order_id)


def _order_of(channel: Any, raw: bytes, accept: set[str]) -> uuid.UUID | None:
    """The order an unacknowledged message was sent for, or ``None`` for another
    task's message (or one this process cannot decode: in a content type not in
    ``accept``, or otherwise)."""
    try:
        payload, _exchange, _routing_key = json.loads(bytes_to_str(raw))
        message = channel.Message(payload, channel=channel, accept=accept)
        if message.headers.get("task") != ORDER_TASK:  # Celery's message protocol 2
            return None
        args, _kwargs, _embed = message.decode()
        return uuid.UUID(args[0])
    except Exception:
        return None
