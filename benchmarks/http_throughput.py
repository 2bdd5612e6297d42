"""Rows 1 and 2: requests per second of placing and polling orders, against plain DRF.

gunicorn serves the benchmark project with 2 sync workers; wrk (2 threads x 16
connections) loads it from its own process on 127.0.0.1. Subject and baseline share
the server, the middleware and the database, and are run alternately.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable

from benchmarks import harness

SECONDS = 4
WARM_UP_SECONDS = 1
RUNS = 2
#: Orders (and baseline rows) the polls pick from at random.
POLLED = 1000

#: Anonymous clients with a session each, POSTs spread over them at random: one client
#: with thousands of queued orders would meet MAX_ACTIVE_ORDERS (nobody runs them
#: here), while real clients each have a few. Both sides load the session alike.
CLIENTS = 5000

POST_SCRIPT = """
local body = '%s'
local sessions = {%s}
request = function()
  local headers = {
    ["Content-Type"] = "application/json",
    ["Cookie"] = "sessionid=" .. sessions[math.random(#sessions)],
  }
  return wrk.format("POST", nil, headers, body)
end
"""

GET_SCRIPT = """
local paths = {%s}
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def rate(base_url: str, path: str, script: str, seconds: float = SECONDS) -> float:
    load = harness.wrk(base_url + path, script, seconds)
    if load.unexpected_statuses or load.socket_errors:
        raise RuntimeError(f"{path}: {load}; the figure would not be a fair one")
    harness.purge_queue()
    return load.requests_per_second


def compare(base_url: str, subject: tuple[str, str], baseline: tuple[str, str]) -> tuple:
    for path, script in (subject, baseline):
        harness.wrk(base_url + path, script, WARM_UP_SECONDS)
    return harness.best_of(
        RUNS, lambda: rate(base_url, *subject), lambda: rate(base_url, *baseline)
    )


def post_script(body: object, sessions: list[str]) -> str:
    """wrk's script POSTing ``body`` as JSON, each request from one of ``sessions``."""
    return POST_SCRIPT % (json.dumps(body), ", ".join(f'"{key}"' for key in sessions))


def get_script(paths: Iterable[str]) -> str:
    """wrk's script GETting one of ``paths`` at random per request."""
    return GET_SCRIPT % ", ".join(f'"{path}"' for path in paths)


def place_orders(database: str, base_url: str) -> harness.Result:
    sessions = client_sessions()
    place = ("/async/noop/order/", post_script({"data": {"name": "x"}}, sessions))
    create = ("/baseline/rows/", post_script({"name": "x"}, sessions))
    subject, baseline = compare(base_url, place, create)
    why = "we also validate the envelope, count the cap and publish"
    return harness.Result(
        1, "POST order vs DRF create", database, subject, baseline, "req/s", 0.6, True, why=why
    )


def poll_orders(database: str, base_url: str) -> harness.Result:
    order_ids, row_ids = polled_rows()
    poll = ("/", get_script(f"/async/orders/{pk}/" for pk in order_ids))
    retrieve = ("/", get_script(f"/baseline/rows/{pk}/" for pk in row_ids))
    subject, baseline = compare(base_url, poll, retrieve)
    return harness.Result(
        2, "GET order (poll) vs DRF retrieve", database, subject, baseline, "req/s", 1.0, True
    )


def client_sessions() -> list[str]:
    """``CLIENTS`` stored, empty sessions: what anonymous visitors of a site have."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    Session.objects.all().delete()
    expires = timezone.now() + timezone.timedelta(days=1)
    data = SessionStore().encode({})
    sessions = Session.objects.bulk_create(
        Session(session_key=uuid.uuid4().hex, session_data=data, expire_date=expires)
        for _ in range(CLIENTS)
    )
    return [session.session_key for session in sessions]


def polled_rows() -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """``POLLED`` queued anonymous orders and as many baseline rows."""
    from async_orders.models import Order, OrderStatus
    from benchmarks.models import Row

    orders = Order.objects.bulk_create(
        Order(view_name="noop", origin="http://127.0.0.1", status=OrderStatus.QUEUED)
        for _ in range(POLLED)
    )
    rows = Row.objects.bulk_create(Row(name="bench") for _ in range(POLLED))
    return [order.pk for order in orders], [row.pk for row in rows]


def run(database: str) -> None:
    with harness.gunicorn() as base_url:
        harness.report(place_orders(database, base_url))
        harness.report(poll_orders(database, base_url))


if __name__ == "__main__":
    harness.main(run, harness.DATABASES)
