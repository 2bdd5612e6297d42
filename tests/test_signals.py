"""The signals an order sends as it changes, and what a counted view records."""

from __future__ import annotations

from typing import Any

import pytest

from async_orders import signals
from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db


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
