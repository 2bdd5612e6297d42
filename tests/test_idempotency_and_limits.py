"""Idempotency keys and limits: one order per key and requester, caps that hold."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from rest_framework.test import APIClient

from async_orders.envelope import parse_envelope
from async_orders.exceptions import TooManyActiveOrders
from async_orders.models import Order, OrderStatus
from async_orders.ownership import requester_key
from async_orders.placing import place_order
from async_orders.registry import find_endpoint
from async_orders.worker.execution import run_order
from tests.helpers import order_of, place

pytestmark = pytest.mark.django_db


# --- Idempotency-Key -------------------------------------------------------------------


@pytest.fixture
def session_api(api: APIClient) -> APIClient:
    """An anonymous client with a session cookie: a client the server can recognise."""
    session = SessionStore()
    session.create()
    api.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
    return api


def test_an_anonymous_client_without_a_session_may_not_send_an_idempotency_key(
    api: APIClient,
) -> None:
    response = place(api, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_needs_client"
    assert not Order.objects.exists()


def test_another_anonymous_client_replaying_a_key_never_gets_the_first_ones_order(
    session_api: APIClient,
) -> None:
    first = place(session_api, headers={"Idempotency-Key": "k-1"})
    stranger = place(APIClient(), headers={"Idempotency-Key": "k-1"})

    assert first.status_code == 302
    assert stranger.status_code == 400
    assert first["Location"] not in stranger.content.decode()


def test_the_same_key_and_envelope_return_the_existing_order(
    session_api: APIClient, django_capture_on_commit_callbacks
) -> None:
    api = session_api
    with django_capture_on_commit_callbacks() as published:
        first = place(
            api, "echo-int", {"kwargs": {"number": 1}}, headers={"Idempotency-Key": "k-1"}
        )
        again = place(
            api, "echo-int", {"kwargs": {"number": 1}}, headers={"Idempotency-Key": "k-1"}
        )

    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"]
    assert Order.objects.count() == 1
    assert len(published) == 1  # one message: one execution


def test_the_same_key_with_another_envelope_is_422(session_api: APIClient) -> None:
    api = session_api
    place(api, "echo-int", {"kwargs": {"number": 1}}, headers={"Idempotency-Key": "k-1"})
    response = place(api, "echo-int", {"kwargs": {"number": 2}}, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_keys_are_per_requester(session_api: APIClient, user: User) -> None:
    api = session_api
    place(api, headers={"Idempotency-Key": "shared"})
    api.force_authenticate(user)
    place(api, headers={"Idempotency-Key": "shared"})

    assert Order.objects.count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_a_malformed_key_is_400(api: APIClient, key: str) -> None:
    response = api.post(
        "/async/echo/order/", {}, format="json", HTTP_IDEMPOTENCY_KEY=key.encode().decode("latin-1")
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


def test_a_key_expires_with_its_order(session_api: APIClient) -> None:
    api = session_api
    first = order_of(place(api, headers={"Idempotency-Key": "k"}))
    first.delete()

    assert place(api, "cbv", headers={"Idempotency-Key": "k"}).status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broker")
def test_concurrent_duplicates_make_exactly_one_order(live_server: Any, user: User) -> None:
    url = f"{live_server.url}/async/echo/order/"
    key = str(uuid.uuid4())
    start = threading.Barrier(4)
    locations: list[str] = []

    def post() -> None:
        start.wait()
        response = requests.post(
            url,
            json={"query": {"n": 1}},
            headers={"Idempotency-Key": key},
            auth=("alice", "pw"),
            allow_redirects=False,
        )
        locations.append(response.headers["Location"])

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(locations) == 4
    assert len(set(locations)) == 1
    assert Order.objects.count() == 1


# --- limits ----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_BODY_BYTES": 100}

    response = place(api, envelope={"data": "x" * 200})

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert not Order.objects.exists()


def test_too_many_active_orders_is_429_with_retry_after(
    api: APIClient, user: User, settings
) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 2, "RETRY_AFTER": 3}
    api.force_authenticate(user)
    place(api)
    place(api)

    response = place(api)

    assert response.status_code == 429
    assert response.json()["code"] == "too_many_active_orders"
    assert response["Retry-After"] == "3"
    assert Order.objects.count() == 2


CONCURRENT_POSTS = 20


@pytest.mark.django_db(transaction=True)
def test_the_active_orders_cap_holds_under_concurrent_posts(
    user: User, settings, published: list[uuid.UUID]
) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 10}
    requester = requester_key(user, None)
    envelope = parse_envelope(find_endpoint("echo"), {})
    for _ in range(5):
        place_order(envelope, user, "http://testserver", requester=requester)
    start = threading.Barrier(CONCURRENT_POSTS)

    def post() -> None:
        start.wait(timeout=30)
        try:
            place_order(envelope, user, "http://testserver", requester=requester)
        except TooManyActiveOrders:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(CONCURRENT_POSTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert Order.objects.filter(requester=requester).active().count() == 10


def test_finished_orders_do_not_count_against_the_cap(api: APIClient, user: User, settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 1}
    api.force_authenticate(user)
    assert place(api).status_code == 302
    assert place(api).status_code == 429  # the cap holds while the first is active
    Order.objects.all().delete()
    run_order(order_of(place(api)).pk)

    assert place(api).status_code == 302


def test_a_response_over_the_result_limit_is_not_stored_and_says_so(
    api: APIClient, settings
) -> None:
    settings.ASYNC_ORDERS = {"MAX_RESULT_BYTES": 1000}
    order = order_of(place(api, "big-response"))

    run_order(order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert order.response_body is None
    assert order.response_size > 2000
    assert "larger than MAX_RESULT_BYTES (1000)" in order.message
    result = api.get(f"/async/orders/{order.pk}/result/")
    assert result.status_code == 410
    assert result.json()["code"] == "result_not_stored"


@pytest.mark.parametrize(
    ("envelope", "field"),
    [({"countdown": 3601}, "countdown"), ({"eta": "2999-01-01T00:00:00Z"}, "eta")],
)
def test_scheduling_beyond_the_horizon_is_400(
    api: APIClient, settings, envelope: dict, field: str
) -> None:
    settings.ASYNC_ORDERS = {"MAX_SCHEDULE_SECONDS": 3600}

    response = place(api, envelope=envelope)

    assert response.status_code == 400
    assert "3600 seconds" in response.json()["fields"][field][0]
