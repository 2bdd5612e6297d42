"""``async_orders.client`` against a live server and a real Celery worker, as a script
would use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User

from async_orders.client import (
    APIError,
    Batch,
    Client,
    Order,
    OrderCanceled,
    OrderFailed,
    OrderTimeout,
)
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]


@pytest.fixture
def orders_client(live_server: Any) -> Client:
    return Client(live_server.url)


def gated(orders_client: Client, gate: Path, steps: int) -> Order:
    """An order that does step ``n`` only once the file ``gate/n`` exists."""
    return orders_client.place("gated", kwargs={"steps": steps}, data={"gate": str(gate)})


def open_gates(gate: Path, steps: int) -> None:
    for step in range(steps):
        (gate / str(step)).touch()


def test_run_returns_the_completed_order_and_result_replays_the_view(orders_client: Client) -> None:
    order = orders_client.run("echo-int", kwargs={"number": 5}, query={"q": "x"}, timeout=30)

    assert order.status == "completed"
    assert order.percent == 100.0  # done, though the view counted no progress
    replayed = orders_client.result(order)
    assert replayed.status_code == 200
    assert replayed.json()["kwargs"] == {"number": "5"}
    assert replayed.json()["query"] == {"q": "x"}


def test_the_progress_callback_sees_every_state_up_to_the_last(
    orders_client: Client, tmp_path: Path
) -> None:
    seen: list[tuple[str, int]] = []

    def on_progress(order: Order) -> None:
        seen.append((order.status, order.progress["current"]))
        if order.status == "running":  # let the view take exactly one more step
            (tmp_path / str(order.progress["current"])).touch()

    done = orders_client.wait(
        gated(orders_client, tmp_path, 3), timeout=30, on_progress=on_progress
    )

    running = [current for status, current in seen if status == "running"]
    assert running == sorted(running)
    # Long-polling, it may also see the loop's last report (3 of 3) before completion.
    assert {0, 1, 2} <= set(running) <= {0, 1, 2, 3}
    assert seen[-1] == ("completed", 3)
    assert done.progress == {"current": 3, "total": 3, "percent": 100.0}


def test_a_failed_order_raises_order_failed_carrying_its_error(orders_client: Client) -> None:
    with pytest.raises(OrderFailed) as failed:
        orders_client.run("answers-404", timeout=30)

    assert failed.value.order.status == "failed"
    assert failed.value.error == {
        "code": "http_error",
        "message": "The view answered 404.",
        "status_code": 404,
        "body": {"detail": "No such thing."},
    }


def test_the_fail_on_error_message_is_the_exception_message(orders_client: Client) -> None:
    with pytest.raises(OrderFailed, match=r"^Could not reach the frobnicator\.$"):
        orders_client.run("fails-on-error", timeout=30)


def test_canceling_a_running_order_makes_wait_raise_order_canceled(
    orders_client: Client, tmp_path: Path
) -> None:
    order = gated(orders_client, tmp_path, 3)
    # The view's loop has begun (it reported its total), not just the order claimed: a
    # cancel before the loop's first checkpoint stops it with nothing done.
    wait_until(lambda: orders_client.get(order).progress["total"] == 3, what="the loop to begin")

    asked = orders_client.cancel(order)
    (tmp_path / "0").touch()  # the view ends its step, then notices it should stop

    assert (asked.status, asked.raw["cancel_requested"]) == ("running", True)
    with pytest.raises(OrderCanceled) as canceled:
        orders_client.wait(order, timeout=30)
    assert canceled.value.order.progress["current"] == 1


def test_canceling_a_scheduled_order_is_immediate(orders_client: Client) -> None:
    order = orders_client.place("echo", countdown=3600)

    assert orders_client.cancel(order).status == "canceled"
    with pytest.raises(OrderCanceled):
        orders_client.wait(order, timeout=5)


def test_canceling_a_finished_order_is_an_api_error(orders_client: Client) -> None:
    order = orders_client.run("echo", timeout=30)

    with pytest.raises(APIError) as refused:
        orders_client.cancel(order)
    assert (refused.value.status_code, refused.value.code) == (409, "order_finished")


def test_wait_gives_up_after_its_timeout_and_leaves_the_order_running(
    orders_client: Client, tmp_path: Path
) -> None:
    order = gated(orders_client, tmp_path, 1)
    try:
        with pytest.raises(OrderTimeout) as late:
            orders_client.wait(order, timeout=0.3)
        assert isinstance(late.value, TimeoutError)
        assert not late.value.order.is_finished
    finally:
        open_gates(tmp_path, 1)  # free the worker for the next test
    assert orders_client.wait(order, timeout=30).status == "completed"


def test_wait_sleeps_as_long_as_retry_after_says_within_the_cap(
    live_server: Any, tmp_path: Path
) -> None:
    sleeps: dict[str, list[float]] = {"uncapped": [], "capped": []}

    def recorder(name: str) -> Any:
        def sleep(seconds: float) -> None:
            sleeps[name].append(seconds)
            open_gates(tmp_path / name, 1)  # after the first poll, let it finish

        return sleep

    for name, cap in (("uncapped", 30.0), ("capped", 0.25)):
        (tmp_path / name).mkdir()
        orders_client = Client(
            live_server.url, max_poll_interval=cap, long_poll=0, sleep=recorder(name)
        )
        assert (
            orders_client.wait(gated(orders_client, tmp_path / name, 1), timeout=30).status
            == "completed"
        )

    assert sleeps["uncapped"]
    assert set(sleeps["uncapped"]) == {1.0}  # the server's Retry-After: 1
    assert set(sleeps["capped"]) == {0.25}


def test_wait_long_polls_each_change_instead_of_sleeping(live_server: Any, tmp_path: Path) -> None:
    sleeps: list[float] = []
    polled: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: polled.append(response.url))
    orders_client = Client(live_server.url, session=session, sleep=sleeps.append)

    def open_the_awaited_gate(order: Order) -> None:
        if order.status == "running" and order.progress["total"] == 2:
            (tmp_path / str(order.progress["current"])).touch()

    order = gated(orders_client, tmp_path, 2)
    done = orders_client.wait(order, timeout=30, on_progress=open_the_awaited_gate)

    assert done.status == "completed"
    assert any("wait=20" in url for url in polled)
    assert set(sleeps) == {0.0}  # every long-poll came back with a change


def test_orders_belong_to_the_sessions_user(live_server: Any, orders_client: Client) -> None:
    User.objects.create_user("alice", password="pw")
    with requests.Session() as session:
        session.auth = ("alice", "pw")
        alices = Client(live_server.url, session=session)
        order = alices.run("echo", timeout=30)

        assert alices.result(order).json()["user"] == "alice"
    with pytest.raises(APIError) as hidden:
        orders_client.get(order.url)
    assert (hidden.value.status_code, hidden.value.code) == (404, "order_not_found")


def test_a_logged_in_session_sends_the_csrf_token_from_its_cookie(live_server: Any) -> None:
    User.objects.create_user("root", password="pw", is_staff=True)
    with requests.Session() as session:
        _log_in(session, live_server.url, "root", "pw")
        logged_in = Client(live_server.url, session=session)
        without_token = Client(live_server.url, session=session, csrf_cookie_name="missing")

        assert logged_in.run("echo", timeout=30).status == "completed"
        with pytest.raises(APIError) as refused:
            without_token.place("echo")
    assert (refused.value.status_code, refused.value.code) == (403, "permission_denied")


def _log_in(session: requests.Session, base: str, username: str, password: str) -> None:
    token = session.get(f"{base}/csrf/", timeout=10).json()["token"]
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    session.post(f"{base}/admin/login/?next=/admin/", data=form, timeout=10)
    assert "sessionid" in session.cookies


def test_an_unknown_view_is_an_api_error(orders_client: Client) -> None:
    with pytest.raises(APIError) as unknown:
        orders_client.place("no-such-view")
    assert (unknown.value.status_code, unknown.value.code) == (404, "unknown_view")


def test_an_idempotency_key_returns_the_same_order(live_server: Any) -> None:
    User.objects.create_user("alice", password="pw")
    with requests.Session() as session:
        session.auth = ("alice", "pw")  # keys are scoped to a orders_client the server knows
        orders_client = Client(live_server.url, session=session)
        first = orders_client.place("echo", idempotency_key="key-1")
        again = orders_client.place("echo", idempotency_key="key-1")

        assert again.id == first.id
        orders_client.wait(first, timeout=30)


def test_place_batch_then_wait_batch_sees_every_order_finish(
    orders_client: Client, tmp_path: Path
) -> None:
    seen: list[float] = []
    orders = [
        {"view": "gated", "kwargs": {"steps": 2}, "data": {"gate": str(tmp_path)}},
        {"view": "echo-int", "kwargs": {"number": 3}, "labels": {"run": "r1"}},
        {"view": "answers-404"},
    ]

    batch = orders_client.place_batch(orders)

    def on_progress(state: Batch) -> None:
        seen.append(state.percent)
        if state.counts["running"] or state.counts["completed"]:
            open_gates(tmp_path, 2)

    done = orders_client.wait_batch(batch, timeout=30, on_progress=on_progress)
    assert batch.total == 3
    assert done.finished
    assert (done.counts["completed"], done.counts["failed"]) == (2, 1)
    assert done.percent == 100.0
    assert seen == sorted(seen)
    assert orders_client.get(done.orders[1]["url"]).labels == {"run": "r1"}
    with pytest.raises(APIError) as finished:
        orders_client.cancel_batch(done)
    assert finished.value.code == "batch_finished"


def test_an_invalid_batch_item_is_an_api_error_naming_it(orders_client: Client) -> None:
    with pytest.raises(APIError) as refused:
        orders_client.place_batch([{"view": "echo"}, {"view": "no-such-view"}])

    assert refused.value.code == "invalid_batch"
    assert list(refused.value.fields) == ["orders.1.view"]


def test_a_failed_order_is_rerun_and_its_attempts_listed(live_server: Any) -> None:
    User.objects.create_user("carol", password="pw")
    session = requests.Session()
    session.auth = ("carol", "pw")
    orders_client = Client(live_server.url, session=session)
    with pytest.raises(OrderFailed) as failed:
        orders_client.run("flaky", data={"succeed_on": 9}, timeout=30, order_timeout=60)
    order = failed.value.order

    again = orders_client.rerun(order, idempotency_key="again")

    assert order.raw["timeout"] == 60
    assert [attempt["outcome"] for attempt in orders_client.attempts(order)] == ["failed"] * 3
    assert (again.raw["rerun_of"], again.raw["timeout"]) == (order.url, 60)
    assert orders_client.rerun(order, idempotency_key="again").id == again.id
    with pytest.raises(OrderFailed):
        orders_client.wait(again, timeout=30)
    with pytest.raises(APIError) as refused:
        orders_client.rerun(orders_client.run("echo", timeout=30))
    assert (refused.value.status_code, refused.value.code) == (409, "order_not_rerunnable")
