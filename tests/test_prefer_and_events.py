"""Prefer: respond-async on the POST, and the event stream's HTTP behaviour
(the streaming itself is driven over a real server in test_waiting.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from async_orders.models import Order
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import place

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "prefer", ["respond-async", "wait=10, Respond-Async", "respond-async; x=1"]
)
def test_prefer_respond_async_answers_202_with_location(api: APIClient, prefer: str) -> None:
    response = place(api, headers={"Prefer": prefer})

    order = Order.objects.get()
    assert response.status_code == 202
    assert response["Location"] == f"http://testserver/async/orders/{order.pk}/"
    assert response["Preference-Applied"] == "respond-async"
    assert response.json()["id"] == str(order.pk)


def test_without_the_preference_the_answer_stays_302(api: APIClient) -> None:
    response = place(api, headers={"Prefer": "return=minimal"})

    assert response.status_code == 302
    assert "Preference-Applied" not in response
    assert "Prefer" in response["Vary"]


def events(api: APIClient, order: Order, last_event_id: str | None = None):
    headers = {"HTTP_ACCEPT": "text/event-stream"}
    if last_event_id:
        headers["HTTP_LAST_EVENT_ID"] = last_event_id
    return api.get(f"/async/orders/{order.pk}/events/", **headers)


def test_the_events_of_another_users_order_are_404_json(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))
    api.force_authenticate(user)

    response = events(api, order)

    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


def test_the_events_of_a_finished_order_are_its_final_event(api: APIClient, user: User) -> None:
    api.force_authenticate(user)
    order = make_order(owner=user)
    run_order(order.pk)
    event_id = api.get(f"/async/orders/{order.pk}/")["ETag"].strip('"')

    response = events(api, order)
    text = b"".join(response.streaming_content).decode()

    assert response["Content-Type"] == "text/event-stream"
    assert "no-store" in response["Cache-Control"]
    assert text.startswith("retry: 1000\n\n")
    assert f"id: {event_id}\nevent: completed\ndata: {{" in text
    assert text.count("event:") == 1


def test_a_client_that_has_the_final_event_is_told_to_stop(api: APIClient) -> None:
    order = make_order()
    run_order(order.pk)
    etag = api.get(f"/async/orders/{order.pk}/")["ETag"]

    assert events(api, order, etag.strip('"')).status_code == 204
