"""Waiting without polling, over real servers: long-poll and server-sent events under
WSGI (pytest-django's live server) and ASGI (uvicorn), and webhooks delivered by the
real Celery worker to a receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.db import connection

from async_orders import notify
from async_orders.signing import SIGNATURE_HEADER, verify_signature
from async_orders.views.waiting import room
from tests.helpers import WebhookReceiver, place_live, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

RESPOND_ASYNC = {"Prefer": "respond-async"}
#: Concurrent waiters of one client: LONG_POLL_MAX_WAITERS_PER_CLIENT by default.
WAITERS = 2
LATENCY_STEPS = 50
LATENCY_LIMIT = 0.1


@pytest.fixture(params=["wsgi", "asgi"])
def server(request: pytest.FixtureRequest) -> str:
    """Base URL of the test project under a WSGI, then an ASGI server."""
    if request.param == "wsgi":
        # The live server runs in this process, and so shares its waiting room: the
        # event streams an earlier test closed on the client side hold their places
        # until the server next writes to them, and would crowd this test's waiters out.
        wait_until(lambda: room.waiting(blocking=True) == 0, timeout=30, what="no waiter left")
        return request.getfixturevalue("live_server").url
    return request.getfixturevalue("asgi_server")


def place_async(base: str, view: str, **envelope: Any) -> str:
    """Place an order (answered 202 as asked with Prefer); its URL."""
    placed = place_live(base, view, headers=RESPOND_ASYNC, **envelope)
    assert placed.status_code == 202
    return placed.headers["Location"]


def gated(base: str, gate: Path, steps: int) -> str:
    return place_async(base, "gated", kwargs={"steps": steps}, data={"gate": str(gate)})


def running_etag(order_url: str) -> str | None:
    """The ETag once the view has started its loop (its first progress report is stored)."""
    polled = requests.get(order_url, timeout=10)
    body = polled.json()
    started = body["status"] == "running" and body["progress"]["total"] is not None
    return polled.headers["ETag"] if started else None


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """The gates of a ``gated`` order; all opened at the end, so that a failing test
    never leaves the (solo) worker stuck in the view, delaying the tests after it."""
    yield tmp_path
    for step in range(LATENCY_STEPS):
        (tmp_path / str(step)).touch()


def long_poll(order_url: str, etag: str, wait: float = 10) -> tuple[requests.Response, float]:
    """GET ?wait= with the ETag the client has; the answer and when it arrived."""
    headers = {"If-None-Match": etag}
    response = requests.get(order_url, params={"wait": wait}, headers=headers, timeout=wait + 10)
    return response, time.perf_counter()


@pytest.fixture
def subscribers() -> Iterator[Callable[[str], int]]:
    """How many clients are subscribed to an order's channel (they wait on it)."""
    url = notify.redis_url()
    assert url, "these tests drive the Redis notifications"
    client = redis.Redis.from_url(url)
    yield lambda order_url: client.pubsub_numsub(notify.channel(_order_id(order_url)))[0][1]
    client.close()


def _order_id(order_url: str) -> str:
    return order_url.rstrip("/").rsplit("/", 1)[1]


@pytest.mark.latency
def test_a_long_poll_answers_within_100_ms_of_each_progress_write(
    server: str, gate: Path, subscribers: Callable[[str], int], capsys: Any
) -> None:
    order_url = gated(server, gate, LATENCY_STEPS)
    etag = wait_until(lambda: running_etag(order_url), what="the order to start")
    delays = []
    with ThreadPoolExecutor(1) as pool:
        for step in range(LATENCY_STEPS):
            waiting = pool.submit(long_poll, order_url, etag)
            wait_until(lambda: subscribers(order_url) == 1, what="the long-poll to wait")
            opened = time.perf_counter()
            (gate / str(step)).touch()
            response, answered = waiting.result(timeout=20)
            assert response.status_code in (201, 202)
            assert response.json()["progress"]["current"] == step + 1
            delays.append(answered - opened)
            etag = response.headers["ETag"]
    report_delays(capsys, f"long-poll ({server})", delays)


def report_delays(capsys: Any, what: str, delays: list[float]) -> None:
    """Print the delays from gate opened to client answered; most must be under 100 ms."""
    median, worst = statistics.median(delays) * 1000, max(delays) * 1000
    with capsys.disabled():
        print(f"\n{what}: {len(delays)} changes, median {median:.1f} ms, max {worst:.1f} ms")
    assert statistics.median(delays) < LATENCY_LIMIT
    assert sorted(delays)[int(len(delays) * 0.9)] < LATENCY_LIMIT


def test_a_long_poll_answers_the_unchanged_202_after_the_wait(server: str, gate: Path) -> None:
    order_url = gated(server, gate, 1)
    etag = wait_until(lambda: running_etag(order_url), what="the order to start")
    started = time.perf_counter()

    response = requests.get(order_url, params={"wait": 0.5}, timeout=10)

    assert 0.5 <= time.perf_counter() - started < 3
    assert response.status_code == 202
    assert response.headers["ETag"] == etag
    (gate / "0").touch()


def test_a_long_poll_falls_back_to_reading_the_database(
    live_server: Any, settings: Any, gate: Path
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "NOTIFY_REDIS_URL": ""}
    order_url = gated(live_server.url, gate, 1)
    etag = wait_until(lambda: running_etag(order_url), what="the order to start")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(long_poll, order_url, etag)
        (gate / "0").touch()
        response, _ = waiting.result(timeout=20)

    assert response.status_code in (201, 202)
    assert response.json()["progress"]["current"] == 1


class EventStreamClient:
    """A minimal ``text/event-stream`` reader on :mod:`http.client`, line by line."""

    def __init__(self, url: str, last_event_id: str | None = None, timeout: float = 20) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", parts.path, headers=headers)
        self.response = self.connection.getresponse()

    def next_block(self) -> list[str] | None:
        """The lines up to the next blank line; ``None`` when the stream has ended."""
        lines: list[str] = []
        while line := self.response.readline():
            text = line.decode().rstrip("\n")
            if text:
                lines.append(text)
            elif lines:
                return lines
        return None

    def next_event(self) -> dict[str, Any] | None:
        """The next event (comments and ``retry:`` skipped); ``None`` at the end."""
        while (block := self.next_block()) is not None:
            fields = dict(line.split(": ", 1) for line in block if not line.startswith(":"))
            if "event" in fields:
                return {**fields, "data": json.loads(fields["data"])}
        return None

    def read_until(self, condition: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Events up to and including the first that meets ``condition``."""
        events = []
        while (event := self.next_event()) is not None:
            events.append(event)
            if condition(event):
                return events
        pytest.fail(f"The stream ended before the condition was met; it sent {events}")

    def close(self) -> None:
        self.connection.close()


def progress_is(current: int) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["data"]["progress"]["current"] == current


def test_the_event_stream_shows_each_progress_in_order_then_the_final_event(
    server: str, gate: Path
) -> None:
    order_url = gated(server, gate, 3)
    with closing(EventStreamClient(f"{order_url}events/")) as stream:
        assert stream.response.status == 200
        events = stream.read_until(lambda event: event["data"]["status"] == "running")
        for step in range(2):
            (gate / str(step)).touch()
            events += stream.read_until(progress_is(step + 1))
        (gate / "2").touch()  # the last step's progress may come with the final event
        events += stream.read_until(lambda event: event["event"] != "progress")
        ended = stream.next_event() is None

    currents = [event["data"]["progress"]["current"] for event in events]
    assert currents == sorted(currents)
    assert {1, 2, 3} <= set(currents)
    assert {event["event"] for event in events[:-1]} == {"progress"}
    assert events[-1]["event"] == "completed"
    assert events[-1]["data"] == requests.get(order_url, timeout=10).json()
    assert ended


@pytest.mark.latency
def test_an_event_stream_sees_each_progress_write_within_100_ms(
    server: str, gate: Path, capsys: Any
) -> None:
    order_url = gated(server, gate, LATENCY_STEPS)
    delays = []
    with closing(EventStreamClient(f"{order_url}events/")) as stream:
        stream.read_until(lambda event: event["data"]["status"] == "running")
        for step in range(LATENCY_STEPS):
            opened = time.perf_counter()
            (gate / str(step)).touch()
            stream.read_until(progress_is(step + 1))
            delays.append(time.perf_counter() - opened)
    report_delays(capsys, f"event stream ({server})", delays)


def test_a_reconnecting_event_stream_resumes_after_the_last_event_id(
    server: str, gate: Path
) -> None:
    order_url = gated(server, gate, 2)
    with closing(EventStreamClient(f"{order_url}events/")) as stream:
        # The view's first progress report, not just "running": the next change is step 1.
        last_id = stream.read_until(lambda event: event["data"]["progress"]["total"] == 2)[-1]["id"]
    (gate / "0").touch()

    with closing(EventStreamClient(f"{order_url}events/", last_event_id=last_id)) as stream:
        resumed = stream.next_event()
        (gate / "1").touch()
        final = stream.read_until(lambda event: event["event"] != "progress")[-1]

    assert resumed is not None
    assert resumed["id"] != last_id
    assert resumed["data"]["progress"]["current"] >= 1
    assert final["event"] == "completed"
    told_to_stop = requests.get(
        f"{order_url}events/", headers={"Last-Event-ID": final["id"]}, timeout=10
    )
    assert told_to_stop.status_code == 204


def test_a_quiet_event_stream_sends_heartbeats(live_server: Any, settings: Any, gate: Path) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "SSE_HEARTBEAT": 0.2}
    order_url = gated(live_server.url, gate, 1)
    wait_until(lambda: running_etag(order_url), what="the order to start")

    with closing(EventStreamClient(f"{order_url}events/")) as stream:
        blocks = [stream.next_block() for _ in range(4)]  # retry, the event, 2 heartbeats
    (gate / "0").touch()

    assert blocks[-2:] == [[": heartbeat"], [": heartbeat"]]


def test_the_event_stream_of_another_users_order_is_404(
    live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user("bob", password="pw")
    order_url = place_async(live_server.url, "echo")
    token = base64.b64encode(b"bob:pw").decode()

    with closing(EventStreamClient(f"{order_url}events/")) as anonymous:
        assert anonymous.response.status == 200
    response = requests.get(
        f"{order_url}events/", headers={"Authorization": f"Basic {token}"}, timeout=10
    )

    assert response.status_code == 404


# --- what waiting costs -------------------------------------------------------------------


def database_connections(kind: str) -> int:
    """Connections of the server under test: uvicorn's, or the live server's threads
    (this process's, but for the test's own); never the worker's."""
    role = "tests" if kind == "wsgi" else "asgi"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = %s AND pid <> pg_backend_pid()",
            [f"async-orders-{role}"],
        )
        return int(cursor.fetchone()[0])


def long_polls(order_url: str, count: int) -> Iterator[None]:
    with ThreadPoolExecutor(count) as pool:
        for _ in range(count):
            pool.submit(requests.get, order_url, params={"wait": 20}, timeout=30)
        yield
        requests.delete(order_url, timeout=10)  # the change that ends every wait


def event_streams(order_url: str, count: int) -> Iterator[None]:
    streams = [EventStreamClient(f"{order_url}events/") for _ in range(count)]
    for stream in streams:
        stream.next_event()
    yield
    requests.delete(order_url, timeout=10)  # the change that ends every stream
    for stream in streams:
        stream.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL backends")
@pytest.mark.skipif(
    os.environ.get("ASYNC_ORDERS_TEST_PGBOUNCER") is not None,
    reason="PgBouncer keeps the server connections a waiter's brief reads used pooled; "
    "the main run counts them without it",
)
@pytest.mark.parametrize("waiting", [long_polls, event_streams], ids=["long-poll", "events"])
def test_waiting_clients_hold_no_database_connection(
    server: str,
    subscribers: Callable[[str], int],
    waiting: Callable[..., Iterator[None]],
    request: pytest.FixtureRequest,
) -> None:
    kind = request.node.callspec.params["server"]
    order_url = place_async(server, "echo", countdown=3600)  # nothing changes it meanwhile
    before = database_connections(kind)

    with contextmanager(waiting)(order_url, WAITERS):
        wait_until(lambda: subscribers(order_url) == WAITERS, what="the clients to wait")
        # Subscribed, each waiter reads the order once more (briefly on a connection).
        wait_until(
            lambda: database_connections(kind) <= before,
            timeout=5,
            what="the waiters to hold no database connection",
        )


def test_an_event_stream_ends_after_its_lifetime(live_server: Any, settings: Any) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "SSE_MAX_LIFETIME": 0.5}
    order_url = place_async(live_server.url, "echo", countdown=3600)

    with closing(EventStreamClient(f"{order_url}events/", timeout=5)) as stream:
        first = stream.next_event()
        ended = stream.next_event() is None

    assert first is not None
    assert first["event"] == "progress"
    assert ended


def test_past_the_cap_an_event_stream_sends_the_state_and_ends(
    live_server: Any, settings: Any
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "LONG_POLL_MAX_WAITERS_PER_CLIENT": 0}
    order_url = place_async(live_server.url, "echo", countdown=3600)

    with closing(EventStreamClient(f"{order_url}events/", timeout=5)) as stream:
        events = [stream.next_event(), stream.next_event()]

    assert events[0] is not None
    assert events[0]["data"]["status"] == "scheduled"
    assert events[1] is None


def test_a_webhook_is_retried_after_a_500_then_delivered_signed(
    live_server: Any, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500]
    order_url = place_async(live_server.url, "echo", callback_url=receiver.url)

    wait_until(lambda: len(receiver.received) >= 2, timeout=30, what="the retried webhook")
    deliveries = wait_until(
        lambda: _deliveries(order_url) if len(_deliveries(order_url)) == 2 else None,
        what="the attempts to be recorded",
    )

    secret = django_settings.ASYNC_ORDERS["WEBHOOK_SECRET"]
    for headers, body in receiver.received:
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER])
        assert headers["Content-Type"] == "application/json"
    delivered = json.loads(receiver.received[-1][1])
    assert delivered["url"] == order_url
    assert delivered["status"] == "completed"
    assert [(d["attempt"], d["response_status"], d["delivered"]) for d in deliveries] == [
        (1, 500, False),
        (2, 200, True),
    ]
    assert len(receiver.received) == 2


def _deliveries(order_url: str) -> list[dict[str, Any]]:
    return requests.get(order_url, timeout=10).json()["callback"]["deliveries"]


def test_a_batch_long_poll_answers_when_any_of_its_orders_changes(
    server: str, gate: Path, subscribers: Callable[[str], int]
) -> None:
    orders = [
        {"view": "gated", "kwargs": {"steps": 2}, "data": {"gate": str(gate / "first")}},
        {"view": "gated", "kwargs": {"steps": 2}, "data": {"gate": str(gate)}},
    ]
    (gate / "first").mkdir()
    for step in range(2):
        (gate / "first" / str(step)).touch()  # the first runs through at once
    placed = requests.post(f"{server}/async/batches/", json={"orders": orders}, timeout=30)
    batch_url, second = placed.url, placed.json()["orders"][1]["url"]

    def midway() -> str | None:
        polled = requests.get(batch_url, timeout=10)
        body = polled.json()
        started = body["counts"]["completed"] == 1 and body["orders"][1]["percent"] == 0.0
        return polled.headers["ETag"] if started else None

    # The worker may finish another test's order first: it is shared by the session.
    etag = wait_until(midway, timeout=30, what="the first order done and the second started")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(long_poll, batch_url, etag)
        wait_until(
            lambda: subscribers(second) == 1, timeout=30, what="the long-poll to wait on its orders"
        )
        opened = time.perf_counter()
        (gate / "0").touch()
        response, answered = waiting.result(timeout=20)

    assert response.status_code == 202
    assert response.json()["orders"][1]["percent"] == 50.0
    assert answered - opened < 5  # woken by the change, not by the end of the wait
