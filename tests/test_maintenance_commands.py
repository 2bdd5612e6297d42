"""``reconcile_orders`` and ``purge_orders``: the periodic tasks, as commands for cron."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from async_orders.execution import execute_order
from async_orders.models import Order, Status
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def run(command: str) -> str:
    out = StringIO()
    call_command(command, stdout=out)
    return out.getvalue().strip()


def test_reconcile_fails_a_running_order_whose_worker_went_silent() -> None:
    order = make_order("echo")
    order.start()
    Order.objects.filter(pk=order.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    output = run("reconcile_orders")

    order.refresh_from_db()
    assert order.status == Status.FAILED
    assert order.error["code"] == "worker_lost"
    assert output == "0 republished, 0 requeued, 1 failed as worker lost."


def test_reconcile_with_nothing_to_do_says_so() -> None:
    assert run("reconcile_orders") == "0 republished, 0 requeued, 0 failed as worker lost."


def test_purge_deletes_finished_orders_past_retention_only() -> None:
    old, recent = make_order("echo"), make_order("echo")
    for order in (old, recent):
        execute_order(order.pk)
    waiting = make_order("echo")
    long_ago = timezone.now() - timedelta(days=365)
    Order.objects.filter(pk__in=[old.pk, waiting.pk]).update(
        finished_at=long_ago, created_at=long_ago
    )

    output = run("purge_orders")

    assert output == "1 finished orders deleted."
    assert set(Order.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
