"""Fault injection with real processes: a worker SIGKILLed mid-order, the broker
unreachable at POST time, queued messages wiped, racing orders on one lock, and a
burst through two workers. Nothing is lost, nothing runs to completion twice."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from async_orders import locks
from async_orders.broker import probes
from async_orders.models import FINISHED, Order, OrderStatus
from async_orders.worker import reconciler
from tests import celery_app
from tests.helpers import FAULT_FIGURES, place_live, redis_client, wait_until
from tests.testapp.models import Execution

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_of(order_url: str) -> str:
    return requests.get(order_url, timeout=10).json()["status"]


@contextlib.contextmanager
def broker_unreachable() -> Iterator[None]:
    """Point this process's Celery app at a closed port, as if the broker were down."""
    app = celery_app.app
    working = app.conf.broker_url

    def use(url: str) -> None:
        app.conf.broker_url = url
        app._pool = None  # the connection pools were made for the old URL
        app.amqp._producer_pool = None

    use("redis://127.0.0.1:9/0")
    try:
        yield
    finally:
        use(working)


def reconcile_until(outcome: str, timeout: float = 20) -> float:
    """Run the reconciler until it reports ``outcome`` for some order; seconds taken."""
    started = time.monotonic()
    wait_until(lambda: getattr(reconciler.reconcile(), outcome), timeout=timeout, what=outcome)
    return time.monotonic() - started


@pytest.fixture
def base(live_server: Any) -> str:
    return live_server.url


def test_a_killed_worker_with_a_retry_left_completes_the_order_on_another(
    base: str, spare_queue: str, workers: Callable[..., Any], tmp_path: Path
) -> None:
    first = workers(spare_queue, "doomed")
    url = place_live(base, "gated-retrying", kwargs={"steps": 2}, data={"gate": str(tmp_path)}).url
    order_id = url.rstrip("/").rsplit("/", 1)[1]
    # Its view has begun, not only its claim (slow on a busy machine): attempt 1 counted.
    wait_until(lambda: Execution.objects.filter(order_id=order_id).exists(), what="attempt 1")

    killed_at = time.monotonic()
    first.send_signal(signal.SIGKILL)
    first.wait()
    requeue_seconds = reconcile_until("requeued")
    workers(spare_queue, "rescuer")
    for step in range(2):
        (tmp_path / str(step)).touch()
    wait_until(lambda: status_of(url) == "completed", timeout=30, what="the retried order")
    recovered = time.monotonic() - killed_at

    order = Order.objects.get(pk=order_id)
    assert order.attempts == 2
    assert Execution.objects.filter(order_id=order.pk).count() == 2  # one per attempt
    assert not locks.is_locked(*order.lock_keys)
    FAULT_FIGURES.append(
        f"worker SIGKILL, retry left: 1 order, 0 lost, 0 completed twice, "
        f"requeued {requeue_seconds:.1f}s after the kill check began, completed "
        f"{recovered:.1f}s after the kill"
    )


def test_a_killed_worker_without_a_retry_fails_the_order_and_frees_its_locks(
    base: str, spare_queue: str, workers: Callable[..., Any], tmp_path: Path
) -> None:
    doomed = workers(spare_queue, "doomed")
    url = place_live(base, "gated-once", kwargs={"steps": 2}, data={"gate": str(tmp_path)}).url
    wait_until(lambda: status_of(url) == "running", what="the order to start")

    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    seconds = reconcile_until("failed")

    body = requests.get(url, timeout=10).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "worker_lost"
    assert not locks.is_locked(locks.lock_key("gated-once", steps=2))
    assert place_live(base, "gated-once", kwargs={"steps": 2}).history[0].status_code == 302
    FAULT_FIGURES.append(f"worker SIGKILL, no retry: failed as worker_lost in {seconds:.1f}s")


@pytest.mark.usefixtures("celery_worker")
def test_an_order_placed_while_the_broker_is_down_runs_once_it_is_back(
    base: str, settings: Any
) -> None:
    # The reconciler's publish below is the breaker's trial, not skipped as still open.
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "PUBLISH_BREAKER_SECONDS": 0}
    with broker_unreachable():
        placed = requests.post(f"{base}/async/counted/order/", json={}, allow_redirects=False)
    order = Order.objects.get(pk=placed.json()["id"])
    assert placed.status_code == 302
    assert order.published_at is None

    started = time.monotonic()
    assert reconciler.reconcile().republished == [order.pk]
    wait_until(lambda: status_of(placed.headers["Location"]) == "completed", timeout=30)

    assert Execution.objects.filter(order_id=order.pk).count() == 1
    FAULT_FIGURES.append(
        f"broker down at POST: 1 order, 0 lost, completed {time.monotonic() - started:.1f}s "
        "after the reconciler ran"
    )


def test_orders_whose_messages_were_wiped_still_complete(
    base: str, spare_queue: str, workers: Callable[..., Any], broker: str, settings
) -> None:
    # The broker's sentinel set (as by any earlier pass): the reconciler is to find
    # these orders by their age alone, not republish every order as after a restart.
    probes.broker_lost_messages()
    urls = [place_live(base, "counted").url for _ in range(10)]
    wiped = redis_client(broker).delete(*redis_client(broker).keys(f"{spare_queue}*"))
    assert wiped >= 1
    workers(spare_queue, "after-wipe")

    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "REPUBLISH_AFTER": 0}
    started = time.monotonic()
    assert len(reconciler.reconcile().republished) == 10
    wait_until(lambda: all(status_of(url) == "completed" for url in urls), timeout=60)

    assert Execution.objects.count() == 10
    assert Execution.objects.values("order_id").distinct().count() == 10
    FAULT_FIGURES.append(
        f"queue wiped: 10 orders, 0 lost, 0 executed twice, all completed "
        f"{time.monotonic() - started:.1f}s after the reconciler ran"
    )


@pytest.mark.usefixtures("celery_worker")
def test_racing_orders_on_one_lock_key_run_exactly_one(base: str, tmp_path: Path) -> None:
    racers = 8
    start = threading.Barrier(racers)
    envelope = {"kwargs": {"steps": 1}, "data": {"gate": str(tmp_path)}}

    def race(_: int) -> int:
        start.wait()
        return requests.post(
            f"{base}/async/gated-once/order/", json=envelope, allow_redirects=False, timeout=30
        ).status_code

    with ThreadPoolExecutor(racers) as pool:
        codes = sorted(pool.map(race, range(racers)))
    (tmp_path / "0").touch()  # the winner may finish only once every racer has had its answer

    assert codes == [302] + [409] * (racers - 1)
    order = Order.objects.get()
    wait_until(lambda: Order.objects.get().status == OrderStatus.COMPLETED, timeout=30)
    assert Execution.objects.filter(order_id=order.pk).count() == 1
    FAULT_FIGURES.append(f"lock race: {racers} concurrent orders on one key, 1 ran, 7 got 409")


def test_a_burst_of_200_orders_through_two_workers_runs_each_exactly_once(
    base: str, spare_queue: str, workers: Callable[..., Any], settings
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "MAX_ACTIVE_ORDERS": None}
    workers(spare_queue, "burst-a")
    workers(spare_queue, "burst-b")
    burst = 200

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    requests.post(
                        f"{base}/async/counted/order/", json={}, allow_redirects=False, timeout=60
                    ).status_code
                ),
                range(burst),
            )
        )
    assert codes == [302] * burst
    wait_until(
        lambda: Order.objects.filter(status__in=FINISHED).count() == burst,
        timeout=120,
        what="every order of the burst to finish",
    )
    seconds = time.monotonic() - started

    assert Order.objects.filter(status=OrderStatus.COMPLETED).count() == burst
    assert Execution.objects.count() == burst
    assert Execution.objects.values("order_id").distinct().count() == burst
    FAULT_FIGURES.append(
        f"burst: {burst} orders through 2 workers, 0 lost, 0 executed twice, "
        f"all finished in {seconds:.1f}s"
    )
