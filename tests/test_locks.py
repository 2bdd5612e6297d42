"""Conflict locks: which objects an order touches, the 409 they answer, and their release."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from async_orders import locks
from async_orders.models import Order
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import place

pytestmark = pytest.mark.django_db


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
    run_order(done.pk)
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


def test_a_conflict_does_not_reveal_an_order_the_caller_may_not_see(
    api: APIClient, user: Any
) -> None:
    place(api, "bake-pizza", {"kwargs": {"pk": 9}})  # anonymous, no session: its URL is its key
    api.force_authenticate(user)

    clash = place(api, "bake-pizza", {"kwargs": {"pk": 9}})

    assert clash.status_code == 409
    assert clash.json()["blocking_order"] is None


def test_equal_kwargs_make_one_lock_key_and_long_ones_are_digested() -> None:
    assert locks.lock_key("v", pk=5) == locks.lock_key("v", pk="5")
    long_key = locks.lock_key("v", slug="x" * 500)
    assert len(long_key) < 200
    assert long_key == locks.lock_key("v", slug="x" * 500)
