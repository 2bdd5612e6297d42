"""Notifications are sent without waiting for Redis to answer (``CLIENT REPLY OFF``),
and with a plain, answered PUBLISH by a server that does not know that command; both
reach a subscriber. The servers are real: the test broker, and a private redis-server
whose CLIENT command is renamed away, as some proxies lack it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from async_orders import notify
from async_orders.embedded import EmbeddedRedis

MESSAGES = 200


@pytest.fixture
def broker_redis(broker: str) -> str:
    url = notify._as_redis_url(broker)
    assert url is not None
    return url


@pytest.fixture
def redis_without_client_command(tmp_path: Path) -> Iterator[str]:
    with EmbeddedRedis(tmp_path, options=("--rename-command", "CLIENT", '""')) as server:
        yield f"unix://{server.socket_path}"


def received_after_publishing(url: str, publisher: notify.Publisher) -> list[bytes]:
    """What a subscriber of one channel receives while ``MESSAGES`` are published."""
    listener = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe("async_orders:test-notify")
    listener.get_message(timeout=1)  # the subscription's confirmation
    for _ in range(MESSAGES):
        publisher.publish("async_orders:test-notify")
    received = []
    while (message := listener.get_message(timeout=1)) is not None:
        received.append(message["data"])
    listener.close()
    return received


def test_notifications_are_sent_without_awaiting_replies(broker_redis: str) -> None:
    publisher = notify.Publisher(broker_redis)

    received = received_after_publishing(broker_redis, publisher)

    assert received == [b"changed"] * MESSAGES
    assert publisher.replies_off is True


def test_a_server_without_client_reply_gets_answered_publishes(
    redis_without_client_command: str,
) -> None:
    publisher = notify.Publisher(redis_without_client_command)

    received = received_after_publishing(redis_without_client_command, publisher)

    assert received == [b"changed"] * MESSAGES
    assert publisher.replies_off is False


def test_a_restarted_server_loses_one_notification_at_most(tmp_path: Path) -> None:
    """A notification is a hint: the one written to a dead connection is lost, and the
    next one reconnects."""
    with EmbeddedRedis(tmp_path) as server:
        url = f"unix://{server.socket_path}"
        publisher = notify.Publisher(url)
        publisher.publish("async_orders:test-notify")
        server.stop()
        server.start()

        publishes = []
        for _ in range(3):
            try:
                publisher.publish("async_orders:test-notify")
                publishes.append("sent")
            except (redis.RedisError, OSError):
                publishes.append("failed")

        assert received_after_publishing(url, publisher) == [b"changed"] * MESSAGES
    assert publishes.count("failed") <= 1


# Forking a process that runs threads is what a prefork worker does, and what this
# test is about; Python 3.12+ warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_publishes_on_a_connection_of_its_own(broker_redis: str) -> None:
    """As a prefork pool process does: the parent's connection (and lock) stay its own."""
    notify.publish("before-the-fork", broker_redis)  # the parent's connection is open
    listener = redis.Redis.from_url(broker_redis).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(notify.channel("from-the-child"), notify.channel("from-the-parent"))
    for _ in range(2):
        listener.get_message(timeout=1)  # the subscriptions' confirmations

    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            notify.publish("from-the-child", broker_redis)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    notify.publish("from-the-parent", broker_redis)

    channels = [listener.get_message(timeout=1)["channel"] for _ in range(2)]
    listener.close()
    assert sorted(channels) == sorted(
        notify.channel(name).encode() for name in ("from-the-child", "from-the-parent")
    )
