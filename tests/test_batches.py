"""POST /async/batches/ and GET/DELETE /async/batches/<id>/: all or nothing, one query a poll."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order

pytestmark = pytest.mark.django_db


def place_batch(api: APIClient, orders: Any, **extra: Any) -> Any:
    return api.post("/async/batches/", {"orders": orders}, format="json", **extra)


def poll(api: APIClient, response: Any, **extra: Any) -> Any:
    return api.get(response["Location"], **extra)


def test_a_batch_places_every_order_and_redirects_to_the_batch(
    api: APIClient, user: User, published: list[uuid.UUID], django_capture_on_commit_callbacks: Any
) -> None:
    api.force_authenticate(user)
    orders = [{"view": "echo-int", "kwargs": {"number": n}} for n in range(3)]

    with django_capture_on_commit_callbacks(execute=True):
        placed = place_batch(api, orders)

    assert placed.status_code == 302
    body = placed.json()
    assert placed["Location"] == body["url"]
    assert body["total"] == 3
    assert body["counts"]["queued"] == 3
    assert body["percent"] == 0.0
    placed_ids = [item["id"] for item in body["orders"]]
    stored = Order.objects.filter(batch_id=body["id"]).order_by("created_at")
    assert [str(order.pk) for order in stored] == placed_ids
    assert [order.kwargs for order in stored] == [{"number": n} for n in range(3)]
    assert sorted(map(str, published)) == sorted(placed_ids)
    assert api.get(body["orders"][0]["url"]).json()["batch"] == body["url"]


def test_one_invalid_item_refuses_the_whole_batch_naming_each_bad_field(
    api: APIClient, published: list[uuid.UUID]
) -> None:
    orders = [
        {"view": "echo-int", "kwargs": {"number": 1}},
        {"view": "echo-int", "kwargs": {"number": "x"}},
        {"view": "no-such-view"},
        {"view": "echo", "labels": {"k": 5}},
        {"kwargs": {}},
    ]

    refused = place_batch(api, orders)

    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_batch"
    assert set(refused.json()["fields"]) == {
        "orders.1.kwargs.number",
        "orders.2.view",
        "orders.3.labels.k",
        "orders.4.view",
    }
    assert not Order.objects.exists()
    assert published == []


@pytest.mark.parametrize("orders", [[], "echo", None])
def test_a_batch_without_a_list_of_orders_is_a_400(api: APIClient, orders: Any) -> None:
    refused = place_batch(api, orders)

    assert refused.status_code == 400
    assert "orders" in refused.json()["fields"]


def test_a_batch_larger_than_max_batch_is_refused(api: APIClient, settings: Any) -> None:
    settings.ASYNC_ORDERS = {"MAX_BATCH": 2}

    refused = place_batch(api, [{"view": "echo"}] * 3)

    assert refused.status_code == 400
    assert "MAX_BATCH" in refused.json()["fields"]["orders"][0]
    assert not Order.objects.exists()


def test_the_active_orders_cap_counts_a_batch_item_by_item(
    api: APIClient, user: User, settings: Any, published: list[uuid.UUID]
) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 3}
    api.force_authenticate(user)
    assert place_batch(api, [{"view": "echo"}] * 2).status_code == 302

    refused = place_batch(api, [{"view": "echo"}] * 2)

    assert refused.status_code == 429
    assert Order.objects.count() == 2  # the refused batch left nothing behind
    assert place_batch(api, [{"view": "echo"}]).status_code == 302


def test_a_batch_is_202_while_unfinished_and_200_once_every_order_is(
    api: APIClient, published: list[uuid.UUID]
) -> None:
    placed = place_batch(api, [{"view": "echo"}, {"view": "answers-404"}])
    first, second = (uuid.UUID(item["id"]) for item in placed.json()["orders"])

    run_order(first)
    midway = poll(api, placed)
    run_order(second)
    done = poll(api, placed)

    assert midway.status_code == 202
    assert midway["Retry-After"] == "1"
    assert midway.json()["counts"]["completed"] == 1
    assert midway.json()["percent"] == 50.0
    assert [item["percent"] for item in midway.json()["orders"]] == [100.0, None]
    assert done.status_code == 200
    assert done.json()["finished"] is True
    assert done.json()["counts"] == {
        **dict.fromkeys(OrderStatus.values, 0),
        "completed": 1,
        "failed": 1,
    }
    assert done.json()["percent"] == 100.0


def test_an_unchanged_batch_is_304_for_its_etag(api: APIClient, published: list[uuid.UUID]) -> None:
    placed = place_batch(api, [{"view": "echo"}])
    etag = poll(api, placed)["ETag"]

    assert poll(api, placed, HTTP_IF_NONE_MATCH=etag).status_code == 304
    run_order(uuid.UUID(placed.json()["orders"][0]["id"]))
    assert poll(api, placed, HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_somebody_elses_batch_is_404_like_an_unknown_one(
    api: APIClient, user: User, published: list[uuid.UUID]
) -> None:
    api.force_authenticate(user)
    placed = place_batch(api, [{"view": "echo"}])
    api.force_authenticate(User.objects.create_user("bob"))

    assert poll(api, placed).status_code == 404
    assert api.delete(placed["Location"]).status_code == 404
    assert api.get(f"/async/batches/{uuid.uuid4()}/").json()["code"] == "batch_not_found"
    assert api.get("/async/batches/not-a-uuid/").status_code == 404


def test_delete_cancels_every_unfinished_order_of_the_batch(
    api: APIClient, published: list[uuid.UUID]
) -> None:
    placed = place_batch(api, [{"view": "echo"}] * 3)
    first = uuid.UUID(placed.json()["orders"][0]["id"])
    run_order(first)

    canceled = api.delete(placed["Location"])

    assert canceled.status_code == 200
    assert canceled.json()["counts"]["canceled"] == 2
    assert canceled.json()["counts"]["completed"] == 1
    assert api.delete(placed["Location"]).json()["code"] == "batch_finished"


def test_a_batch_events_stream_ends_with_finished_once_every_order_is(
    api: APIClient, published: list[uuid.UUID]
) -> None:
    placed = place_batch(api, [{"view": "echo"}] * 2)
    for item in placed.json()["orders"]:
        run_order(uuid.UUID(item["id"]))

    stream = api.get(placed["Location"] + "events/")
    text = b"".join(stream.streaming_content).decode()

    assert stream["Content-Type"] == "text/event-stream"
    assert "event: finished" in text
    assert '"percent": 100.0' in text or '"percent":100.0' in text
