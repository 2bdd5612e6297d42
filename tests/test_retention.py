"""Retention: finished orders, and idle requesters' lock rows, are purged in time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from async_orders.models import Order, RequesterLock
from async_orders.retention import purge_finished
from async_orders.worker.execution import run_order
from tests.factories import make_order

pytestmark = pytest.mark.django_db


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
