"""Retries: which exceptions retry, the backoff, and what happens when attempts run out."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.registry import ViewOptions
from async_orders.worker.execution import _backoff, run_order
from tests.factories import make_order
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db


def run(order: Order) -> Order:
    wait_until(lambda: order.run_at is None or order.run_at <= timezone.now(), timeout=5)
    run_order(order.pk)
    order.refresh_from_db()
    return order


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
