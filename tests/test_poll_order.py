"""GET /async/orders/<id>/, its result, and the list: the status table of docs/http-api.md."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def poll(api: APIClient, order: Order, suffix: str = ""):
    return api.get(f"/async/orders/{order.pk}/{suffix}")


@pytest.mark.parametrize("status", [OrderStatus.QUEUED, OrderStatus.RUNNING])
def test_an_active_order_is_202_with_retry_after(api: APIClient, status: OrderStatus) -> None:
    order = make_order()
    Order.objects.filter(pk=order.pk).update(status=status, progress_current=3, progress_total=4)

    response = poll(api, order)

    assert response.status_code == 202
    assert response["Retry-After"] == "1"
    assert response.json()["status"] == status
    assert response.json()["progress"] == {"current": 3, "total": 4, "percent": 75.0}


def test_a_scheduled_order_says_to_retry_when_it_is_due(api: APIClient) -> None:
    order = make_order(countdown=90)

    response = poll(api, order)

    assert response.status_code == 202
    assert 85 <= int(response["Retry-After"]) <= 90


def test_a_completed_order_is_201_with_location_of_the_resource(api: APIClient) -> None:
    order = make_order()
    run_order(order.pk)

    response = poll(api, order)

    result_url = f"http://testserver/async/orders/{order.pk}/result/"
    assert response.status_code == 201
    assert response["Location"] == result_url
    assert response.json()["resource_url"] == result_url
    assert response.json()["status"] == "completed"


def test_a_failed_order_is_200_with_its_error(api: APIClient) -> None:
    order = make_order("answers-404")
    run_order(order.pk)

    response = poll(api, order)

    assert response.status_code == 200
    assert response.json()["error"]["status_code"] == 404
    assert "Location" not in response


def test_the_representation_has_every_documented_field(api: APIClient) -> None:
    body = poll(api, make_order()).json()

    assert set(body) >= {
        "id",
        "url",
        "view",
        "status",
        "progress",
        "message",
        "resource_url",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    }


def test_the_poll_is_never_cached(api: APIClient) -> None:
    response = poll(api, make_order())

    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_an_unknown_order_is_404(api: APIClient) -> None:
    response = api.get("/async/orders/6c1f0c3a-7a8e-4d8a-9d6e-0b1f2a3c4d5e/")

    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


def test_another_users_order_is_404(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))
    api.force_authenticate(user)

    assert poll(api, order).status_code == 404


def test_staff_without_the_view_order_permission_see_only_their_own_orders(
    api: APIClient, user: User, staff: User
) -> None:
    order = make_order(owner=user)
    api.force_authenticate(staff)

    assert poll(api, order).status_code == 404
    assert poll(api, order, "result/").status_code == 404
    assert api.get("/async/orders/").json()["results"] == []


def test_the_view_order_permission_shows_every_order(
    api: APIClient, user: User, viewer: User
) -> None:
    order = make_order(owner=user)
    api.force_authenticate(viewer)

    assert poll(api, order).status_code == 202
    assert len(api.get("/async/orders/?all=1").json()["results"]) == 1


def test_the_view_order_permissions_own_list_holds_its_own_orders(
    api: APIClient, user: User, viewer: User
) -> None:
    make_order(owner=user)
    own = make_order(owner=viewer)
    api.force_authenticate(viewer)

    listed = api.get("/async/orders/").json()

    assert [order["id"] for order in listed["results"]] == [str(own.pk)]


def test_listing_everyones_orders_without_the_permission_is_403(api: APIClient, user: User) -> None:
    make_order(owner=User.objects.create_user("bob"))
    api.force_authenticate(user)

    refused = api.get("/async/orders/?all=1")

    assert refused.status_code == 403
    assert refused.json()["code"] == "listing_everyone_denied"


def test_a_superuser_sees_every_order(api: APIClient, user: User) -> None:
    order = make_order(owner=user)
    api.force_authenticate(User.objects.create_superuser("admin"))

    assert poll(api, order).status_code == 202


def test_the_result_replays_the_stored_response(api: APIClient) -> None:
    order = make_order("echo-int", kwargs={"number": 4})
    run_order(order.pk)

    response = poll(api, order, "result/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["kwargs"] == {"number": "4"}


def test_the_result_of_an_unfinished_order_is_409(api: APIClient) -> None:
    response = poll(api, make_order(), "result/")

    assert response.status_code == 409
    assert response.json()["code"] == "result_not_ready"


def test_the_list_shows_the_callers_orders_filtered(api: APIClient, user: User) -> None:
    mine = make_order("echo", owner=user)
    make_order("cbv", owner=user)
    make_order("echo", owner=User.objects.create_user("bob"))
    api.force_authenticate(user)

    everything = api.get("/async/orders/").json()
    echoes = api.get("/async/orders/", {"view": "echo"}).json()
    queued = api.get("/async/orders/", {"status": "running"}).json()

    assert len(everything["results"]) == 2
    assert [order["id"] for order in echoes["results"]] == [str(mine.pk)]
    assert queued["results"] == []


def test_timestamps_are_set_as_the_order_moves(api: APIClient) -> None:
    before = timezone.now()
    order = make_order()
    run_order(order.pk)
    order.refresh_from_db()

    assert before <= order.created_at <= order.started_at <= order.finished_at


def test_poll_costs_one_query(api: APIClient, django_assert_num_queries) -> None:
    order = make_order()

    with django_assert_num_queries(1):
        poll(api, order)
