"""DELETE /async/orders/<id>/: cancel at once, stop a running view, or 409."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.placing import rerun_order
from async_orders.worker.execution import run_order
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def cancel(api: APIClient, order: Order):
    return api.delete(f"/async/orders/{order.pk}/")


@pytest.mark.parametrize("envelope", [{}, {"countdown": 60}])
def test_a_waiting_order_is_canceled_at_once_and_never_runs(api: APIClient, envelope: dict) -> None:
    order = make_order(**envelope)

    response = cancel(api, order)
    run_order(order.pk)  # its message arrives later anyway

    order.refresh_from_db()
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert (order.status, order.attempts) == (OrderStatus.CANCELED, 0)
    assert order.finished_at is not None


def test_a_running_order_is_asked_to_stop_with_202(api: APIClient) -> None:
    order = make_order()
    order.start()

    response = cancel(api, order)

    assert response.status_code == 202
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested"] is True


def test_a_running_view_stops_at_its_next_progress_step_keeping_progress() -> None:
    order = make_order("canceled-midway")

    run_order(order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED
    assert (order.progress_current, order.progress_total) == (3, 5)
    assert order.response_body is None


@pytest.mark.parametrize("view", ["echo", "answers-404"])
def test_a_finished_order_cannot_be_canceled(api: APIClient, view: str) -> None:
    order = make_order(view)
    run_order(order.pk)

    response = cancel(api, order)

    assert response.status_code == 409
    assert response.json()["code"] == "order_finished"


def test_only_the_owner_can_cancel(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))
    api.force_authenticate(user)

    assert cancel(api, order).status_code == 404
    order.refresh_from_db()
    assert order.status == OrderStatus.QUEUED


def test_rerun_places_a_new_order_with_the_same_envelope(user: User) -> None:
    failed = make_order("echo-int", owner=user, kwargs={"number": 9}, query={"a": 1})
    failed.cancel()

    again, created = rerun_order(failed)

    assert created
    assert again.pk != failed.pk
    assert again.rerun_of == failed
    assert again.status == OrderStatus.QUEUED
    assert (again.view_name, again.kwargs, again.query, again.owner) == (
        "echo-int",
        {"number": 9},
        {"a": 1},
        user,
    )


def test_rerun_takes_the_same_locks_and_attempts() -> None:
    failed = make_order("gated-retrying", kwargs={"steps": 1})
    failed.cancel()

    again, _ = rerun_order(failed)

    assert (again.lock_keys, again.max_attempts) == (failed.lock_keys, 2)
    assert again.locks.count() == 1
