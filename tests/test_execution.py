"""Running an order in-process: the service-level reverse and the recorded outcome."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.contrib.auth.models import User

from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import STARTED_NOTHING
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db


def run(order: Order) -> Order:
    run_order(order.pk)
    order.refresh_from_db()
    return order


def body_of(order: Order) -> dict:
    return json.loads(bytes(order.response_body))


def test_a_completed_order_stores_the_view_response() -> None:
    order = run(make_order("echo-int", kwargs={"number": 3}))

    assert order.status == OrderStatus.COMPLETED
    assert order.response_status == 200
    assert order.response_content_type == "application/json"
    assert body_of(order)["kwargs"] == {"number": "3"}
    assert order.resource_url == f"/async/orders/{order.pk}/result/"
    assert order.attempts == 1
    assert order.started_at <= order.finished_at


def test_the_view_gets_method_path_query_and_json_body() -> None:
    order = run(
        make_order(
            "echo-slug",
            kwargs={"slug": "s-1"},
            method="PATCH",
            query={"page": 2, "tag": ["a", "b"]},
            data={"x": [1, 2]},
        )
    )

    seen = body_of(order)
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/echo/s-1/slug/"
    assert seen["query"] == {"page": "2", "tag": "b"}
    assert seen["body"] == {"x": [1, 2]}


def test_the_view_sees_the_current_order_as_request_attribute_and_accessor() -> None:
    order = run(make_order())

    assert body_of(order)["order"] == str(order.pk)
    assert body_of(order)["same_order"] is True


def test_a_function_view_sees_the_owner_as_request_user(user: User) -> None:
    assert body_of(run(make_order(owner=user)))["user"] == "alice"


def test_an_inactive_owner_runs_as_anonymous(user: User) -> None:
    order = make_order(owner=user)
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert body_of(run(order))["user"] is None


def test_absolute_urls_built_by_the_view_use_the_origin_of_the_post() -> None:
    order = make_order()
    Order.objects.filter(pk=order.pk).update(origin="https://shop.example:8443")

    assert body_of(run(order))["absolute"] == "https://shop.example:8443/somewhere/"


def test_a_drf_create_makes_the_resource_url_the_created_object(user: User) -> None:
    order = run(make_order("shop:item-list", owner=user, data={"name": "margherita"}))

    item = Item.objects.get()
    assert order.status == OrderStatus.COMPLETED
    assert order.response_status == 201
    assert (item.name, item.owner) == ("margherita", user)
    assert order.resource_url == f"http://testserver/shop/items/{item.pk}/"


def test_a_drf_view_authenticates_the_owner_for_its_permission_checks(staff: User) -> None:
    order = run(make_order("staff-only", owner=staff))

    assert order.status == OrderStatus.COMPLETED
    assert body_of(order) == {"user": "root"}


def test_an_anonymous_owner_gets_the_drf_views_403_as_the_failure() -> None:
    order = run(make_order("staff-only"))

    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "http_error"
    assert order.error["status_code"] == 403
    assert order.error["body"]["detail"].startswith("Authentication credentials")


def test_a_user_without_the_permission_gets_the_views_403(user: User) -> None:
    order = run(make_order("staff-only", owner=user))

    assert (order.status, order.error["status_code"]) == (OrderStatus.FAILED, 403)


def test_a_view_answering_4xx_fails_with_its_status_and_json_body() -> None:
    order = run(make_order("answers-404"))

    assert order.status == OrderStatus.FAILED
    assert order.error == {
        "code": "http_error",
        "message": "The view answered 404.",
        "status_code": 404,
        "body": {"detail": "No such thing."},
    }


def test_a_view_that_raises_fails_without_showing_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = run(make_order("raises"))

    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "exception"
    assert "secret" not in json.dumps(order.error)
    assert "a secret that must not reach clients" in caplog.text


def test_fail_on_error_fails_with_its_message_and_logs_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="async_orders"):
        order = run(make_order("fails-on-error"))

    assert order.status == OrderStatus.FAILED
    assert order.error["message"] == "Could not reach the frobnicator."
    assert "10.0.0.7" not in json.dumps(order.error)
    assert "10.0.0.7 refused the connection" in caplog.text


def test_a_redelivered_message_for_a_completed_order_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = run(make_order())
    before = Order.objects.values().get(pk=order.pk)

    with caplog.at_level(logging.INFO, logger="async_orders"):
        run_order(order.pk)

    assert Order.objects.values().get(pk=order.pk) == before
    # The line duplicate messages are counted by, in the workers' logs.
    assert STARTED_NOTHING.search(caplog.text.encode())


@pytest.mark.parametrize("status", [OrderStatus.RUNNING, OrderStatus.FAILED, OrderStatus.CANCELED])
def test_a_message_for_an_order_not_waiting_to_start_is_ignored(status: OrderStatus) -> None:
    order = make_order()
    Order.objects.filter(pk=order.pk).update(status=status)

    run_order(order.pk)

    order.refresh_from_db()
    assert (order.status, order.attempts) == (status, 0)


def test_a_message_for_a_missing_order_is_dropped() -> None:
    run_order("6c1f0c3a-7a8e-4d8a-9d6e-0b1f2a3c4d5e")  # must not raise


def test_a_route_removed_since_the_order_was_placed_fails_the_order() -> None:
    order = make_order()
    Order.objects.filter(pk=order.pk).update(view_name="gone-since")

    order = run(order)

    assert (order.status, order.error["code"]) == (OrderStatus.FAILED, "view_unavailable")


def test_starting_an_order_twice_wins_once() -> None:
    order = make_order()
    twin = Order.objects.get(pk=order.pk)

    assert order.start() is True
    assert twin.start() is False


# --- results never send clients off-site (issue 11, item 7) --------------------------


def redirected_to(location: str) -> Order:
    return run(make_order("redirects", query={"to": location}))


@pytest.mark.parametrize(
    "location",
    ["https://evil.example/", "//evil.example/x", "http://testserver.evil.example/", "https:x"],
)
def test_a_location_off_site_is_stored_but_not_the_resource_url(location: str) -> None:
    order = redirected_to(location)

    assert order.status == OrderStatus.COMPLETED
    assert order.response_status == 302
    assert order.resource_url == f"/async/orders/{order.pk}/result/"


@pytest.mark.parametrize("location", ["/shop/items/1/", "http://testserver/shop/items/1/"])
def test_a_location_on_the_orders_own_site_is_the_resource_url(location: str) -> None:
    assert redirected_to(location).resource_url == location


def test_a_location_on_a_result_allowed_host_is_the_resource_url(settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "RESULT_ALLOWED_HOSTS": [".example.com"]}

    assert redirected_to("https://files.example.com/r/1").resource_url == (
        "https://files.example.com/r/1"
    )


def test_a_redirect_to_the_login_page_fails_the_order_unauthenticated() -> None:
    order = run(make_order("members-only"))

    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "unauthenticated"
    assert order.error["status_code"] == 302
    assert order.resource_url == ""


def test_a_signed_in_owner_runs_a_login_required_view(user: User) -> None:
    order = run(make_order("members-only", owner=user))

    assert order.status == OrderStatus.COMPLETED
    assert body_of(order) == {"member": "alice"}


def test_a_failed_order_keeps_the_progress_it_had_counted(settings: Any) -> None:
    """Progress writes are throttled: the failure itself stores how far the view got."""
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "PROGRESS_INTERVAL": 3600}

    order = run(make_order("fails-midway"))

    assert order.status == OrderStatus.FAILED
    assert (order.progress_current, order.progress_total) == (3, 10)


def test_a_completed_order_is_100_percent_done_without_counting_progress(api: Any) -> None:
    order = run(make_order("echo"))

    progress = api.get(f"/async/orders/{order.pk}/").json()["progress"]

    assert (progress["current"], progress["total"], progress["percent"]) == (0, None, 100.0)
