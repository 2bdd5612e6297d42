"""What test modules share besides fixtures: the repository root, waiting on a
condition, the test broker's client, and placing an order. Fixtures stay in
``conftest.py``; everything a test imports by name is here."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from rest_framework.test import APIClient

from async_orders.models import Order

ROOT = Path(__file__).resolve().parent.parent

#: What a worker logs for a message that starts nothing (its order ran, runs, or is
#: gone): a duplicate message, counted in the workers' logs.
STARTED_NOTHING = re.compile(rb"this message does not start it|its message is dropped")

#: Figures the fault tests measured, printed at the end of the run.
FAULT_FIGURES: list[str] = []


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def answered_at_once(action: Callable[[], Any]) -> Any:
    """The response of ``action``, which must come well before the 5 s it asked to wait."""
    started = time.monotonic()
    response = action()
    assert time.monotonic() - started < 2
    return response


def redis_client(broker: str) -> redis.Redis:
    """A client of the test broker, to look at or wipe its queues."""
    if broker.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=broker.removeprefix("redis+socket://"))
    return redis.Redis.from_url(broker)


def forget_queues(client: redis.Redis, queue: str) -> None:
    """Delete the Redis keys of ``queue`` and of the spare queues named after it: the
    lists of messages no worker took and kombu's bindings. Other runs' queues (other
    checkouts share the Redis) and kombu's shared keys are left alone."""
    for pattern in (f"{queue}*", f"_kombu.binding*.{queue}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop a process a test started: SIGTERM, then SIGKILL if it lingers 30 s."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def processes_in_session(session_id: int) -> list[str]:
    """The processes (``sid pid args``) of the session ``session_id`` leads: whatever a
    test started with ``start_new_session=True``, children and grandchildren included,
    so that none of them can outlive the test unnoticed."""
    listing = subprocess.run(
        ["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in listing.splitlines() if line.split()[0] == str(session_id)]


def place(
    api: APIClient,
    view: str = "echo",
    envelope: Any = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    """POST an order for ``view`` through the test client, ``envelope`` as its JSON body
    (an empty object by default: ``None`` would send no Content-Type at all);
    ``headers`` by name, ``extra`` as the test client takes it (``HTTP_HOST=``...)."""
    body = {} if envelope is None else envelope
    return api.post(f"/async/{view}/order/", body, format="json", headers=headers, **extra)


def order_of(response: Any) -> Order:
    """The order a response of the order endpoints shows."""
    return Order.objects.get(pk=response.json()["id"])


def place_live(
    base: str,
    view: str,
    *,
    http: Any = requests,
    headers: dict[str, str] | None = None,
    **envelope: Any,
) -> requests.Response:
    """POST an order for ``view`` to a live server at ``base``, ``envelope`` as its JSON
    body, through ``http`` (a ``requests.Session`` to send its cookies); redirects
    are followed, so a placed order answers with the order itself."""
    return http.post(f"{base}/async/{view}/order/", json=envelope, headers=headers, timeout=30)


class WebhookReceiver(ThreadingHTTPServer):
    """Records each POST; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.statuses: list[int] = []
        self.received: list[tuple[Any, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))
        self.send_response(self.server.statuses.pop(0) if self.server.statuses else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass
