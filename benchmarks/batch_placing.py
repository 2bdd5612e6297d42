"""Row 30: placing 100 orders in one ``POST /async/batches/`` against 100 ``POST
/async/noop/order/``, per order.

Both sides go through Django's full handler in this process (the test client), as one
anonymous session, so each order pays the requester's lock and the counting INSERT of
``MAX_ACTIVE_ORDERS`` (the default, 100: each side places exactly that many), and its
message is published to Redis. Sides alternate; the orders and messages of a round
are removed before the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks import harness

ORDERS = 100
RUNS = 7
BODY = {"data": {"name": "x"}}


def one_batch(client: object) -> float:
    """Seconds per order, placing them all in one batch."""
    started = time.perf_counter()
    response = client.post(  # type: ignore[attr-defined]
        "/async/batches/",
        {"orders": [{"view": "noop", **BODY}] * ORDERS},
        content_type="application/json",
    )
    took = time.perf_counter() - started
    assert response.status_code == 302, response.content[:500]
    return took / ORDERS


def one_by_one(client: object) -> float:
    """Seconds per order, placing each in its own POST."""
    started = time.perf_counter()
    for _ in range(ORDERS):
        response = client.post(  # type: ignore[attr-defined]
            "/async/noop/order/", BODY, content_type="application/json"
        )
        assert response.status_code == 302, response.content[:500]
    return (time.perf_counter() - started) / ORDERS


def cleaned(side: Callable[[object], float], client: object) -> Callable[[], float]:
    """``side``, then its orders and messages removed (not timed): each round starts
    from an empty table and below the cap."""
    from async_orders.models import Order

    def measure() -> float:
        seconds = side(client)
        Order.objects.all().delete()
        harness.purge_queue()
        return seconds * 1000

    return measure


def run(database: str) -> None:
    from django.test import Client

    client = Client()
    cleaned(one_by_one, client)()  # warm up, and the session (the requester) is made
    cleaned(one_batch, client)()
    sides = {
        "one batch": cleaned(one_batch, client),
        "100 POSTs": cleaned(one_by_one, client),
    }
    figures = harness.alternate(RUNS, sides)
    batch, single = figures["one batch"], figures["100 POSTs"]
    harness.log(
        f"one batch: {1000 / batch.median:,.0f} orders/s, "
        f"{1000 / (batch.median * ORDERS):,.1f} req/s; "
        f"100 POSTs: {1000 / single.median:,.0f} orders/s = req/s"
    )
    harness.report(
        harness.Result(
            30,
            "100 orders: one batch POST vs 100 POSTs",
            database,
            batch.median,
            single.median,
            "ms/order",
            1.0,
            False,
            batch.spread,
            single.spread,
        )
    )


if __name__ == "__main__":
    harness.main(run, harness.DATABASES)
