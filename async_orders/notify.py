"""Telling waiting clients that an order changed: Redis pub/sub, else polling the database.

Every stored change of an order (status or progress) sends a signal; the receivers
here publish on a channel of that order once the change is committed, in whichever
process made it (usually the worker). A long-poll or an event stream subscribes to
the channel and re-reads the order when told. The Redis may be a Sentinel group
(``async_orders.broker.redis_clients``). Without Redis (a RabbitMQ broker, or
``NOTIFY_REDIS_URL = ""``) waiters re-read the order every ``NOTIFY_DB_POLL_INTERVAL``
instead: a little slower to notice, the same answers.

Both a blocking (WSGI, event streams under WSGI) and an asyncio (ASGI) listener are
offered; each is a context manager yielding ``next_change(timeout)``, which returns
when the order may have changed or ``timeout`` seconds passed. Callers always
re-read the order after it returns: a notification is a hint, the row is the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from django.db import transaction
from django.dispatch import receiver
from redis.backoff import NoBackoff
from redis.retry import Retry

from async_orders import signals
from async_orders.broker import redis_clients
from async_orders.broker.celery_config import read_once
from async_orders.conf import conf

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger("async_orders")

CHANNEL_PREFIX = "async_orders:order:"
#: Even with pub/sub, a waiter re-reads its order at least this often, so that a
#: notification lost while its subscription lived (the publisher could not reach
#: Redis) delays it by seconds, not until its deadline. A subscription that breaks is
#: noticed at once and turns into polling. Each re-read opens a database connection
#: for a moment (waiters hold none), so it is rare: 1,000 waiters make ~70 reads/s.
RECHECK_SECONDS = 15.0

NextChange = Callable[[float], None]
AsyncNextChange = Callable[[float], Awaitable[None]]


def channel(order_id: uuid.UUID | str) -> str:
    return f"{CHANNEL_PREFIX}{order_id}"


def redis_url() -> str | None:
    """The Redis to notify through, or ``None`` when waiters must poll the database."""
    configured = conf.NOTIFY_REDIS_URL
    if configured is not None:
        return configured or None
    from celery import current_app

    return _broker_redis_url(current_app._get_current_object())


@read_once
def _broker_redis_url(app: Celery) -> str | None:
    """The app's broker, if it is a Redis, as a Redis URL: its first one of a failover
    list, or all of its sentinels. Read once per app: the worker asks twice per order."""
    url = app.conf.broker_url or ""
    urls = list(url) if isinstance(url, list | tuple) else str(url).split(";")
    if redis_clients.is_sentinel(urls[0]):  # every sentinel: any of them may be down
        return ";".join(urls)
    return _as_redis_url(urls[0])


def _as_redis_url(broker_url: str) -> str | None:
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return broker_url
    if broker_url.startswith("redis+socket://"):  # kombu's spelling of a Unix socket
        return "unix://" + broker_url.removeprefix("redis+socket://")
    return None


@receiver(signals.order_status_changed, dispatch_uid="async_orders.notify.status")
@receiver(signals.order_progress, dispatch_uid="async_orders.notify.progress")
def _order_changed(sender: Any, order: Any, **kwargs: Any) -> None:
    """Publish after commit: a waiter woken earlier would re-read the old row."""
    if url := redis_url():
        transaction.on_commit(partial(publish, order.pk, url))


def publish(order_id: uuid.UUID | str, url: str) -> None:
    """Wake whoever waits on the order through the Redis at ``url``; a Redis failure
    only makes them notice later."""
    try:
        _client(url).publish(channel(order_id), "changed")
    except (redis.RedisError, OSError):
        logger.warning("Could not notify the waiters of order %s.", order_id, exc_info=True)


#: One new connection at once when the kept one was dropped (a restarted Redis), and
#: no more: redis-py's default of ten retries with backoff would hold a worker for
#: seconds per notification while Redis is down, and a notification is only a hint.
RETRY = Retry(NoBackoff(), retries=1)


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    """One client (and so one connection pool) per URL and process: a worker notifies
    twice per order. redis-py's pool notices a fork and opens new connections in the
    child, so a prefork pool process never writes on its parent's socket. A plain
    ``PUBLISH`` whose reply is awaited: writing with replies turned off (``CLIENT
    REPLY OFF``) saved no drain rate measurably (docs/performance.md)."""
    return redis_clients.client(url, retry=RETRY)


@contextmanager
def listening(*order_ids: uuid.UUID | str) -> Iterator[NextChange]:
    """Blocking listener for one order, or any of several (a batch's): one Redis
    connection while it is open, however many orders."""
    url = redis_url()
    if url is None:
        yield _sleep
        return
    with redis_clients.opened(url) as client:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            yield _subscribed(pubsub, order_ids)
        finally:
            pubsub.close()


@asynccontextmanager
async def alistening(*order_ids: uuid.UUID | str) -> AsyncIterator[AsyncNextChange]:
    """The asyncio shell of :func:`listening`: waiting holds no thread."""
    url = redis_url()
    if url is None:
        yield _asleep
        return
    async with redis_clients.aopened(url) as client:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            yield await _asubscribed(pubsub, order_ids)
        finally:
            await pubsub.aclose()


def _subscribed(pubsub: Any, order_ids: tuple[uuid.UUID | str, ...]) -> NextChange:
    try:
        pubsub.subscribe(*map(channel, order_ids))
    except redis.RedisError:
        return _cannot_subscribe(order_ids, _sleep)
    return partial(_next_message, pubsub)


async def _asubscribed(pubsub: Any, order_ids: tuple[uuid.UUID | str, ...]) -> AsyncNextChange:
    try:
        await pubsub.subscribe(*map(channel, order_ids))
    except redis.RedisError:
        return _cannot_subscribe(order_ids, _asleep)
    return partial(_anext_message, pubsub)


def _next_message(pubsub: Any, timeout: float) -> None:
    for left in _message_waits(timeout):
        try:
            if pubsub.get_message(timeout=left) is not None:
                return
        except redis.RedisError:
            return _sleep(_subscription_lost(left))


async def _anext_message(pubsub: Any, timeout: float) -> None:
    for left in _message_waits(timeout):
        try:
            if await pubsub.get_message(timeout=left) is not None:
                return
        except redis.RedisError:
            return await _asleep(_subscription_lost(left))


def _message_waits(timeout: float) -> Iterator[float]:
    """The core both listeners share: how long each read of the subscription may
    wait, until one wait of ``timeout`` (at most :data:`RECHECK_SECONDS`) is over."""
    deadline = time.monotonic() + min(timeout, RECHECK_SECONDS)
    while (left := deadline - time.monotonic()) > 0:
        yield left


Sleep = TypeVar("Sleep", NextChange, AsyncNextChange)


def _cannot_subscribe(order_ids: tuple[uuid.UUID | str, ...], sleep: Sleep) -> Sleep:
    shown = ", ".join(map(str, order_ids))
    logger.warning("Cannot subscribe to order %s; polling it.", shown, exc_info=True)
    return sleep


def _subscription_lost(left: float) -> float:
    logger.warning("Lost the Redis subscription; polling.", exc_info=True)
    return left


def _poll_pause(timeout: float) -> float:
    """How long a waiter without a subscription sleeps before it re-reads the order."""
    return max(0.0, min(timeout, conf.NOTIFY_DB_POLL_INTERVAL))


def _sleep(timeout: float) -> None:
    time.sleep(_poll_pause(timeout))


async def _asleep(timeout: float) -> None:
    await asyncio.sleep(_poll_pause(timeout))
