"""RabbitMQ quorum queues (Celery >= 5.5): the orders' queue declared as a quorum
queue, as docs/deployment.md tells to configure it; orders run, a countdown order
waits in Celery's native delayed delivery and runs when due, and a worker SIGKILLed
mid-order loses nothing. On the machine's RabbitMQ, in a virtual host of the test's
own (tests/rabbitmq.py)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests import services
from tests.faultstack import Stack, Stopwatch, private_redis
from tests.helpers import FAULT_FIGURES, wait_until
from tests.rabbitmq import PrivateVirtualHost, required

pytestmark = [
    pytest.mark.integration,
    pytest.mark.high_availability,
    pytest.mark.django_db(transaction=True),
]

#: What docs/deployment.md tells projects to set for quorum queues.
QUORUM_SETTINGS = {
    "CELERY_TASK_DEFAULT_QUEUE_TYPE": "quorum",
    # Celery's native delayed delivery (countdown/ETA on quorum queues) routes through
    # topic exchanges: a direct one would leave the wait to the worker.
    "CELERY_TASK_DEFAULT_EXCHANGE_TYPE": "topic",
}
COUNTDOWN = 3


@pytest.fixture
def stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stack, PrivateVirtualHost]]:
    from django.db import connection

    virtual_host = required()
    monkeypatch.setenv("ASYNC_ORDERS_TEST_CELERY_SETTINGS", json.dumps(QUORUM_SETTINGS))
    with ExitStack() as cleanup:
        cleanup.callback(virtual_host.delete)
        ledger = cleanup.enter_context(private_redis(tmp_path / "ledger"))
        database_env = {"ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"])}
        built = Stack(tmp_path, database_env, virtual_host, ledger)  # type: ignore[arg-type]
        cleanup.callback(built.stop)
        built.web()
        built.reconciler()
        yield built, virtual_host


def test_orders_run_through_a_quorum_queue_with_countdowns_and_a_killed_worker(
    stack: tuple[Stack, PrivateVirtualHost],
) -> None:
    stack_, virtual_host = stack
    first_worker = stack_.worker("worker-1")
    assert virtual_host.queue_types()[services.QUEUE] == "quorum"
    # The worker set up Celery's native delayed delivery (its 28 topic exchanges).
    assert "celery_delayed_27" in virtual_host.exchanges()

    urls = [stack_.place("ledgered", 2, 0.01) for _ in range(5)]
    wait_until(lambda: all(stack_.order(url)["status"] == "completed" for url in urls))

    # A countdown order: scheduled, run once due (not before).
    delayed = requests.post(
        f"{stack_.base}/async/echo/order/", json={"countdown": COUNTDOWN}, timeout=30
    ).json()
    assert delayed["status"] in ("scheduled", "queued")
    delayed_url = (
        delayed["url"] if delayed["url"].startswith("http") else stack_.base + delayed["url"]
    )
    wait_until(lambda: stack_.order(delayed_url)["status"] == "completed", timeout=30)
    ran = stack_.order(delayed_url)
    waited = _at(ran["started_at"]) - _at(ran["created_at"])
    assert waited.total_seconds() >= COUNTDOWN - 0.5

    # A worker SIGKILLed mid-order: the order completes on another, once.
    killed_url = stack_.place("ledgered-retrying", 40, 0.05)
    wait_until(lambda: stack_.entries()[-1][0] in killed_url, what="the order's first step")
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait()
    killed = Stopwatch()
    stack_.worker("worker-2")
    wait_until(lambda: stack_.order(killed_url)["status"] == "completed", timeout=60)

    figure = stack_.figure(
        "worker SIGKILL on a quorum queue", [*urls, delayed_url, killed_url], 0, killed.seconds()
    )
    FAULT_FIGURES.append(
        f"{figure}; countdown order started {waited.total_seconds():.1f}s after placing"
    )
    assert (figure.lost, figure.overlapping) == (0, 0)
    assert stack_.order(killed_url)["attempts"] == 2


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
