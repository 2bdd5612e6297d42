"""Retries, conflict locks, retention and signals, in-process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders import locks, signals
from async_orders.models import Order, OrderStatus, RequesterLock
from async_orders.registry import ViewOptions
from async_orders.retention import purge_finished
from async_orders.worker.execution import _backoff, run_order
from tests.factories import make_order
from tests.helpers import place, wait_until
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db


def run(order: Order) -> Order:
    wait_until(lambda: order.run_at is None or order.run_at <= timezone.now(), timeout=5)
    run_order(order.pk)
    order.refresh_from_db()
    return order


# --- retries -------------------------------------------------------------------------


def test_a_retryable_exception_schedules_another_attempt(api: APIClient) -> None:
    order = run(make_order("flaky", data={"succeed_on": 2}))

    assert (order.status, order.attempts, order.max_attempts) == (OrderStatus.SCHEDULED, 1, 3)
    assert order.run_at is not None
    polled = api.get(f"/async/orders/{order.pk}/")
    assert polled.status_code == 202
    assert polled.json()["attempts"] == 1


def test_the_order_completes_on_a_later_attempt() -> None:
    order = make_order("flaky", data={"succeed_on": 3})

    for _ in range(3):
        order = run(order)

    assert (order.status, order.attempts) == (OrderStatus.COMPLETED, 3)


def test_when_attempts_run_out_the_order_fails() -> None:
    order = make_order("flaky", data={"succeed_on": 99})

    for _ in range(3):
        order = run(order)

    assert (order.status, order.attempts) == (OrderStatus.FAILED, 3)
    assert order.error["code"] == "exception"


def test_an_exception_not_in_retry_on_fails_at_once() -> None:
    order = run(make_order("flaky", data={"succeed_on": 1, "then_raise": True}))

    assert (order.status, order.attempts) == (OrderStatus.FAILED, 1)


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_doubles_with_jitter_and_is_capped(attempt: int, settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_RETRY_BACKOFF": 60}
    ceiling = min(2.0 * 2 ** (attempt - 1), 60)

    delays = [_backoff(ViewOptions(retry_backoff=2.0), attempt) for _ in range(50)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


def test_a_message_that_arrives_before_the_order_is_due_does_not_start_it() -> None:
    order = make_order(countdown=60)

    run_order(order.pk)

    order.refresh_from_db()
    assert (order.status, order.attempts) == (OrderStatus.SCHEDULED, 0)


# --- conflict locks ------------------------------------------------------------------


def test_an_order_clashing_with_an_active_ones_lock_is_409(api: APIClient) -> None:
    first = place(api, "bake-pizza", {"kwargs": {"pk": 1}})

    clash = place(api, "bake-pizza", {"kwargs": {"pk": 1}})
    other = place(api, "bake-pizza", {"kwargs": {"pk": 2}})

    assert first.status_code == other.status_code == 302
    assert clash.status_code == 409
    assert clash.json()["code"] == "order_conflict"
    assert clash.json()["blocking_order"] == first["Location"]
    assert Order.objects.count() == 2


def test_locks_are_released_on_every_terminal_state(api: APIClient) -> None:
    done = Order.objects.get(pk=place(api, "bake-pizza", {"kwargs": {"pk": 1}}).json()["id"])
    run_order(done.pk)
    canceled = Order.objects.get(pk=place(api, "bake-pizza", {"kwargs": {"pk": 1}}).json()["id"])
    canceled.cancel()

    assert place(api, "bake-pizza", {"kwargs": {"pk": 1}}).status_code == 302


def test_the_default_lock_key_is_the_view_name_and_kwargs() -> None:
    order = make_order("gated-once", kwargs={"steps": 3})

    assert order.lock_keys == [locks.lock_key("gated-once", steps=3)]
    assert locks.is_locked(locks.lock_key("gated-once", steps=3))
    assert not locks.is_locked(locks.lock_key("gated-once", steps=4))
    assert locks.blocking_order([locks.lock_key("gated-once", steps=3)]) == order


def test_code_outside_orders_can_hold_the_same_keys(api: APIClient) -> None:
    with locks.hold("pizza:7"):
        refused = place(api, "bake-pizza", {"kwargs": {"pk": 7}})
    accepted = place(api, "bake-pizza", {"kwargs": {"pk": 7}})

    assert refused.status_code == 409
    assert refused.json()["blocking_order"] is None
    assert accepted.status_code == 302


def test_holding_a_key_an_order_holds_raises_locked(api: APIClient) -> None:
    place(api, "bake-pizza", {"kwargs": {"pk": 3}})

    with pytest.raises(locks.Locked) as raised, locks.hold("pizza:3"):
        pass

    assert raised.value.order == Order.objects.get()


# --- retention -----------------------------------------------------------------------


def test_purge_deletes_only_finished_orders_past_retention(settings) -> None:
    settings.ASYNC_ORDERS = {"RETENTION_SECONDS": 3600, "PURGE_BATCH_SIZE": 2}
    old_done = [make_order() for _ in range(5)]
    for order in old_done:
        run_order(order.pk)
    Order.objects.update(finished_at=timezone.now() - timedelta(hours=2))
    recent_done = make_order()
    run_order(recent_done.pk)
    old_active = make_order()
    Order.objects.filter(pk=old_active.pk).update(created_at=timezone.now() - timedelta(days=9))

    assert purge_finished() == 5
    assert set(Order.objects.values_list("pk", flat=True)) == {recent_done.pk, old_active.pk}


def test_purge_deletes_the_lock_rows_of_requesters_idle_past_retention(
    settings, user: User
) -> None:
    settings.ASYNC_ORDERS = {"RETENTION_SECONDS": 3600}
    RequesterLock.objects.create(requester=f"user:{user.pk}")
    RequesterLock.objects.create(
        requester="session:gone", placed_at=timezone.now() - timedelta(hours=2)
    )

    purge_finished()

    assert list(RequesterLock.objects.values_list("requester", flat=True)) == [f"user:{user.pk}"]


def test_the_purge_command_reports_what_it_deleted(settings, capsys) -> None:
    settings.ASYNC_ORDERS = {"RETENTION_SECONDS": 0}
    run_order(make_order().pk)

    call_command("purge_orders")

    assert "Deleted 1 finished order" in capsys.readouterr().out


# --- signals -------------------------------------------------------------------------


def test_signals_tell_every_status_change_progress_and_the_end() -> None:
    seen: list[tuple[str, Any]] = []

    def on_status(order: Order, previous: OrderStatus, status: OrderStatus, **kwargs: Any) -> None:
        seen.append(("status", (previous.value, status.value)))

    def on_progress(order: Order, **kwargs: Any) -> None:
        seen.append(("progress", order.progress_current))

    def on_finished(order: Order, **kwargs: Any) -> None:
        seen.append(("finished", order.status))

    receivers = [
        (signals.order_status_changed, on_status),
        (signals.order_progress, on_progress),
        (signals.order_finished, on_finished),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)
    try:
        run_order(make_order("canceled-midway").pk)
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)

    assert seen == [
        ("status", ("queued", "running")),
        ("progress", 0),
        ("progress", 1),
        ("progress", 2),
        ("status", ("running", "canceled")),
        ("finished", "canceled"),
    ]


def test_counted_view_records_each_execution() -> None:
    order = make_order("counted")
    run_order(order.pk)
    run_order(order.pk)

    assert Execution.objects.filter(order_id=order.pk).count() == 1


def test_a_conflict_does_not_reveal_an_order_the_caller_may_not_see(
    api: APIClient, user: Any
) -> None:
    place(api, "bake-pizza", {"kwargs": {"pk": 9}})  # anonymous, no session: its URL is its key
    api.force_authenticate(user)

    clash = place(api, "bake-pizza", {"kwargs": {"pk": 9}})

    assert clash.status_code == 409
    assert clash.json()["blocking_order"] is None
