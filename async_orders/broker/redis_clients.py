"""Redis clients for a URL, a Redis Sentinel URL included.

Waiters are woken through a Redis: the broker's, or ``NOTIFY_REDIS_URL``. Behind
Sentinel (``sentinel://host:26379;sentinel://other:26379/0``, as Celery's broker URL
spells it) that Redis is whichever server the sentinels name master at the moment:
a client made here asks them each time it opens a connection, so after a failover
publishers and new subscriptions reach the promoted replica. A subscription the
failover cut is noticed at once and its waiter polls until it waits again.

The master's name is ``NOTIFY_SENTINEL_MASTER``, else the ``master_name`` of
Celery's ``broker_transport_options`` (which a Sentinel broker needs anyway); the
sentinels' own options (a password) come from its ``sentinel_kwargs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from async_orders.conf import conf

SCHEME = "sentinel://"
SENTINEL_PORT = 26379


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEME)


def client(url: str, **options: Any) -> redis.Redis:
    """A client of the Redis at ``url``, or of the master the sentinels at ``url`` name."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    sentinels, master = _sentinel(url), _master_options(url)
    return sentinels.master_for(master_name(), **master, **options)


@contextmanager
def opened(url: str) -> Iterator[redis.Redis]:
    """:func:`client`, closed when the block ends."""
    redis_client = client(url)
    try:
        yield redis_client
    finally:
        redis_client.close()


@asynccontextmanager
async def aopened(url: str) -> AsyncIterator[aioredis.Redis]:
    """The asyncio twin of :func:`opened`; the sentinels' connections are closed too."""
    if not is_sentinel(url):
        async_client = aioredis.Redis.from_url(url)
        try:
            yield async_client
        finally:
            await async_client.aclose()
        return
    hosts, sentinel_options = _sentinels_of(url)
    sentinels = AsyncSentinel(list(hosts), sentinel_kwargs=sentinel_options)
    async_client = sentinels.master_for(master_name(), **_master_options(url))
    try:
        yield async_client
    finally:
        await async_client.aclose()
        for sentinel_client in sentinels.sentinels:
            await sentinel_client.aclose()


def master_name() -> str:
    """The name the sentinels monitor the master under."""
    name = conf.NOTIFY_SENTINEL_MASTER or _broker_transport_options().get("master_name")
    if not name:
        raise ImproperlyConfigured(
            "A sentinel:// URL needs the master's name: set ASYNC_ORDERS['NOTIFY_SENTINEL_MASTER'] "
            "or CELERY_BROKER_TRANSPORT_OPTIONS['master_name']."
        )
    return str(name)


@lru_cache(maxsize=4)
def _sentinel(url: str) -> Sentinel:
    """One ``Sentinel`` (its connections to the sentinels) per URL and process."""
    hosts, sentinel_options = _sentinels_of(url)
    return Sentinel(list(hosts), sentinel_kwargs=sentinel_options)


def _sentinels_of(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    hosts = []
    for part in url.split(";"):
        address = urlsplit(part.strip())
        hosts.append((address.hostname or "127.0.0.1", address.port or SENTINEL_PORT))
    return hosts, dict(_broker_transport_options().get("sentinel_kwargs") or {})


def _master_options(url: str) -> dict[str, Any]:
    """The database and credentials of the master, from the first of the URLs (as kombu
    reads them)."""
    first = urlsplit(url.split(";")[0].strip())
    database = first.path.strip("/")
    options: dict[str, Any] = {"db": int(database) if database.isdigit() else 0}
    if first.password is not None:
        options["password"] = unquote(first.password)
    if first.username:
        options["username"] = unquote(first.username)
    return options


def _broker_transport_options() -> dict[str, Any]:
    from celery import current_app

    return dict(current_app.conf.broker_transport_options or {})
