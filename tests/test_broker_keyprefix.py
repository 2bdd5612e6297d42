"""A hash-tagged ``global_keyprefix`` (the Redis Cluster workaround: every key of the
broker in one hash slot) is honoured end to end: orders are published with
``apply_async`` alone, so kombu prefixes every key our processes write, the
reconciler's lost-messages marker included, and the orders complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from tests.faultstack import Stack, private_redis
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.high_availability,
    pytest.mark.django_db(transaction=True),
]

PREFIX = "{async-orders}:"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from django.db import connection

    options = {"CELERY_BROKER_TRANSPORT_OPTIONS": {"global_keyprefix": PREFIX}}
    monkeypatch.setenv("ASYNC_ORDERS_TEST_CELERY_SETTINGS", json.dumps(options))
    with ExitStack() as cleanup:
        broker, ledger = (cleanup.enter_context(private_redis(tmp_path / n)) for n in ("b", "l"))
        database_env = {"ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"])}
        built = Stack(tmp_path, database_env, broker, ledger)
        cleanup.callback(built.stop)
        built.web()
        built.reconciler()
        built.worker("worker")
        yield built


def test_every_broker_key_carries_a_hash_tagged_global_keyprefix(stack: Stack) -> None:
    urls = [stack.place("ledgered", 1, 0) for _ in range(5)]
    wait_until(lambda: all(stack.order(url)["status"] == "completed" for url in urls))

    keys = redis.Redis(unix_socket_path=str(stack.broker.socket_path)).keys("*")
    assert keys  # the queue's binding, the lost-messages marker, ...
    assert [key for key in keys if not key.decode().startswith(PREFIX)] == []
