"""Who may order, see and cancel what; CSRF; typed inputs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import order_of, place
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db


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


def test_signing_in_hands_the_sessions_orders_to_the_user(user: User) -> None:
    """Django gives the session a new key at login; its orders must not vanish."""
    visitor = APIClient()
    visitor.session.save()
    order = order_of(place(visitor))

    assert visitor.login(username="alice", password="pw")

    order.refresh_from_db()
    assert order.requester == f"user:{user.pk}"
    assert visitor.get(f"/async/orders/{order.pk}/").status_code == 202
    assert [listed["id"] for listed in visitor.get("/async/orders/").json()["results"]] == [
        str(order.pk)
    ]


def test_signing_in_hands_over_nothing_of_another_session(user: User) -> None:
    other = APIClient()
    other.session.save()
    theirs = order_of(place(other))

    assert APIClient().login(username="alice", password="pw")

    theirs.refresh_from_db()
    assert theirs.requester.startswith("session:")


def test_without_a_session_the_unguessable_url_is_the_only_key() -> None:
    order = order_of(place(APIClient()))

    assert order.requester == "anonymous"
    assert APIClient().get(f"/async/orders/{order.pk}/").status_code == 202


def test_orders_without_owner_or_session_are_never_listed() -> None:
    order_of(place(APIClient()))

    assert APIClient().get("/async/orders/").json()["results"] == []


def test_anonymous_requests_without_a_session_share_no_active_order_cap(settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 1}

    assert place(APIClient()).status_code == place(APIClient()).status_code == 302


def test_a_user_does_not_see_anonymous_orders(api: APIClient, user: User) -> None:
    order = make_order()
    api.force_authenticate(user)

    assert api.get(f"/async/orders/{order.pk}/").status_code == 404


def test_someone_elses_result_is_404(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))
    run_order(order.pk)
    api.force_authenticate(user)

    response = api.get(f"/async/orders/{order.pk}/result/")

    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


def test_the_list_holds_only_the_callers_orders(api: APIClient, user: User) -> None:
    make_order(owner=User.objects.create_user("bob"))
    make_order()
    api.force_authenticate(user)

    assert api.get("/async/orders/").json()["results"] == []


# --- no privilege escalation in the worker -------------------------------------------


def test_ordering_a_change_to_another_users_object_fails_with_the_views_404(
    user: User,
) -> None:
    bobs = Item.objects.create(name="bob's", owner=User.objects.create_user("bob"))
    order = make_order("shop:item-detail", owner=user, kwargs={"pk": bobs.pk}, data={"name": "x"})

    run_order(order.pk)

    order.refresh_from_db()
    bobs.refresh_from_db()
    assert (order.status, order.error["status_code"]) == (OrderStatus.FAILED, 404)
    assert bobs.name == "bob's"


def test_ordering_a_change_to_ones_own_object_works(user: User) -> None:
    mine = Item.objects.create(name="mine", owner=user)
    order = make_order("shop:item-detail", owner=user, kwargs={"pk": mine.pk}, data={"name": "y"})

    run_order(order.pk)

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
