"""Faults of the worker lifecycle, with real processes: the broker restarted empty,
the database restarted and held down mid-order, a worker frozen past its lease, a
worker stopped with SIGTERM then SIGKILL, a pool process killed mid-order.

Each test prints a row of the fault table at the end of the run. Overlapping
attempts are counted in the ledger, a Redis list outside the database under test,
and must be 0; no order may be lost.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from async_orders.conf import DEFAULTS
from async_orders.embedded import EmbeddedRedis
from tests.faultstack import Figure, PrivatePostgres, Stack, Stopwatch
from tests.helpers import FAULT_FIGURES, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: Long enough for the view to be mid-order when the fault strikes.
STEP_SECONDS = 0.05
#: The leases and the reconciler's pace as shipped: the recovery targets of issue 10
#: hold for these (the other tests shorten them to run in seconds).
DEFAULT_LEASES = {
    name: DEFAULTS[name]
    for name in ("HEARTBEAT_INTERVAL", "WORKER_LOST_AFTER", "LEASE_MARGIN", "RECONCILE_INTERVAL")
}


def record(figure: Figure) -> None:
    """Print the figure at the end of the run; nothing may be lost or overlap."""
    FAULT_FIGURES.append(str(figure))
    assert (figure.lost, figure.overlapping) == (0, 0)


def status_of(stack: Stack, url: str) -> str:
    return stack.order(url)["status"]


def completed(stack: Stack, urls: list[str]) -> bool:
    return all(status_of(stack, url) == "completed" for url in urls)


def first_step_of(stack: Stack, url: str) -> tuple[str, int, int, int]:
    order_id = url.rstrip("/").rsplit("/", 1)[1]
    return wait_until(
        lambda: next((entry for entry in stack.entries() if entry[0] == order_id), None),
        what="the order's first step",
    )


def test_a_broker_restarted_empty_gets_every_waiting_order_published_again(
    stack: Stack,
) -> None:
    stack.settings = DEFAULT_LEASES
    stack.web()
    stack.reconciler()
    urls = [stack.place("ledgered", 1, 0) for _ in range(20)]  # queued: no worker yet

    stack.broker.process.kill()
    stack.broker.process.wait()
    stack.broker.start()  # empty: the 20 messages are gone
    back = Stopwatch()
    stack.worker("after-restart")
    wait_until(
        lambda: not any(status_of(stack, url) == "queued" for url in urls),
        timeout=30,
        what="every order published again and picked up, within 30s with the defaults",
    )
    stuck = back.seconds()
    wait_until(lambda: completed(stack, urls), timeout=60, what="every order to complete")

    executions = [entry[0] for entry in stack.entries()]
    assert sorted(set(executions)) == sorted(executions)  # each ran once
    assert len(executions) == 20
    record(stack.figure("broker restarted empty, default leases", urls, stuck, back.seconds()))


def test_a_worker_frozen_past_its_lease_stops_at_its_next_checkpoint(stack: Stack) -> None:
    stack.web()
    stack.reconciler()
    frozen = stack.worker("frozen")
    url = stack.place("ledgered-retrying", 60, STEP_SECONDS)
    first_step_of(stack, url)

    stack.freeze(frozen)
    stopped = Stopwatch()
    stack.worker("rescuer")
    wait_until(lambda: stack.order(url)["attempts"] == 2, timeout=30, what="attempt 2")
    stuck = stopped.seconds()
    frozen.send_signal(signal.SIGCONT)
    wait_until(lambda: "lost its lease" in stack.log_of("frozen"), what="attempt 1 to stop")
    wait_until(lambda: status_of(stack, url) == "completed", timeout=30)

    assert {attempt for _, attempt, _, _ in stack.entries()} == {1, 2}
    record(stack.figure("worker frozen (SIGSTOP) past its lease", [url], stuck, stopped.seconds()))


@pytest.mark.default_leases
def test_a_worker_stopped_with_sigterm_then_sigkill_has_its_prefetched_orders_run(
    stack: Stack,
) -> None:
    stack.settings = DEFAULT_LEASES
    stack.web()
    stack.reconciler()
    doomed = stack.worker("doomed", "--pool=prefork", "--concurrency=1")
    running = stack.place("ledgered-retrying", 200, STEP_SECONDS)
    first_step_of(stack, running)
    prefetched = [stack.place("ledgered", 1, 0) for _ in range(3)]
    wait_until(lambda: stack.broker_queue_length() == 0, what="the worker to prefetch them")
    assert status_of(stack, running) == "running"

    doomed.send_signal(signal.SIGTERM)
    time.sleep(10)  # a container runtime's grace period
    os.killpg(os.getpgid(doomed.pid), signal.SIGKILL)  # the runtime kills every process
    doomed.wait()
    killed = Stopwatch()
    stack.worker("successor")
    consuming = killed.seconds()
    wait_until(
        lambda: completed(stack, prefetched),
        timeout=30,
        what="the prefetched orders to run within 30s of a worker consuming again",
    )
    stuck = killed.seconds() - consuming
    wait_until(lambda: completed(stack, [running]), timeout=90, what="the running order")

    assert stack.order(running)["attempts"] == 2
    urls = [running, *prefetched]
    fault = "worker SIGTERM then SIGKILL 10s later, default leases"
    record(stack.figure(fault, urls, stuck, killed.seconds()))


@pytest.mark.default_leases
def test_a_killed_worker_has_its_order_retried_within_a_minute(stack: Stack) -> None:
    stack.settings = DEFAULT_LEASES
    stack.web()
    stack.reconciler()
    doomed = stack.worker("doomed")
    stack.worker("successor")
    url = stack.place("ledgered-retrying", 100, STEP_SECONDS)
    _, _, _, pid = first_step_of(stack, url)
    victim = doomed if pid == doomed.pid else stack.processes[-1]

    os.killpg(os.getpgid(victim.pid), signal.SIGKILL)
    killed = Stopwatch()
    wait_until(
        lambda: stack.order(url)["attempts"] == 2,
        timeout=60,
        what="attempt 2 within 60s with the defaults",
    )
    stuck = killed.seconds()
    wait_until(lambda: status_of(stack, url) == "completed", timeout=30)

    fault = "whole worker SIGKILL mid-order, default leases"
    record(stack.figure(fault, [url], stuck, killed.seconds()))


@pytest.mark.default_leases
def test_a_killed_pool_process_has_its_order_retried_at_once(stack: Stack) -> None:
    stack.settings = {"HEARTBEAT_INTERVAL": 5, "WORKER_LOST_AFTER": 20, "LEASE_MARGIN": 10}
    stack.web()
    stack.reconciler()
    stack.worker("prefork", "--pool=prefork", "--concurrency=1")
    url = stack.place("ledgered-retrying", 100, STEP_SECONDS)
    _, _, _, pool_process = first_step_of(stack, url)

    os.kill(pool_process, signal.SIGKILL)
    killed = Stopwatch()
    wait_until(lambda: stack.order(url)["attempts"] == 2, timeout=10, what="attempt 2")
    stuck = killed.seconds()
    wait_until(lambda: status_of(stack, url) == "completed", timeout=30)

    record(stack.figure("pool process SIGKILL, default lease", [url], stuck, killed.seconds()))


@pytest.mark.postgres_server
def test_a_database_restarted_and_held_down_neither_fails_nor_duplicates_the_order(
    tmp_path: Path, private_servers: tuple[EmbeddedRedis, EmbeddedRedis]
) -> None:
    postgres = PrivatePostgres().create()
    database_env = {
        "ASYNC_ORDERS_TEST_DATABASE": "postgres",
        "ASYNC_ORDERS_TEST_DB_NAME": "postgres",
        "PGPORT": str(postgres.port),
    }
    stack = Stack(tmp_path, database_env, *private_servers)
    try:
        _restart_and_hold_down(stack, postgres)
    finally:
        stack.stop()
        postgres.destroy()


def _restart_and_hold_down(stack: Stack, postgres: PrivatePostgres) -> None:
    stack.start("migrate", "manage.py", "migrate", "--noinput").wait(timeout=120)
    stack.web()
    stack.reconciler()
    stack.worker("worker")
    url = stack.place("ledgered", 80, STEP_SECONDS)
    first_step_of(stack, url)

    postgres.stop()
    down = Stopwatch()
    answers = []
    while down.seconds() < 20:
        answers.append(_post(stack).status_code)
        time.sleep(0.5)
    postgres.start()
    back = Stopwatch()
    steps_before = len(stack.entries())
    wait_until(lambda: len(stack.entries()) > steps_before, timeout=30, what="the next step")
    stuck = back.seconds()
    wait_until(lambda: _post(stack).status_code == 302, timeout=30, what="the web to recover")
    web_recovery = back.seconds()
    wait_until(lambda: status_of(stack, url) == "completed", timeout=60)

    assert set(answers) == {503}
    assert stack.order(url)["attempts"] == 1
    fault = (
        f"PostgreSQL down 20s mid-order ({len(answers)} POSTs meanwhile, all 503; "
        f"POSTs answered again {web_recovery:.1f}s after)"
    )
    record(stack.figure(fault, [url], stuck, back.seconds()))


def _post(stack: Stack) -> requests.Response:
    return requests.post(
        f"{stack.base}/async/echo/order/", json={}, allow_redirects=False, timeout=30
    )
