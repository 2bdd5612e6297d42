"""An order's message pushed straight onto a Redis broker is the one ``apply_async``
sends, and anything that could make Celery's differ is left to ``apply_async``."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from celery import Celery
from celery.signals import before_task_publish
from kombu import Exchange, Queue

from async_orders import notify
from async_orders.broker import redis_push
from async_orders.broker.publishing import ORDER_TASK as TASK_NAME
from async_orders.tasks import execute_order
from tests import services

ARGS = ["7d0c5b52-8f4e-4a4e-9d55-3f1b0c8f5a11"]


@pytest.fixture
def app() -> Celery:
    """The app the order task is bound to now, as ``publishing.send_order`` asks for it:
    ``execute_order`` is a shared task, bound to whichever app is current."""
    return execute_order.app


@pytest.fixture
def queue(broker: str, app: Celery) -> Iterator[tuple[str, redis.Redis]]:
    """A queue of the test broker of this test's own, and a client to read it."""
    name = f"{services.QUEUE}-publish-{uuid.uuid4().hex[:8]}"
    url = notify._as_redis_url(broker)
    assert url is not None
    client = redis.Redis.from_url(url)
    yield name, client
    app.amqp.queues.pop(name, None)
    redis_push._plain_route.cache_clear()
    client.delete(name, f"_kombu.binding.{name}")


def taken(client: redis.Redis, name: str) -> dict[str, Any]:
    """The oldest message of the queue as a worker reads it, its body decoded and its
    per-message ids checked for their shape and set aside."""
    raw = client.rpop(name)
    assert raw is not None
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    headers, properties = message["headers"], message["properties"]
    task_id = headers.pop("id")
    assert headers.pop("root_id") == properties.pop("correlation_id") == task_id
    uuid.UUID(task_id), uuid.UUID(properties.pop("delivery_tag"))
    return message


@pytest.mark.parametrize("eta", [None, datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)])
def test_a_pushed_message_is_the_one_apply_async_sends(
    app: Celery, queue: tuple[str, redis.Redis], eta: datetime | None
) -> None:
    name, client = queue
    execute_order.apply_async(args=ARGS, queue=name, eta=eta, routing_key=None, priority=None)
    assert redis_push.push(app, TASK_NAME, ARGS, queue=name, eta=eta)

    sent, pushed = taken(client, name), taken(client, name)

    assert pushed == sent
    assert pushed["headers"]["task"] == TASK_NAME
    assert pushed["properties"]["delivery_info"] == {"exchange": "", "routing_key": name}
    assert client.llen(name) == 0


@pytest.mark.parametrize("route", [{"priority": 5}, {"routing_key": "elsewhere"}])
def test_a_priority_or_a_routing_key_is_left_to_apply_async(
    app: Celery, queue: tuple[str, redis.Redis], route: dict[str, Any]
) -> None:
    name, client = queue

    assert not redis_push.push(app, TASK_NAME, ARGS, queue=name, **route)
    assert client.llen(name) == 0


def test_receivers_of_celerys_publish_signals_get_apply_async(
    app: Celery, queue: tuple[str, redis.Redis]
) -> None:
    name, client = queue

    def trace(**kwargs: Any) -> None:
        pass

    before_task_publish.connect(trace)
    try:
        assert not redis_push.push(app, TASK_NAME, ARGS, queue=name)
        assert client.llen(name) == 0
    finally:
        before_task_publish.disconnect(trace)
    assert redis_push.push(app, TASK_NAME, ARGS, queue=name)
    assert client.llen(name) == 1


@pytest.mark.parametrize("option", ["time_limit", "priority", "expires"])
def test_a_task_option_that_changes_the_message_is_left_to_apply_async(
    app: Celery, queue: tuple[str, redis.Redis], monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    """Options a task gets from Celery settings (``task_time_limit``, ...) too."""
    name, client = queue
    monkeypatch.setattr(app.tasks[TASK_NAME], option, 30)

    assert not redis_push.push(app, TASK_NAME, ARGS, queue=name)
    assert client.llen(name) == 0


def test_a_queue_behind_a_topic_exchange_is_left_to_apply_async(
    app: Celery, queue: tuple[str, redis.Redis]
) -> None:
    name, client = queue
    app.amqp.queues.add(Queue(name, Exchange(name, type="topic"), routing_key=f"{name}.#"))

    assert not redis_push.push(app, TASK_NAME, ARGS, queue=name)
    assert client.llen(name) == 0


def test_a_broker_other_than_redis_is_left_to_apply_async() -> None:
    app = Celery("in-memory", broker="memory://", set_as_current=False)

    @app.task(name="in-memory.noop")
    def noop() -> None:
        pass

    assert not redis_push.push(app, "in-memory.noop", [], queue="anywhere")
