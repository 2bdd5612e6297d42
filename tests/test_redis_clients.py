"""Notifications through Redis Sentinel: the broker's sentinels are the notifications'
Redis, a waiter is woken through the master they name (blocking and asyncio), and a
missing master name is a clear configuration error. The group is real
(tests/sentinel.py): the tests that start one are integration tests, run by the main
run with the other high-availability ones, not by every session of the matrix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.core.exceptions import ImproperlyConfigured

from async_orders import notify
from async_orders.broker import redis_clients
from tests.sentinel import MASTER_NAME, SentinelGroup

ORDER = "test-sentinel-notify"


@pytest.fixture
def group(tmp_path: Path, settings: Any) -> Iterator[SentinelGroup]:
    started = SentinelGroup(tmp_path).start()
    settings.ASYNC_ORDERS = {
        **settings.ASYNC_ORDERS,
        "NOTIFY_REDIS_URL": started.url,
        "NOTIFY_SENTINEL_MASTER": MASTER_NAME,
    }
    try:
        yield started
    finally:
        started.stop()


def test_a_sentinel_broker_url_is_the_notifications_redis_with_every_sentinel() -> None:
    app = Celery(broker="sentinel://a:26379/0;sentinel://b:26380/0")

    assert notify._broker_redis_url(app) == "sentinel://a:26379/0;sentinel://b:26380/0"


def test_without_a_master_name_a_sentinel_url_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="NOTIFY_SENTINEL_MASTER"):
        redis_clients.master_name()


@pytest.mark.integration
@pytest.mark.high_availability
def test_a_waiter_is_woken_through_the_master_the_sentinels_name(group: SentinelGroup) -> None:
    with notify.listening(ORDER) as next_change:
        assert group.master_client().pubsub_numsub(notify.channel(ORDER))[0][1] == 1
        notify.publish(ORDER, group.url)
        started = time.monotonic()
        next_change(5)

    assert time.monotonic() - started < 1


@pytest.mark.integration
@pytest.mark.high_availability
def test_an_asyncio_waiter_is_woken_through_the_master_too(group: SentinelGroup) -> None:
    async def wait() -> float:
        async with notify.alistening(ORDER) as next_change:
            await asyncio.to_thread(notify.publish, ORDER, group.url)
            started = time.monotonic()
            await next_change(5)
            return time.monotonic() - started

    assert asyncio.run(wait()) < 1
