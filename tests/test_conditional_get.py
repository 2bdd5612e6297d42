"""ETag and If-None-Match on GET /async/orders/<id>/, and the ?wait= parameter."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory
from rest_framework.test import APIClient

from async_orders.models import Order
from async_orders.serializers import OrderSerializer
from async_orders.views.headers import order_etag
from async_orders.views.waiting import Waiter, room
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import answered_at_once

pytestmark = pytest.mark.django_db


def poll(api: APIClient, order: Order, etag: str | None = None, **query: object):
    """GET the order as from a threaded server: Django's test client says it runs on a
    single thread, where no request may wait (it would stop the server)."""
    headers: dict[str, object] = {"wsgi.multithread": True}
    if etag:
        headers["HTTP_IF_NONE_MATCH"] = etag
    return api.get(f"/async/orders/{order.pk}/", query, **headers)


def test_the_poll_has_a_strong_etag(api: APIClient) -> None:
    etag = poll(api, make_order())["ETag"]

    assert etag.startswith('"')
    assert etag.endswith('"')


def test_an_unchanged_order_is_304_without_a_body_and_never_cached(api: APIClient) -> None:
    order = make_order()
    etag = poll(api, order)["ETag"]

    response = poll(api, order, etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_a_weak_or_listed_match_is_304_too(api: APIClient) -> None:
    order = make_order()
    etag = poll(api, order)["ETag"]

    assert poll(api, order, f'"other", W/{etag}').status_code == 304


def test_a_304_costs_one_query_and_no_serialization(
    api: APIClient, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries
) -> None:
    order = make_order()
    etag = poll(api, order)["ETag"]

    def refuse(*args: object) -> None:
        raise AssertionError("the order was serialized")

    monkeypatch.setattr(OrderSerializer, "to_representation", refuse)
    monkeypatch.setattr("async_orders.views.orders.represent", refuse)
    with django_assert_num_queries(1):
        assert poll(api, order, etag).status_code == 304


def test_the_etag_changes_with_progress(api: APIClient) -> None:
    order = make_order()
    etag = poll(api, order)["ETag"]
    Order.objects.filter(pk=order.pk).update(status="running")
    order.refresh_from_db()

    order.report_progress(1, 4, None)
    progressed = poll(api, order, etag)

    assert progressed.status_code == 202
    assert progressed["ETag"] != etag
    assert progressed.json()["progress"]["current"] == 1


def test_the_etag_changes_with_the_message(api: APIClient) -> None:
    order = make_order()
    Order.objects.filter(pk=order.pk).update(status="running")
    order.refresh_from_db()
    order.report_progress(1, 4, "one")
    etag = poll(api, order)["ETag"]

    order.report_progress(1, 4, "still one")

    assert poll(api, order, etag).status_code == 202


def test_the_etag_changes_with_the_status(api: APIClient) -> None:
    order = make_order()
    etag = poll(api, order)["ETag"]

    run_order(order.pk)

    assert poll(api, order, etag).status_code == 201


def test_another_users_order_is_404_whatever_the_etag(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))
    api.force_authenticate(user)

    assert poll(api, order, "*").status_code == 404
    assert poll(api, order, wait=5).status_code == 404


@pytest.mark.parametrize("wait", ["soon", "-1", "nan", "inf"])
def test_wait_must_be_a_number_of_seconds(api: APIClient, wait: str) -> None:
    response = poll(api, make_order(), wait=wait)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_wait"


def test_a_finished_order_answers_a_long_poll_at_once(
    api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = make_order()
    run_order(order.pk)

    def never(*args: object) -> Iterator[str]:
        raise AssertionError("a finished order's long-poll waited for a change")

    monkeypatch.setattr("async_orders.views.longpoll.follow", never)
    response = poll(api, order, wait=10)

    assert response.status_code == 201


@pytest.mark.parametrize("redis_url", [None, ""], ids=["pubsub", "database"])
def test_a_long_poll_of_an_unchanging_order_answers_the_same_202_after_the_wait(
    api: APIClient, settings, redis_url: str | None
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "NOTIFY_REDIS_URL": redis_url}
    order = make_order()
    before = poll(api, order)
    started = time.monotonic()

    response = poll(api, order, wait=0.3)

    # It waited its 0.3 s, and ended then rather than at LONG_POLL_MAX_WAIT (30 s): a
    # matrix session at the lowest priority once took 2.25 s to answer.
    assert 0.3 <= time.monotonic() - started < 10
    assert response.status_code == 202
    assert response["ETag"] == before["ETag"]
    assert response.json() == before.json()


def test_a_long_poll_with_the_current_etag_ends_304_when_nothing_changed(
    api: APIClient,
) -> None:
    order = make_order()
    etag = poll(api, order)["ETag"]

    assert poll(api, order, etag, wait=0.2).status_code == 304


def test_the_wait_is_cut_to_the_setting(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAIT": 0.2}
    started = time.monotonic()

    assert poll(api, make_order(), wait=60).status_code == 202
    assert time.monotonic() - started < 2


def test_a_heartbeat_does_not_change_the_etag() -> None:
    order = make_order()
    order.start()
    request = RequestFactory().get("/")
    before = order_etag(Order.objects.get(pk=order.pk), request)

    order.renew_lease()

    assert order_etag(Order.objects.get(pk=order.pk), request) == before


# --- room to wait ------------------------------------------------------------------------

ELSEWHERE = Waiter("ip:10.0.0.9", blocking=True)


def test_a_single_threaded_server_answers_a_long_poll_at_once_with_retry_after(
    api: APIClient,
) -> None:
    order = make_order()

    response = answered_at_once(lambda: api.get(f"/async/orders/{order.pk}/", {"wait": 5}))

    assert response.status_code == 202
    assert response["Retry-After"] == "1"


def test_past_the_per_process_cap_a_long_poll_is_answered_at_once(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAITERS_PER_PROCESS": 1}
    order = make_order()

    with room.admit(ELSEWHERE) as admitted:
        assert admitted
        response = answered_at_once(lambda: poll(api, order, wait=5))

    assert response.status_code == 202
    assert response["Retry-After"] == "1"


def test_past_the_cap_a_long_poll_with_the_current_etag_is_304_with_retry_after(
    api: APIClient, settings
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAITERS_PER_PROCESS": 0}
    order = make_order()
    etag = poll(api, order)["ETag"]

    response = answered_at_once(lambda: poll(api, order, etag, wait=5))

    assert response.status_code == 304
    assert response["Retry-After"] == "1"


def test_past_the_per_client_cap_a_long_poll_is_answered_at_once(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAITERS_PER_CLIENT": 1}
    order = make_order()

    with room.admit(Waiter("ip:127.0.0.1", blocking=True)):  # the test client's address
        response = answered_at_once(lambda: poll(api, order, wait=5))

    assert response["Retry-After"] == "1"


def test_another_clients_waiters_leave_this_client_room_to_wait(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAITERS_PER_CLIENT": 1}
    order = make_order()
    started = time.monotonic()

    with room.admit(ELSEWHERE):
        poll(api, order, wait=0.3)

    assert time.monotonic() - started >= 0.3


def test_a_waiter_leaves_the_room_when_its_wait_is_over(api: APIClient) -> None:
    poll(api, make_order(), wait=0.1)

    assert room.waiting(blocking=True) == 0


def test_a_signed_in_user_is_one_client_wherever_it_connects_from(user: User) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3")
    request.user = user

    assert Waiter.of(request, blocking=True).client == f"user:{user.pk}"
