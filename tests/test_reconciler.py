"""The reconciler, in-process: what it publishes again, recovers and leaves alone."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from async_orders.broker import probes
from async_orders.conf import conf
from async_orders.models import Order, OrderLock, OrderStatus, ProcessLease
from async_orders.worker import reconciler, role_leases
from tests.factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(published: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The suite's ``published`` (messages recorded instead of sent), with a broker
    that lost nothing: the integration tests restart the broker for real."""
    monkeypatch.setattr("async_orders.worker.reconciler.broker_lost_messages", lambda: False)
    return published


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
    gap = timedelta(seconds=role_leases.leadership_ttl() + 1)
    ProcessLease.objects.update(renewed_at=timezone.now() - gap)

    assert reconciler.reconcile().requeued == []
    order.refresh_from_db()
    assert order.status == OrderStatus.RUNNING


def test_a_lease_expired_by_less_than_the_margin_is_left_alone(
    published, watching, settings: Any
) -> None:
    # A margin of a minute, not the test settings' half second: a busy machine may
    # pause the test longer than a quarter of a second before the reconciler looks.
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LEASE_MARGIN": 60}
    order = make_order("gated-retrying", kwargs={"steps": 1})
    order.start()
    within_margin = timedelta(seconds=conf.WORKER_LOST_AFTER + conf.LEASE_MARGIN / 2)
    Order.objects.filter(pk=order.pk).update(heartbeat_at=timezone.now() - within_margin)

    assert reconciler.reconcile().requeued == []


def test_one_shot_passes_from_one_host_keep_the_lead_and_its_watch(published) -> None:
    """Cron or beat runs each pass in another process of the same host."""
    reconciler.reconcile()
    lease = ProcessLease.objects.get(name=role_leases.RECONCILER)

    assert reconciler.reconcile().leader is True
    assert ProcessLease.objects.get(name=role_leases.RECONCILER).since == lease.since


def test_only_one_of_two_reconcilers_leads(published, watching) -> None:
    assert reconciler.reconcile("another-host:1").leader is False
    assert reconciler.reconcile().leader is True


class Pauses(threading.Event):
    """A stop event that records each pause asked of it and stops the loop after
    ``passes`` of them."""

    def __init__(self, passes: int) -> None:
        super().__init__()
        self.asked: list[float] = []
        self.passes = passes

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout or 0.0)
        return len(self.asked) >= self.passes


def test_a_spare_tries_twice_an_interval_and_the_leader_once(published, watching) -> None:
    """The leader's lease lasts two intervals: a spare trying every half interval
    leads within two and a half intervals of the leader's last renewal."""
    role_leases.hold(role_leases.RECONCILER, "leader:1", role_leases.leadership_ttl())
    as_spare = Pauses(passes=1)
    reconciler.reconcile_forever(as_spare)
    ProcessLease.objects.all().delete()
    as_leader = Pauses(passes=1)
    reconciler.reconcile_forever(as_leader)

    assert as_spare.asked == [conf.RECONCILE_INTERVAL / 2]
    assert 0 < as_leader.asked[0] <= conf.RECONCILE_INTERVAL


def test_the_broker_sentinel_tells_a_broker_that_lost_its_data(broker: str) -> None:
    from tests.helpers import redis_client

    redis_client(broker).delete(probes.BROKER_SENTINEL)

    assert probes.broker_lost_messages() is True
    assert probes.broker_lost_messages() is False


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
