"""Row 31: ``GET /async/batches/<id>/`` of a batch of 100 orders against ``GET
/async/orders/<id>/`` of one: what following 100 orders costs over following one.

The batch is placed through its endpoint, then a third of its orders is completed and
a fifth is running with progress, as a batch midway is. Latency is the median of
``REQUESTS`` polls through Django's full handler, sides alternated ``RUNS`` times.
A batch poll is one query whatever its size (tests/test_batches.py pins it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks import harness

ITEMS = 100
REQUESTS = 300
RUNS = 5


def midway_batch(client: object) -> tuple[str, str]:
    """The batch's path, and the path of one of its running orders."""
    from async_orders.models import Order, OrderStatus

    response = client.post(  # type: ignore[attr-defined]
        "/async/batches/",
        {"orders": [{"view": "noop"}] * ITEMS},
        content_type="application/json",
    )
    assert response.status_code == 302, response.content[:500]
    ids = [item["id"] for item in response.json()["orders"]]
    Order.objects.filter(pk__in=ids[: ITEMS // 3]).update(status=OrderStatus.COMPLETED)
    running = ids[ITEMS // 3 : ITEMS // 3 + ITEMS // 5]
    Order.objects.filter(pk__in=running).update(
        status=OrderStatus.RUNNING, progress_current=3, progress_total=10
    )
    return response["Location"], f"/async/orders/{running[0]}/"


def polls(client: object, path: str, status: int) -> Callable[[], float]:
    def measure() -> float:
        samples = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get(path)  # type: ignore[attr-defined]
            samples.append(time.perf_counter() - started)
            assert response.status_code == status, response.status_code
        return harness.median_ms(samples)

    return measure


def run(database: str) -> None:
    from django.test import Client

    client = Client()
    batch_path, order_path = midway_batch(client)
    harness.purge_queue()
    sides = {
        "batch of 100": polls(client, batch_path, 202),
        "one order": polls(client, order_path, 202),
    }
    for side in sides.values():
        side()  # warm up
    figures = harness.alternate(RUNS, sides)
    batch, single = figures["batch of 100"], figures["one order"]
    harness.report(
        harness.Result(
            31,
            "GET batch of 100 vs GET one order",
            database,
            batch.median,
            single.median,
            "ms",
            2.0,
            False,
            batch.spread,
            single.spread,
        )
    )


if __name__ == "__main__":
    harness.main(run, harness.DATABASES)
