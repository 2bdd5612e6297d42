"""POST /async/<view_name>/order/: what is accepted, and the 4xx for what is not."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from async_orders.envelope import EnvelopeSerializer
from async_orders.models import Order, OrderStatus
from tests.helpers import place

pytestmark = pytest.mark.django_db


def test_place_answers_302_to_the_order_with_its_representation(api: APIClient) -> None:
    response = place(api, "echo-int", {"kwargs": {"number": 5}})

    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"http://testserver/async/orders/{order.pk}/"
    assert response.json()["id"] == str(order.pk)
    assert response.json()["status"] == "queued"
    assert order.status == OrderStatus.QUEUED


def test_the_envelope_is_stored_as_validated(api: APIClient, user: User) -> None:
    api.force_authenticate(user)
    envelope = {
        "kwargs": {"number": 7},
        "method": "get",
        "query": {"page": 2, "tags": ["a", "b"]},
        "data": {"any": ["json", 1]},
    }
    place(api, "echo-int", envelope, HTTP_HOST="shop.example:8443", secure=True)

    order = Order.objects.get()
    assert (order.view_name, order.method, order.kwargs) == ("echo-int", "GET", {"number": 7})
    assert order.query == {"page": 2, "tags": ["a", "b"]}
    assert order.data == {"any": ["json", 1]}
    assert order.owner == user
    assert order.origin == "https://shop.example:8443"


def test_an_empty_body_is_an_empty_envelope(api: APIClient) -> None:
    response = api.post("/async/echo/order/", content_type="application/json")

    assert response.status_code == 302
    assert Order.objects.get().method == "POST"


def test_the_method_defaults_to_the_one_the_view_declares(api: APIClient) -> None:
    place(api, "cbv")

    assert Order.objects.get().method == "PUT"


def test_a_view_listed_in_settings_is_schedulable(api: APIClient) -> None:
    assert place(api, "listed-in-settings").status_code == 302


def test_a_namespaced_drf_viewset_action_is_schedulable(api: APIClient) -> None:
    response = place(api, "shop:item-list", {"data": {"name": "pizza"}})

    assert response.status_code == 302
    assert Order.objects.get().view_name == "shop:item-list"


@pytest.mark.parametrize(
    ("view_name", "kwargs"),
    [
        ("echo-int", {"number": 12}),
        ("echo-slug", {"slug": "a-slug_1"}),
        ("echo-uuid", {"token": "9f1c7f7e-2b55-4d4c-8d0e-2b0a8f7a1c11"}),
    ],
)
def test_route_converters_accept_fitting_kwargs(
    api: APIClient, view_name: str, kwargs: dict[str, object]
) -> None:
    assert place(api, view_name, {"kwargs": kwargs}).status_code == 302


def test_unknown_view_is_404_like_unexposed_view(api: APIClient) -> None:
    unknown = place(api, "no-such-view")
    unexposed = place(api, "not-opted-in")

    assert unknown.status_code == unexposed.status_code == 404
    assert unknown.json()["code"] == unexposed.json()["code"] == "unknown_view"
    assert unexposed.json()["detail"] == unknown.json()["detail"].replace(
        "no-such-view", "not-opted-in"
    )
    assert not Order.objects.exists()


def test_an_unexposed_view_is_404_before_its_kwargs_are_checked(api: APIClient) -> None:
    response = place(api, "not-opted-in", {"kwargs": {"bogus": 1}, "nonsense": True})

    assert response.status_code == 404


def test_a_viewset_method_whose_action_is_not_opted_in_is_400(api: APIClient) -> None:
    response = place(api, "shop:item-list", {"method": "GET"})

    assert response.status_code == 400
    assert "method" in response.json()["fields"]


def test_a_function_view_opted_in_with_a_method_is_400_for_another(api: APIClient) -> None:
    response = place(api, "post-only", {"method": "GET"})

    assert response.status_code == 400
    assert "method" in response.json()["fields"]


@pytest.mark.parametrize(
    ("view_name", "envelope", "field"),
    [
        ("echo-int", [1, 2], "body"),
        ("echo-int", "just a string", "body"),
        ("echo-int", {"kwargs": {"number": 1}, "colour": "red"}, "colour"),
        ("echo-int", {"kwargs": {"number": "five"}}, "kwargs.number"),
        ("echo-int", {"kwargs": {"number": -3}}, "kwargs.number"),
        ("echo-int", {"kwargs": {"number": 1, "extra": 2}}, "kwargs.extra"),
        ("echo-int", {}, "kwargs"),
        ("echo-slug", {"kwargs": {"slug": "not a slug!"}}, "kwargs.slug"),
        ("echo-uuid", {"kwargs": {"token": "1234"}}, "kwargs.token"),
        ("echo-int", {"kwargs": [5]}, "kwargs"),
        ("echo", {"query": {"nested": {"a": 1}}}, "query"),
        ("cbv", {"method": "DELETE"}, "method"),
        ("echo", {"eta": "next tuesday"}, "eta"),
        ("echo", {"countdown": -1}, "countdown"),
        ("echo", {"countdown": 5, "eta": "2030-01-01T00:00:00Z"}, "eta"),
    ],
)
def test_an_invalid_envelope_is_400_naming_the_field(
    api: APIClient, view_name: str, envelope: object, field: str
) -> None:
    response = place(api, view_name, envelope)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_envelope"
    assert field in body["fields"]
    assert field in body["detail"]
    assert not Order.objects.exists()


def test_a_body_that_is_not_json_is_415(api: APIClient) -> None:
    response = api.post("/async/echo/order/", "kwargs=1", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert not Order.objects.exists()


def test_a_body_without_content_type_is_415_not_ignored(api: APIClient) -> None:
    response = api.generic("POST", "/async/echo/order/", b'{"query": {"a": 1}}', content_type="")

    assert response.status_code == 415
    assert not Order.objects.exists()


def test_malformed_json_is_400(api: APIClient) -> None:
    response = api.post("/async/echo/order/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_countdown_schedules_the_order(api: APIClient) -> None:
    response = place(api, "echo", {"countdown": 60})

    order = Order.objects.get()
    assert response.json()["status"] == "scheduled"
    assert order.status == OrderStatus.SCHEDULED
    assert 55 < (order.run_at - order.created_at).total_seconds() <= 61


def test_an_order_is_published_only_after_its_transaction_commits(
    api: APIClient, django_capture_on_commit_callbacks, published: list[uuid.UUID]
) -> None:

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        place(api, "echo")
    assert published == []

    for callback in callbacks:
        callback()
    assert published == [Order.objects.get().pk]


@pytest.mark.parametrize("eta", ["2000-01-01T00:00:00Z", "0201-08-02T02:46:46Z"])
def test_an_eta_in_the_past_queues_the_order_now(api: APIClient, eta: str) -> None:
    response = place(api, "echo", {"eta": eta})

    assert response.status_code == 302
    assert response.json()["status"] == "queued"
    assert Order.objects.get().run_at is None


def test_a_view_named_orders_can_be_ordered(api: APIClient, settings) -> None:
    response = api.post("/async/orders/order/", {}, format="json")

    assert response.status_code == 404  # no such view here, but routed to the POST
    assert response.json()["code"] == "unknown_view"


def test_each_envelope_is_validated_with_fields_of_its_own() -> None:
    """The declared fields are copied for each serializer and never bound themselves."""
    bad = EnvelopeSerializer(data={"args": "not a list", "countdown": True})
    good = EnvelopeSerializer(data={"args": [1], "countdown": 5})

    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert set(bad.errors) == {"args", "countdown"}
    for name, declared in EnvelopeSerializer._declared_fields.items():
        assert declared.parent is None
        assert bad.fields[name] is not good.fields[name]
        assert bad.fields[name].parent is bad
        assert good.fields[name].parent is good
