"""Who may order, see and cancel what; CSRF; idempotency keys; limits; typed inputs."""

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
from async_orders.execution import execute_order
from async_orders.models import Order, OrderStatus, requester_key
from async_orders.placing import place_order
from async_orders.registry import find_endpoint
from tests.factories import make_order
from tests.helpers import place
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db


def order_of(response) -> Order:
    return Order.objects.get(pk=response.json()["id"])


# --- authentication and permissions from settings -----------------------------------


def test_permission_classes_come_from_settings(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {
        "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }

    response = place(api)

    assert response.status_code in (401, 403)
    assert response.json()["code"] == "not_authenticated"
    assert not Order.objects.exists()


def test_authentication_classes_come_from_settings(api: APIClient, user: User, settings) -> None:
    settings.ASYNC_ORDERS = {
        "AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
        "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    api.login(username="alice", password="pw")  # a session, which orders now ignore

    assert place(api).status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")  # alice:pw
    assert place(api).status_code == 302


def test_throttle_classes_come_from_settings(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {"THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"]}
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"anon": "1/hour"}}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    assert place(api).status_code == 302
    throttled = place(api)

    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert "Retry-After" in throttled


# --- ownership -----------------------------------------------------------------------


def test_an_anonymous_order_is_bound_to_its_session() -> None:
    mine, no_session, other_session = APIClient(), APIClient(), APIClient()
    mine.session.save()
    other_session.session.save()

    order = order_of(place(mine))

    assert order.requester.startswith("session:")
    assert mine.get(f"/async/orders/{order.pk}/").status_code == 202
    assert no_session.get(f"/async/orders/{order.pk}/").status_code == 404
    assert other_session.get(f"/async/orders/{order.pk}/").status_code == 404
    assert other_session.delete(f"/async/orders/{order.pk}/").status_code == 404


def test_without_a_session_the_unguessable_url_is_the_only_key() -> None:
    order = order_of(place(APIClient()))

    assert order.requester == "anonymous"
    assert APIClient().get(f"/async/orders/{order.pk}/").status_code == 202


def test_orders_without_owner_or_session_are_never_listed() -> None:
    order_of(place(APIClient()))

    assert APIClient().get("/async/orders/").json()["count"] == 0


def test_anonymous_requests_without_a_session_share_no_active_order_cap(settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 1}

    assert place(APIClient()).status_code == place(APIClient()).status_code == 302


def test_a_user_does_not_see_anonymous_orders(api: APIClient, user: User) -> None:
    order = make_order()
    api.force_authenticate(user)

    assert api.get(f"/async/orders/{order.pk}/").status_code == 404


def test_someone_elses_result_is_404(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))
    execute_order(order.pk)
    api.force_authenticate(user)

    response = api.get(f"/async/orders/{order.pk}/result/")

    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


def test_the_list_holds_only_the_callers_orders(api: APIClient, user: User) -> None:
    make_order(owner=User.objects.create_user("bob"))
    make_order()
    api.force_authenticate(user)

    assert api.get("/async/orders/").json()["count"] == 0


# --- no privilege escalation in the worker -------------------------------------------


def test_ordering_a_change_to_another_users_object_fails_with_the_views_404(
    user: User,
) -> None:
    bobs = Item.objects.create(name="bob's", owner=User.objects.create_user("bob"))
    order = make_order("shop:item-detail", owner=user, kwargs={"pk": bobs.pk}, data={"name": "x"})

    execute_order(order.pk)

    order.refresh_from_db()
    bobs.refresh_from_db()
    assert (order.status, order.error["status_code"]) == (OrderStatus.FAILED, 404)
    assert bobs.name == "bob's"


def test_ordering_a_change_to_ones_own_object_works(user: User) -> None:
    mine = Item.objects.create(name="mine", owner=user)
    order = make_order("shop:item-detail", owner=user, kwargs={"pk": mine.pk}, data={"name": "y"})

    execute_order(order.pk)

    mine.refresh_from_db()
    assert mine.name == "y"


# --- CSRF ------------------------------------------------------------------------------


@pytest.fixture
def session_client(user: User) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="pw")
    return client


def test_a_session_post_without_csrf_token_is_403(session_client: APIClient) -> None:
    response = place(session_client)

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Order.objects.exists()


def test_a_session_post_and_delete_with_csrf_token_are_accepted(
    session_client: APIClient,
) -> None:
    token = session_client.get("/csrf/").json()["token"]

    placed = place(session_client, headers={"X-CSRFToken": token})
    refused = session_client.delete(placed["Location"])
    canceled = session_client.delete(placed["Location"], headers={"X-CSRFToken": token})

    assert placed.status_code == 302
    assert refused.status_code == 403
    assert canceled.status_code == 200


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
    execute_order(order_of(place(api)).pk)

    assert place(api).status_code == 302


def test_a_response_over_the_result_limit_is_not_stored_and_says_so(
    api: APIClient, settings
) -> None:
    settings.ASYNC_ORDERS = {"MAX_RESULT_BYTES": 1000}
    order = order_of(place(api, "big-response"))

    execute_order(order.pk)

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


# --- inputs validated at order time ----------------------------------------------------


def test_typed_inputs_are_validated_when_the_order_is_placed(api: APIClient) -> None:
    response = place(api, "typed-inputs", {"data": {"name": "x" * 30}, "query": {"page": 0}})

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"data.name", "data.size", "query.page"}
    assert not Order.objects.exists()


def test_valid_typed_inputs_are_accepted(api: APIClient) -> None:
    envelope = {"data": {"name": "margherita", "size": "large"}, "query": {"page": 2}}

    assert place(api, "typed-inputs", envelope).status_code == 302


def test_typed_inputs_reject_a_non_object_data(api: APIClient) -> None:
    response = place(api, "typed-inputs", {"data": [1, 2], "query": {"page": 1}})

    assert response.status_code == 400
    assert "data" in response.json()["fields"]
