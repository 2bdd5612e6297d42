"""A dead worker's unacknowledged messages, on the real Redis broker: found, and only
those of orders still waiting put back in their queue, once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import current_app
from kombu import Exchange, Queue

from async_orders.broker import publishing, unacked
from async_orders.models import Order
from async_orders.worker import reconciler
from tests.factories import dead_worker, make_order
from tests.helpers import redis_client

pytestmark = pytest.mark.django_db

#: A consumer that takes one message and dies before acknowledging it: ``os._exit``
#: runs none of kombu's clean-ups, which would put the message back.
TAKE_AND_DIE = (
    "import os, sys\n"
    "from kombu import Connection\n"
    "message = Connection(sys.argv[1]).default_channel.basic_get(sys.argv[2], no_ack=False)\n"
    "os._exit(0 if message else 3)\n"
)


@pytest.fixture
def queue(broker: str) -> Iterator[str]:
    """A queue of this test's own, which no worker of the session consumes."""
    name = f"unacked-{uuid.uuid4().hex}"
    with current_app.connection_for_write() as connection:
        channel = connection.default_channel
        Queue(name, Exchange(name), name)(channel).declare()
        yield name
        channel.queue_delete(name)
        # The messages its dead consumers left unacknowledged, which kombu would
        # otherwise put back into the deleted queue an hour later.
        for tag, raw in channel.client.hgetall(channel.unacked_key).items():
            if json.loads(raw)[2] == name:  # [message, exchange, routing key]
                channel.client.zrem(channel.unacked_index_key, tag)
                channel.client.hdel(channel.unacked_key, tag)


def take_and_die(queue: str) -> None:
    """Run a consumer that takes the next message of ``queue`` and dies holding it."""
    take = [sys.executable, "-c", TAKE_AND_DIE, current_app.conf.broker_url, queue]
    subprocess.run(take, check=True, timeout=60)


def held_message(order: Order, queue: str, delivered_ago: float = 60) -> unacked.Held:
    """Send ``order``'s message to ``queue`` and have a consumer die holding it,
    delivered ``delivered_ago`` seconds ago."""
    order.queue = queue
    publishing.send_order(order)
    take_and_die(queue)
    [held] = [message for message in unacked.held_since(0) or [] if message.order_id == order.pk]
    with current_app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.client.zadd(channel.unacked_index_key, {held.tag: time.time() - delivered_ago})
    return held


def queued(broker: str, queue: str) -> int:
    return redis_client(broker).llen(queue)


def test_only_messages_held_longer_than_asked_are_listed(broker: str, queue: str) -> None:
    order = make_order()
    held = held_message(order, queue, delivered_ago=60)

    assert held in (unacked.held_since(30) or [])
    assert held not in (unacked.held_since(90) or [])
    assert queued(broker, queue) == 0  # taken: no longer in the queue


def held_orders(*orders: Order) -> list[uuid.UUID]:
    """Which of ``orders`` have a message held, in their order."""
    held = {message.order_id for message in unacked.held_since(0) or []}
    return [order.pk for order in orders if order.pk in held]


def test_a_dead_workers_message_of_a_waiting_order_is_put_back_once(
    broker: str, queue: str, watching: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("async_orders.worker.reconciler.broker_lost_messages", lambda: False)
    waiting, running, not_taken = make_order(), make_order(), make_order()
    held_message(waiting, queue)
    held_message(running, queue)
    running.start()
    not_taken.queue = queue
    publishing.send_order(not_taken)
    dead_worker()

    # The order whose message is still queued gets no second one.
    assert reconciler.reconcile().republished == [waiting.pk]
    assert queued(broker, queue) == 2
    # The running order's message stays: its lease decides whether it is recovered.
    assert held_orders(waiting, running) == [running.pk]
    assert reconciler.reconcile().republished == []  # once per death


def test_messages_of_other_tasks_are_not_taken_for_orders(broker: str, queue: str) -> None:
    order = make_order()
    current_app.send_task("not.an.order", args=[str(order.pk)], queue=queue)
    take_and_die(queue)

    assert queued(broker, queue) == 0  # taken, and held
    assert held_orders(order) == []
