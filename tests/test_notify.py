"""Notifications reach a subscriber through redis-py's own ``publish``, from a server
that lacks the ``CLIENT`` command too (some proxies do), and across a restart and a
fork. The servers are real: the test broker, and private redis-servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from async_orders import notify
from async_orders.embedded import EmbeddedRedis

MESSAGES = 200
ORDER = "test-notify"


@pytest.fixture
def broker_redis(broker: str) -> str:
    url = notify._as_redis_url(broker)
    assert url is not None
    return url


@pytest.fixture
def redis_without_client_command(tmp_path: Path) -> Iterator[str]:
    with EmbeddedRedis(tmp_path, options=("--rename-command", "CLIENT", '""')) as server:
        yield f"unix://{server.socket_path}"


def received_after_publishing(url: str) -> list[bytes]:
    """What a subscriber of one order's channel receives while ``MESSAGES`` are published."""
    listener = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(notify.channel(ORDER))
    listener.get_message(timeout=1)  # the subscription's confirmation
    for _ in range(MESSAGES):
        notify.publish(ORDER, url)
    received = []
    while (message := listener.get_message(timeout=1)) is not None:
        received.append(message["data"])
    listener.close()
    return received


def test_notifications_reach_a_subscriber(broker_redis: str) -> None:
    assert received_after_publishing(broker_redis) == [b"changed"] * MESSAGES


def test_a_server_without_the_client_command_gets_notifications(
    redis_without_client_command: str,
) -> None:
    assert received_after_publishing(redis_without_client_command) == [b"changed"] * MESSAGES


def test_a_restarted_server_gets_the_next_notifications(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A notification is a hint: one lost with the server is only logged, and the
    next ones reconnect."""
    with EmbeddedRedis(tmp_path) as server:
        url = f"unix://{server.socket_path}"
        notify.publish(ORDER, url)
        server.stop()
        notify.publish(ORDER, url)  # nobody listens: logged, never raised
        server.start()

        assert received_after_publishing(url) == [b"changed"] * MESSAGES
    assert [r.getMessage() for r in caplog.records if r.name == "async_orders"] == [
        f"Could not notify the waiters of order {ORDER}."
    ]


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
