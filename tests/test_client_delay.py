"""How long ``async_orders.client`` waits between polls, without a server."""

from __future__ import annotations

import pytest

from async_orders.client import Client


@pytest.fixture
def orders_client() -> Client:
    return Client("http://testserver", poll_interval=0.5, max_poll_interval=10, backoff=2)


def test_retry_after_in_seconds_is_honoured(orders_client: Client) -> None:
    assert orders_client.delay("3", attempt=0) == 3.0


def test_retry_after_is_capped(orders_client: Client) -> None:
    assert orders_client.delay("3600", attempt=0) == 10.0


def test_without_retry_after_the_delay_backs_off_up_to_the_cap(orders_client: Client) -> None:
    delays = [orders_client.delay(None, attempt) for attempt in range(7)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_an_unparsable_retry_after_falls_back_to_backoff(orders_client: Client) -> None:
    assert orders_client.delay("Wed, 21 Oct 2015 07:28:00 GMT", attempt=1) == 1.0


def test_a_negative_retry_after_means_now(orders_client: Client) -> None:
    assert orders_client.delay("-5", attempt=0) == 0.0


def test_base_path_is_joined_to_the_server() -> None:
    assert Client("http://h:8000/", base_path="/api/async/").base == "http://h:8000/api/async/"
