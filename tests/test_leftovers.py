"""What a test session leaves in the shared Redis: nothing of its own queues."""

from __future__ import annotations

import uuid

import pytest

from tests import services
from tests.helpers import forget_queues


@pytest.fixture
def keys() -> object:
    if services.BROKER != "redis":
        pytest.skip("only the real Redis outlives the session")
    import redis

    return redis.Redis.from_url(services.broker_url())


def test_a_sessions_queues_and_their_bindings_are_forgotten_and_no_other(keys) -> None:
    queue, other = (f"async-orders-tests-{uuid.uuid4().hex[:8]}" for _ in range(2))
    ours = [queue, f"{queue}-spare1", f"_kombu.binding.{queue}", f"_kombu.binding.{queue}-s2"]
    for key in [*ours, other, f"_kombu.binding.{other}"]:
        keys.rpush(key, "x")
    try:
        forget_queues(keys, queue)

        assert [key for key in ours if keys.exists(key)] == []
        assert keys.exists(other, f"_kombu.binding.{other}") == 2
    finally:
        keys.delete(*ours, other, f"_kombu.binding.{other}")
