"""fail_on_error, ProgressItems and current_order, inside and outside an order."""

from __future__ import annotations

from typing import Any

import pytest

from async_orders import ProgressItems, current_order, fail_on_error
from async_orders.models import Order, OrderStatus
from async_orders.progress import CancelRequested
from async_orders.worker.order_lease import LeaseLost
from async_orders.worker.run import running
from tests.factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def order() -> Order:
    order = make_order()
    order.start()
    return order


def test_outside_an_order_the_helpers_are_transparent() -> None:
    assert list(ProgressItems(iter("abc"))) == ["a", "b", "c"]
    assert current_order() is None
    with pytest.raises(KeyError), fail_on_error("never shown"):
        raise KeyError("x")


def test_inside_an_order_current_order_is_that_order(order: Order) -> None:
    with running(order):
        assert current_order() is order
    assert current_order() is None


def test_progress_items_yields_every_item_in_order(order: Order, settings: Any) -> None:
    """With the shipped PROGRESS_INTERVAL, so that batches grow as they do in use (the
    test settings' 0 keeps every batch one item long, and writes 10,000 times)."""
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "PROGRESS_INTERVAL": 0.5}
    with running(order):
        assert list(ProgressItems(range(10_000))) == list(range(10_000))


def test_progress_items_reports_each_step_and_the_total(order: Order) -> None:
    seen = []
    with running(order):
        for _ in ProgressItems(["a", "b", "c"], message="working"):
            stored = Order.objects.get(pk=order.pk)
            seen.append((stored.progress_current, stored.progress_total, stored.message))
    order.refresh_from_db()

    assert seen == [(0, 3, "working"), (1, 3, "working"), (2, 3, "working")]
    assert (order.progress_current, order.progress_total) == (3, 3)


def test_progress_items_counts_an_iterator_without_length(order: Order) -> None:
    with running(order):
        list(ProgressItems(iter(range(5))))
    order.refresh_from_db()

    assert (order.progress_current, order.progress_total) == (5, None)


def test_an_explicit_total_wins(order: Order) -> None:
    with running(order):
        list(ProgressItems(iter(range(5)), total=10))
    order.refresh_from_db()

    assert order.progress_total == 10


def test_progress_writes_are_throttled(order: Order, settings, django_assert_max_num_queries):
    settings.ASYNC_ORDERS = {"PROGRESS_INTERVAL": 3600}

    with running(order), django_assert_max_num_queries(2):
        assert sum(ProgressItems(range(200_000))) == sum(range(200_000))
    order.refresh_from_db()

    assert order.progress_current == 200_000


def test_progress_items_stops_an_order_that_is_no_longer_running(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.FAILED)

    with running(order), pytest.raises(LeaseLost):
        list(ProgressItems(range(3)))
    order.refresh_from_db()

    assert order.progress_current == 0


def test_progress_items_raises_at_the_next_step_once_cancel_is_requested(order: Order) -> None:
    done = []
    with running(order), pytest.raises(CancelRequested):
        for item in ProgressItems(range(5)):
            done.append(item)
            if item == 1:
                order.cancel()
    order.refresh_from_db()

    assert done == [0, 1]
    assert (order.status, order.cancel_requested, order.progress_current) == (
        OrderStatus.RUNNING,
        True,
        1,
    )


def test_order_canceled_is_not_swallowed_by_except_exception(order: Order) -> None:
    order.cancel()

    with running(order), pytest.raises(CancelRequested):
        try:
            list(ProgressItems(range(3)))
        except Exception:  # a view's broad handler
            pytest.fail("CancelRequested was caught as an Exception")


def test_the_innermost_fail_on_error_message_wins(order: Order) -> None:
    with (
        running(order) as run,
        pytest.raises(ValueError, match="boom"),
        fail_on_error("outer"),
        fail_on_error("inner"),
    ):
        raise ValueError("boom")

    assert run.failure_message == "inner"


def test_fail_on_error_works_as_a_decorator(order: Order) -> None:
    @fail_on_error("decorated")
    def explode() -> None:
        raise ValueError("boom")

    with running(order) as run, pytest.raises(ValueError, match="boom"):
        explode()

    assert run.failure_message == "decorated"
