"""Retries, the reconciler, conflict locks, retention and signals, in-process."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders import locks, process_leases, reconciler, signals, tasks
from async_orders.conf import conf
from async_orders.execution import _backoff, execute_order
from async_orders.models import Order, OrderLock, OrderStatus, ProcessLease, RequesterLock
from async_orders.registry import ViewOptions
from async_orders.retention import purge_finished
from tests.factories import make_order
from tests.helpers import place, wait_until
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db


def run(order: Order) -> Order:
    wait_until(lambda: order.run_at is None or order.run_at <= timezone.now(), timeout=5)
    execute_order(order.pk)
    order.refresh_from_db()
    return order


@pytest.fixture
def published(published: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The suite's ``published`` (messages recorded instead of sent), with a broker
    that lost nothing: the integration tests restart the broker for real."""
    monkeypatch.setattr("async_orders.tasks.broker_lost_messages", lambda: False)
    return published


@pytest.fixture
def watching() -> None:
    """The reconciler has led, with no gap, for an hour: the database was reachable
    long enough for every live worker to have renewed its leases."""
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ProcessLease.objects.create(
        name=process_leases.RECONCILER,
        holder=socket.gethostname(),
        renewed_at=timezone.now(),
        since=an_hour_ago,
    )


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

    execute_order(order.pk)

    order.refresh_from_db()
    assert (order.status, order.attempts) == (OrderStatus.SCHEDULED, 0)


# --- the reconciler ------------------------------------------------------------------


def test_an_order_never_published_is_republished(published: list[uuid.UUID]) -> None:
    order = make_order()
    order.mark_unpublished()

    report = reconciler.reconcile()

    assert report.republished == published == [order.pk]
    order.refresh_from_db()
    assert order.published_at is not None
    assert reconciler.reconcile().republished == []  # sent once


def test_an_order_waiting_too_long_is_republished(published: list[uuid.UUID]) -> None:
    fresh, stale = make_order(), make_order()
    Order.objects.filter(pk=stale.pk).update(published_at=timezone.now() - timedelta(hours=1))

    assert reconciler.reconcile().republished == [stale.pk]
    assert fresh.pk not in published


def test_a_scheduled_order_is_not_republished_before_it_is_overdue(published) -> None:
    order = make_order(countdown=3600)
    Order.objects.filter(pk=order.pk).update(published_at=timezone.now() - timedelta(hours=2))

    assert reconciler.reconcile().republished == []


def silent_running(view: str = "gated-retrying", **envelope: Any) -> Order:
    order = make_order(view, kwargs={"steps": 1}, **envelope)
    order.start()
    Order.objects.filter(pk=order.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    return order


def test_a_silent_worker_with_attempts_left_gets_its_order_requeued(published, watching) -> None:
    order = silent_running("gated-retrying")

    report = reconciler.reconcile()

    order.refresh_from_db()
    assert report.requeued == published == [order.pk]
    assert (order.status, order.attempts) == (OrderStatus.QUEUED, 1)
    assert OrderLock.objects.filter(order=order).exists()  # still its to hold


def test_a_silent_worker_without_attempts_left_fails_its_order_and_frees_locks(
    published, watching
) -> None:
    order = silent_running("gated-once")

    report = reconciler.reconcile()

    order.refresh_from_db()
    assert report.failed == [order.pk]
    assert published == []
    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "worker_lost"
    assert "attempt 1 of 1" in order.error["message"]
    assert not OrderLock.objects.exists()


def test_a_silent_worker_of_an_order_asked_to_cancel_gets_it_canceled(published, watching) -> None:
    order = silent_running("gated-retrying")
    order.cancel()

    report = reconciler.reconcile()

    order.refresh_from_db()
    assert (report.canceled, report.requeued, published) == ([order.pk], [], [])
    assert order.status == OrderStatus.CANCELED
    assert not OrderLock.objects.exists()


def test_a_worker_taken_for_dead_cannot_change_the_next_attempt() -> None:
    stale = silent_running("gated-retrying")
    reconciler_requeue = Order.objects.get(pk=stale.pk)
    assert reconciler_requeue.recover_lost(Q()) == OrderStatus.QUEUED
    fresh = Order.objects.get(pk=stale.pk)
    assert fresh.start()  # a second worker claims attempt 2

    assert stale.complete(response=_ok(), resource_url="/x/") is False
    assert stale.report_progress(1, 1, None) is False
    assert fresh.complete(response=_ok(), resource_url="/x/") is True


def _ok() -> Any:
    from async_orders.view_response import ViewResponse

    return ViewResponse(200, "application/json", b"{}", None)


def test_equal_kwargs_make_one_lock_key_and_long_ones_are_digested() -> None:
    assert locks.lock_key("v", pk=5) == locks.lock_key("v", pk="5")
    long_key = locks.lock_key("v", slug="x" * 500)
    assert len(long_key) < 200
    assert long_key == locks.lock_key("v", slug="x" * 500)


def test_a_reconciler_that_just_started_leading_recovers_nothing_yet(published) -> None:
    """It cannot know whether the database was reachable before: live workers get a
    whole lease and its margin to renew theirs first."""
    order = silent_running("gated-retrying")

    report = reconciler.reconcile()

    assert (report.leader, report.requeued, report.failed) == (True, [], [])
    order.refresh_from_db()
    assert order.status == OrderStatus.RUNNING


def test_a_gap_in_the_reconcilers_passes_restarts_its_watch(published, watching) -> None:
    """A gap may have been a database outage, during which no worker could renew."""
    order = silent_running("gated-retrying")
    gap = timedelta(seconds=3 * conf.RECONCILE_INTERVAL + 1)
    ProcessLease.objects.update(renewed_at=timezone.now() - gap)

    assert reconciler.reconcile().requeued == []
    order.refresh_from_db()
    assert order.status == OrderStatus.RUNNING


def test_a_lease_expired_by_less_than_the_margin_is_left_alone(published, watching) -> None:
    order = make_order("gated-retrying", kwargs={"steps": 1})
    order.start()
    within_margin = timedelta(seconds=conf.WORKER_LOST_AFTER + conf.LEASE_MARGIN / 2)
    Order.objects.filter(pk=order.pk).update(heartbeat_at=timezone.now() - within_margin)

    assert reconciler.reconcile().requeued == []


def test_one_shot_passes_from_one_host_keep_the_lead_and_its_watch(published) -> None:
    """Cron or beat runs each pass in another process of the same host."""
    reconciler.reconcile()
    lease = ProcessLease.objects.get(name=process_leases.RECONCILER)

    assert reconciler.reconcile().leader is True
    assert ProcessLease.objects.get(name=process_leases.RECONCILER).since == lease.since


def test_only_one_of_two_reconcilers_leads(published, watching) -> None:
    assert reconciler.reconcile("another-host:1").leader is False
    assert reconciler.reconcile().leader is True


def test_a_worker_whose_presence_expired_gets_waiting_orders_published_again(
    published, watching
) -> None:
    waiting = make_order()
    silent = timezone.now() - timedelta(seconds=conf.WORKER_LOST_AFTER + 1)
    ProcessLease.objects.create(
        name="worker:celery@gone:1", holder="w", renewed_at=silent, since=silent
    )

    assert reconciler.reconcile().republished == published == [waiting.pk]
    assert not ProcessLease.objects.filter(name__startswith="worker:").exists()
    assert reconciler.reconcile().republished == []  # once per death


def test_the_broker_sentinel_tells_a_broker_that_lost_its_data(broker: str) -> None:
    from tests.helpers import redis_client

    redis_client(broker).delete(tasks.BROKER_SENTINEL)

    assert tasks.broker_lost_messages() is True
    assert tasks.broker_lost_messages() is False


def test_a_running_order_with_a_fresh_heartbeat_is_left_alone(published, watching) -> None:
    order = make_order()
    order.start()

    report = reconciler.reconcile()

    assert (report.requeued, report.failed) == ([], [])
    order.refresh_from_db()
    assert order.status == OrderStatus.RUNNING


def test_the_reconcile_command_runs_the_reconciler(published, capsys) -> None:
    order = make_order()
    order.mark_unpublished()

    call_command("reconcile_orders")

    assert published == [order.pk]
    assert "1 republished" in capsys.readouterr().out


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
    execute_order(done.pk)
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
        execute_order(order.pk)
    Order.objects.update(finished_at=timezone.now() - timedelta(hours=2))
    recent_done = make_order()
    execute_order(recent_done.pk)
    old_active = make_order()
    Order.objects.filter(pk=old_active.pk).update(created_at=timezone.now() - timedelta(days=9))

    assert purge_finished() == 5
    assert set(Order.objects.values_list("pk", flat=True)) == {recent_done.pk, old_active.pk}


def test_purge_deletes_the_lock_rows_of_requesters_idle_past_retention(
    settings, user: User
) -> None:
    settings.ASYNC_ORDERS = {"RETENTION_SECONDS": 3600}
    make_order(owner=user)
    RequesterLock.objects.create(
        requester="session:gone", placed_at=timezone.now() - timedelta(hours=2)
    )

    purge_finished()

    assert list(RequesterLock.objects.values_list("requester", flat=True)) == [f"user:{user.pk}"]


def test_the_purge_command_reports_what_it_deleted(settings, capsys) -> None:
    settings.ASYNC_ORDERS = {"RETENTION_SECONDS": 0}
    execute_order(make_order().pk)

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
        execute_order(make_order("canceled-midway").pk)
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
    execute_order(order.pk)
    execute_order(order.pk)

    assert Execution.objects.filter(order_id=order.pk).count() == 1


def test_a_conflict_does_not_reveal_an_order_the_caller_may_not_see(
    api: APIClient, user: Any
) -> None:
    place(api, "bake-pizza", {"kwargs": {"pk": 9}})  # anonymous, no session: its URL is its key
    api.force_authenticate(user)

    clash = place(api, "bake-pizza", {"kwargs": {"pk": 9}})

    assert clash.status_code == 409
    assert clash.json()["blocking_order"] is None
