"""The heartbeat: one keeper thread per process renews every running order's lease
every ``HEARTBEAT_INTERVAL`` (0.2 s in the tests), on a connection of its own that it
closes after each round, and stops renewing a lease the database refused."""

from __future__ import annotations

import threading
import time

import pytest

from async_orders.models import Order
from async_orders.worker.heartbeat import heartbeat
from async_orders.worker.order_lease import OrderLease
from async_orders.worker.run import running
from tests.factories import make_order

# The keeper writes from its own thread: the rows must be committed for it to see them.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("spare_queue")]

INTERVAL = 0.2  # tests/settings.py


def claimed() -> Order:
    order = make_order()
    assert order.start()
    return order


def lease_stamp(order: Order):
    return Order.objects.values_list("heartbeat_at", flat=True).get(pk=order.pk)


def kept_a_while(order: Order) -> tuple[bool, OrderLease]:
    """Keep ``order``'s lease for two and a half intervals: whether its stamp moved
    meanwhile, and the lease."""
    claimed_at = lease_stamp(order)
    with running(order) as run, heartbeat(run.lease):
        time.sleep(INTERVAL * 2.5)
        renewed_at = lease_stamp(order)
    return renewed_at > claimed_at, run.lease


def keeper_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "async-orders-leases"]


def test_a_view_that_reports_nothing_keeps_its_lease_renewed() -> None:
    renewed, lease = kept_a_while(claimed())

    assert renewed
    assert lease.lost is False


def test_one_thread_renews_the_leases_of_every_order_of_the_process() -> None:
    first, second = claimed(), claimed()
    stamps = {order.pk: lease_stamp(order) for order in (first, second)}

    with (
        running(first) as one,
        heartbeat(one.lease),
        running(second) as other,
        heartbeat(other.lease),
    ):
        time.sleep(INTERVAL * 2.5)
        threads = keeper_threads()

    assert len(threads) == 1
    assert all(lease_stamp(order) > stamps[order.pk] for order in (first, second))


def test_a_lease_is_no_longer_renewed_once_its_block_ended() -> None:
    order = claimed()
    with running(order) as run, heartbeat(run.lease):
        pass
    ended_at = lease_stamp(order)

    time.sleep(INTERVAL * 2.5)

    assert lease_stamp(order) == ended_at


def test_a_refused_renewal_loses_the_lease_and_is_not_tried_again() -> None:
    order = claimed()
    Order.objects.filter(pk=order.pk).update(attempts=2)  # recovered and claimed again
    taken_over_at = lease_stamp(order)

    with running(order) as run, heartbeat(run.lease):
        time.sleep(INTERVAL * 2.5)

    assert run.lease.lost is True
    assert lease_stamp(order) == taken_over_at


def test_a_keeper_asleep_on_a_longer_interval_renews_a_new_lease_on_time(settings) -> None:
    """Settings change under tests: a keeper that planned its sleep with a longer
    interval is woken for a lease due sooner."""
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "HEARTBEAT_INTERVAL": 5}
    with running(claimed()) as earlier, heartbeat(earlier.lease):
        time.sleep(INTERVAL)  # the keeper now sleeps until that lease is due, 5 s on
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "HEARTBEAT_INTERVAL": INTERVAL}

    renewed, _ = kept_a_while(claimed())

    assert renewed


def test_a_renewal_that_fails_unexpectedly_leaves_the_other_leases_kept(caplog) -> None:
    broken, order = claimed(), claimed()
    claimed_at = lease_stamp(order)

    with running(broken) as failing, running(order) as run:

        def renew() -> bool:
            raise RuntimeError("a bug in a renewal")

        failing.lease.renew = renew  # type: ignore[method-assign]
        with heartbeat(failing.lease), heartbeat(run.lease):
            time.sleep(INTERVAL * 2.5)
            renewed_at = lease_stamp(order)

    assert renewed_at > claimed_at
    assert len(keeper_threads()) == 1
    assert "its lease could not be renewed" in caplog.text
