"""Who a client is, behind proxies: ``X-Forwarded-For`` is believed only from the
proxies ``TRUSTED_PROXIES`` names, so a client cannot pass for many by forging it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from async_orders.views.headers import client_address
from async_orders.views.waiting import Waiter, room
from tests.factories import make_order
from tests.helpers import answered_at_once

pytestmark = pytest.mark.django_db


def address(peer: str, forwarded: str | None = None) -> str:
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=peer, **headers))


def trust(settings: Any, *proxies: str) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "TRUSTED_PROXIES": list(proxies)}


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert address("192.0.2.10", "203.0.113.7") == "192.0.2.10"


def test_behind_a_trusted_proxy_the_address_it_saw_is_the_client(settings: Any) -> None:
    trust(settings, "10.0.0.0/8")

    assert address("10.0.0.2", "203.0.113.7") == "203.0.113.7"


def test_what_the_client_wrote_left_of_the_proxies_is_not_believed(settings: Any) -> None:
    trust(settings, "10.0.0.0/8")

    assert address("10.0.0.2", "198.51.100.1, 203.0.113.7, 10.0.0.1") == "203.0.113.7"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards(settings: Any) -> None:
    trust(settings, "10.0.0.0/8")

    assert address("192.0.2.10", "10.0.0.1") == "192.0.2.10"


def test_a_forged_forwarded_address_gets_no_second_waiter_slot(
    api: APIClient, settings: Any
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAITERS_PER_CLIENT": 1}
    order = make_order()

    with room.admit(Waiter("ip:127.0.0.1", blocking=True)):  # the test client's one slot
        response = answered_at_once(
            lambda: api.get(
                f"/async/orders/{order.pk}/",
                {"wait": 5},
                headers={"X-Forwarded-For": "203.0.113.99"},
            )
        )

    assert response.status_code == 202
    assert response["Retry-After"] == "1"
