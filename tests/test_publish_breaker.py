"""A publish is bounded by ``PUBLISH_TIMEOUT`` and a circuit breaker: a broker that
hangs costs one caller a short wait, the next ones none, and every order is still
committed, noted unpublished for the reconciler."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from async_orders import log_context
from async_orders.broker import publishing
from async_orders.broker.breaker import Breaker, PublishTimedOut, call_within
from async_orders.models import Order
from tests.factories import make_order

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_opens_the_breaker_for_its_seconds_then_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = Breaker(clock)
    assert breaker.allows()

    breaker.failed(5)
    clock.now += 4.9
    assert not breaker.allows()
    clock.now += 0.2
    assert breaker.allows()  # the trial
    assert not breaker.allows()  # only one while it runs


def test_a_trial_that_succeeds_closes_the_breaker_and_one_that_fails_reopens_it() -> None:
    clock = Clock()
    breaker = Breaker(clock)
    breaker.failed(5)
    clock.now += 5
    assert breaker.allows()
    breaker.failed(5)
    assert not breaker.allows()

    clock.now += 5
    assert breaker.allows()
    breaker.succeeded()
    assert not breaker.is_open
    assert breaker.allows()
    assert breaker.allows()  # closed: no trial to wait for


def test_a_publish_past_its_deadline_raises_and_closes_the_breaker_when_it_gets_through() -> None:
    breaker = Breaker()
    breaker.failed(60)
    release = threading.Event()

    started = time.monotonic()
    with pytest.raises(PublishTimedOut):
        call_within(0.1, release.wait, breaker)
    assert time.monotonic() - started < 1
    assert breaker.is_open

    release.set()  # the broker answers after all
    deadline = time.monotonic() + 5
    while breaker.is_open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not breaker.is_open


def test_an_error_within_the_deadline_is_raised_to_the_caller() -> None:
    def refuse() -> None:
        raise ConnectionRefusedError("no broker")

    with pytest.raises(ConnectionRefusedError):
        call_within(1, refuse, Breaker())


def test_publishing_threads_are_kept_and_a_stuck_one_holds_up_no_other() -> None:
    ran_on: list[threading.Thread] = []
    for _ in range(20):
        call_within(1, lambda: ran_on.append(threading.current_thread()), Breaker())
    # A thread is started only when none is idle: a caller may come back before the
    # thread that served it counts itself idle again, so a few may be started.
    assert len(set(ran_on)) <= 5

    stuck_on: list[threading.Thread] = []
    stuck = threading.Event()
    with pytest.raises(PublishTimedOut):
        call_within(
            0.1, lambda: (stuck_on.append(threading.current_thread()), stuck.wait()), Breaker()
        )
    call_within(1, lambda: ran_on.append(threading.current_thread()), Breaker())
    stuck.set()

    assert ran_on[-1] is not stuck_on[0]


# Forking a process that runs threads is what a prefork pool and a preloading web
# server do, and what this test is about; Python 3.12+ warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_publishes_on_threads_of_its_own() -> None:
    call_within(1, lambda: None, Breaker())  # the parent has an idle publishing thread
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            call_within(2, lambda: None, Breaker())
        except PublishTimedOut:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def hanging_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """``apply_async`` blocks as on a broker behind a cut link; when each call began."""
    calls: list[float] = []
    cut = threading.Event()

    def hang(*args: object, **kwargs: object) -> None:
        calls.append(time.monotonic())
        cut.wait(30)

    monkeypatch.setattr(publishing.order_task(), "apply_async", hang)
    yield calls
    cut.set()  # the link heals: let the abandoned publishes end


def timed(send: Callable[[], Any]) -> float:
    started = time.monotonic()
    send()
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_consecutive_orders_on_a_hanging_broker_wait_the_timeout_once(
    hanging_broker: list[float], settings: Any
) -> None:
    settings.ASYNC_ORDERS = {
        **settings.ASYNC_ORDERS,
        "PUBLISH_TIMEOUT": 0.3,
        "PUBLISH_BREAKER_SECONDS": 60,
    }
    first = timed(lambda: make_order("echo"))
    for _ in range(5):
        make_order("echo")

    assert 0.3 <= first < 1
    # The breaker is open: no other publish was tried, so none waited (timing them, a
    # niced matrix session on a loaded machine took 0.23 s for an order's commit).
    assert len(hanging_broker) == 1
    assert list(Order.objects.values_list("published_at", flat=True)) == [None] * 6


@pytest.mark.django_db(transaction=True)
def test_after_the_breakers_seconds_an_order_is_published_again(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "PUBLISH_BREAKER_SECONDS": 1}
    sent: list[str] = []
    refusing = True

    def apply_async(args: list[str], **sending: object) -> None:
        if refusing:
            raise ConnectionRefusedError("no broker")
        sent.append(args[0])

    monkeypatch.setattr(publishing.order_task(), "apply_async", apply_async)
    make_order("echo")
    refusing = False
    skipped = make_order("echo")
    time.sleep(1.1)  # the breaker's seconds, not an outcome waited for
    published = make_order("echo")

    assert sent == [str(published.pk)]
    assert Order.objects.get(pk=skipped.pk).published_at is None
    assert Order.objects.get(pk=published.pk).published_at is not None
    assert not publishing.BREAKER.is_open


def test_the_publish_thread_logs_for_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    order = make_order("echo")  # rolled back, never published
    seen: list[tuple[str, str | None]] = []
    fields = logging.LogRecord("async_orders", logging.INFO, "", 0, "", None, None)

    def apply_async(args: list[str], **sending: object) -> None:
        log_context.OrderContextFilter().filter(fields)
        seen.append((threading.current_thread().name, fields.order_id))  # type: ignore[attr-defined]

    monkeypatch.setattr(publishing.order_task(), "apply_async", apply_async)
    publishing.send_order(order)
    assert seen == [("async-orders-publish", str(order.pk))]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("why", ["PUBLISH_TIMEOUT is None", "Celery is eager"])
def test_an_unbounded_publish_runs_on_the_callers_thread(
    why: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    task = publishing.order_task()
    if why == "Celery is eager":  # applying runs the order: here, on this connection
        monkeypatch.setattr(task.app.conf, "task_always_eager", True)
    else:
        settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "PUBLISH_TIMEOUT": None}
    threads: list[threading.Thread] = []
    monkeypatch.setattr(
        task, "apply_async", lambda args, **sending: threads.append(threading.current_thread())
    )
    make_order("echo")
    assert threads == [threading.current_thread()]
