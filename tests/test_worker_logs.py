"""What a real worker prints for a failed order: one line, one traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_orders.models import Order, OrderStatus
from tests import services
from tests.factories import make_order
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]


def test_a_failed_order_prints_one_line_and_one_traceback_in_the_worker() -> None:
    order = make_order("raises-naming-its-order")  # committed, so published at once

    def failed() -> bool:
        return Order.objects.filter(pk=order.pk, status=OrderStatus.FAILED).exists()

    wait_until(failed, timeout=30, what=f"order {order.pk} to fail")
    log = (Path(services.SCRATCH) / "worker.log").read_text()
    assert log.count(f"Order {order.pk} failed") == 1
    assert log.count(f"RuntimeError: order {order.pk} broke") == 1
