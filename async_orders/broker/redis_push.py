"""Publishing an order's message to a Redis broker with one ``LPUSH``.

Celery's ``apply_async`` spends 1.1-1.25 ms of CPU on each message here (routing,
the publish signals, a producer from kombu's pool, a Redis client kombu builds for
each message), an eighth of an order's POST. The order task's message has one shape,
so when the broker is Redis and nothing would make Celery write it differently, it
is written here as Celery and kombu would write it (Celery's own task message,
kombu's serializer and envelope) and pushed on the client of a pooled broker
connection: 0.5 ms (``python -m benchmarks.profile --time publish``, alternated with
the code before).

Whenever something could make Celery's message differ (another transport, task
routes or annotations, compression, sent events, a priority or routing key, a queue
that is not a plain direct one, receivers of the publish signals, a publish from
inside a task), :func:`push` returns ``False`` and the caller publishes through
``apply_async``. ``tests/test_redis_push.py`` compares the two messages.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import after_task_publish, before_task_publish
from kombu import Queue
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as dump_json

from async_orders.broker.celery_config import read_once

#: The transport whose messages this writes: kombu's Redis (``redis://``, ``rediss://``,
#: sockets, Sentinel), which keeps a queue as a list that workers ``BRPOP``.
REDIS_DRIVER = "redis"
#: Options of a task that change its message; :func:`push` writes none of them.
TASK_OPTIONS_PUSH_LACKS = ("compression", "expires", "priority", "time_limit", "soft_time_limit")
#: kombu's names of the delivery modes.
DELIVERY_MODES = {"transient": 1, "persistent": 2}


def push(
    app: Celery,
    task_name: str,
    args: list[Any],
    *,
    queue: str | None,
    eta: datetime | None = None,
    routing_key: str | None = None,
    priority: int | None = None,
) -> bool:
    """Push task ``task_name``'s message with ``args`` onto ``queue`` (the app's default
    queue when ``None``), as ``apply_async`` would; ``False`` when it would not write
    that message the same way, and nothing was sent."""
    if routing_key is not None or priority is not None or _someone_hooks_publishing(app):
        return False
    route = _plain_route(app, task_name, queue)
    if route is None:
        return False
    headers, properties, body, _ = app.amqp.create_task_message(
        str(uuid.uuid4()),
        task_name,
        args,
        {},
        eta=eta,
        reply_to=app.thread_oid,
        ignore_result=route.ignore_result,
    )
    content_type, encoding, data = serialize(body, serializer=route.serializer)
    encoded = data if isinstance(data, bytes) else data.encode(encoding)
    properties.update(
        delivery_mode=route.delivery_mode,
        delivery_info={"exchange": "", "routing_key": route.queue},
        priority=0,
        body_encoding="base64",
        delivery_tag=str(uuid.uuid4()),
    )
    message = {
        "body": base64.b64encode(encoded).decode(),
        "content-encoding": encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": properties,
    }
    with app.pool.acquire(block=True) as connection:
        connection.default_channel.client.lpush(route.queue, dump_json(message))
    return True


def _someone_hooks_publishing(app: Celery) -> bool:
    """Receivers of Celery's publish signals expect ``apply_async`` (tracing, for one),
    and so does a task publishing another (its ids name the parent)."""
    hooked = before_task_publish.receivers or after_task_publish.receivers
    return bool(hooked) or app.current_worker_task is not None


@dataclass(frozen=True)
class PlainRoute:
    """How ``apply_async`` writes the task's message to a queue it pushes plainly to."""

    queue: str
    serializer: str
    delivery_mode: int
    ignore_result: bool


@read_once
def _plain_route(app: Celery, task_name: str, queue: str | None) -> PlainRoute | None:
    """How :func:`push` writes this task's message to ``queue`` (the app's default
    queue when ``None``); ``None`` when ``apply_async`` would write it otherwise.
    Worked out once per queue."""
    conf = app.conf
    queue_name = queue or conf.task_default_queue
    task = app.tasks[task_name]
    alike = not (
        conf.task_routes
        or conf.task_annotations
        or conf.task_compression
        or conf.task_send_sent_event
        or conf.task_inherit_parent_priority
        or any(getattr(task, option, None) for option in TASK_OPTIONS_PUSH_LACKS)
    )
    plain = _plain_redis_queue(app, queue_name)
    if not alike or plain is None:
        return None
    mode = plain.exchange.delivery_mode or conf.task_default_delivery_mode
    return PlainRoute(
        queue=queue_name,
        serializer=task.serializer or conf.task_serializer,
        delivery_mode=DELIVERY_MODES.get(mode, mode),
        ignore_result=task.ignore_result,
    )


def _plain_redis_queue(app: Celery, queue_name: str) -> Queue | None:
    """The queue, if it is one of a Redis broker that Celery publishes to by its name
    alone: a direct exchange (Celery then uses the default exchange), no per-queue
    arguments (expiry, TTL, priorities)."""
    try:
        queue = app.amqp.queues[queue_name]
    except KeyError:  # an unknown queue when task_create_missing_queues is off
        return None
    if queue.exchange.type != "direct" or queue.queue_arguments or queue.expires is not None:
        return None
    if app.connection_for_write().transport.driver_type != REDIS_DRIVER:
        return None
    return queue
