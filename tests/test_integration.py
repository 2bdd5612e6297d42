"""The whole flow over HTTP: a live server, ``requests``, and a real Celery worker
process on the chosen broker and database (real Redis + PostgreSQL when they answer,
always under CI; SQLite + embedded Redis otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User

from async_orders.broker.publishing import send_order
from async_orders.models import Order
from tests.helpers import place_live, redis_client, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]


@pytest.fixture
def base(live_server: Any) -> str:
    return live_server.url


@pytest.fixture
def http() -> requests.Session:
    with requests.Session() as session:
        yield session


@pytest.fixture
def alice(http: requests.Session) -> requests.Session:
    User.objects.create_user("alice", password="pw")
    http.auth = ("alice", "pw")
    return http


def until_finished(http: requests.Session, order_url: str) -> requests.Response:
    def finished() -> requests.Response | None:
        response = http.get(order_url, timeout=10)
        return response if response.status_code != 202 else None

    return wait_until(finished, timeout=30, what=f"{order_url} to finish")


def test_a_drf_create_ordered_over_http_ends_201_at_the_created_object(
    alice: requests.Session, base: str
) -> None:
    placed = place_live(base, "shop:item-list", http=alice, data={"name": "margherita"})

    assert [r.status_code for r in placed.history] == [302]
    assert placed.status_code in (201, 202)  # the redirect was followed with a GET
    done = until_finished(alice, placed.url)
    assert done.status_code == 201
    created = alice.get(done.headers["Location"], timeout=10)
    assert created.status_code == 200
    assert created.json()["name"] == "margherita"
    assert done.json()["resource_url"] == done.headers["Location"] == created.json()["url"]
    assert done.headers["Location"].startswith(f"{base}/shop/items/")


def test_progress_is_seen_mid_run(http: requests.Session, base: str, tmp_path: Path) -> None:
    order_url = place_live(
        base, "gated", http=http, kwargs={"steps": 3}, data={"gate": str(tmp_path)}
    ).url

    def progress_is(current: int) -> bool:
        body = http.get(order_url, timeout=10).json()
        return body["status"] == "running" and body["progress"]["current"] == current

    wait_until(lambda: progress_is(0), what="the order to start")
    for step in range(2):
        (tmp_path / str(step)).touch()
        wait_until(lambda step=step: progress_is(step + 1), what=f"progress {step + 1}")
    polled = http.get(order_url, timeout=10)
    assert polled.status_code == 202
    assert polled.headers["Retry-After"] == "1"
    assert polled.json()["progress"] == {"current": 2, "total": 3, "percent": 66.7}
    assert polled.json()["message"] == "stepping"

    (tmp_path / "2").touch()
    done = until_finished(http, order_url)
    assert done.status_code == 201
    assert http.get(done.headers["Location"], timeout=10).json() == {"steps": 3}


@pytest.mark.parametrize(
    ("view", "code", "message", "status_code"),
    [
        ("answers-404", "http_error", "The view answered 404.", 404),
        ("raises", "exception", "The view raised an error.", None),
        ("fails-on-error", "exception", "Could not reach the frobnicator.", None),
        ("staff-only", "http_error", "The view answered 403.", 403),
    ],
)
def test_a_failing_view_ends_failed_with_200_and_its_error(
    http: requests.Session, base: str, view: str, code: str, message: str, status_code: int
) -> None:
    done = until_finished(http, place_live(base, view, http=http).url)

    assert done.status_code == 200
    assert done.json()["status"] == "failed"
    error = done.json()["error"]
    assert (error["code"], error["message"], error["status_code"]) == (code, message, status_code)


def test_a_redelivered_message_for_a_completed_order_changes_nothing(
    http: requests.Session, base: str
) -> None:
    first = until_finished(http, place_live(base, "echo", http=http).url).json()
    before = Order.objects.values().get(pk=first["id"])

    send_order(Order.objects.get(pk=first["id"]))  # the same message again, as a redelivery
    # The solo worker takes messages in order: once a later order finished, the
    # redelivered message has been consumed.
    until_finished(http, place_live(base, "echo", http=http).url)

    assert Order.objects.values().get(pk=first["id"]) == before


def test_canceling_a_running_order_stops_it_at_its_next_step(
    http: requests.Session, base: str, tmp_path: Path
) -> None:
    order_url = place_live(
        base, "gated", http=http, kwargs={"steps": 3}, data={"gate": str(tmp_path)}
    ).url
    wait_until(lambda: http.get(order_url, timeout=10).json()["status"] == "running")

    asked = http.delete(order_url, timeout=10)
    (tmp_path / "0").touch()  # the view finishes its step, then notices
    done = until_finished(http, order_url)

    assert asked.status_code == 202
    assert done.status_code == 200
    assert done.json()["status"] == "canceled"
    assert done.json()["progress"]["current"] == 1
    assert http.delete(order_url, timeout=10).status_code == 409


def test_a_scheduled_order_waits_with_202_then_runs(http: requests.Session, base: str) -> None:
    placed = place_live(base, "echo", http=http, countdown=1.5)

    assert placed.status_code == 202
    assert placed.json()["status"] == "scheduled"
    assert int(placed.headers["Retry-After"]) >= 1
    done = until_finished(http, placed.url)
    body = done.json()
    assert done.status_code == 201
    assert body["started_at"] >= body["run_at"]


def test_a_retried_view_completes_through_the_worker(http: requests.Session, base: str) -> None:
    done = until_finished(http, place_live(base, "flaky", http=http, data={"succeed_on": 3}).url)

    assert done.status_code == 201
    assert done.json()["attempts"] == 3
    assert http.get(done.headers["Location"], timeout=10).json() == {"attempts": 3}


def test_a_views_queue_option_routes_its_messages(
    http: requests.Session, base: str, broker: str
) -> None:
    client = redis_client(broker)
    client.delete("async-orders-tests-routed")

    place_live(base, "routed", http=http)

    assert client.llen("async-orders-tests-routed") == 1
    client.delete("async-orders-tests-routed")
