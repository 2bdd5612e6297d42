"""Rows 32 and 33: the first page of ``GET /async/orders/?label=key:value`` against
the unfiltered first page, with 1,000,000 orders of the caller in the table.

The rows are copies of one order made by PostgreSQL (``generate_series``, as
:mod:`benchmarks.table_size` makes them), each with two labels: ``tenant`` (one of
100 values: 10,000 orders each, a label that many orders share) and ``run`` (one of
20,000: 50 orders each, a label that picks a few). Latency is the median over
``REQUESTS`` requests through Django's full handler, sides alternated ``RUNS`` times;
the GIN index of migration 0012 serves the filter.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks import harness
from benchmarks.table_size import VARYING, insert_sql, template

ROWS = 1_000_000
REQUESTS = 100
RUNS = 5

LABELS = "jsonb_build_object('tenant', 't' || (n %% 100), 'run', 'r' || (n %% 20000))"


def fill(requester: str) -> None:
    """``ROWS`` orders of ``requester``, labelled, then the statistics the planner reads."""
    from django.db import connection

    from async_orders.models import Order

    started = time.monotonic()
    model = template()
    Order.objects.filter(pk=model.pk).update(requester=requester)  # type: ignore[attr-defined]
    varying = {**VARYING, "labels": LABELS}
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(varying), [ROWS - 1, model.pk])  # type: ignore[attr-defined]
        cursor.execute("VACUUM ANALYZE async_orders_order")
    harness.log(f"{ROWS:,} labelled orders ({time.monotonic() - started:.0f} s to insert)")


def first_pages(client: object, query: dict[str, str]) -> Callable[[], float]:
    def measure() -> float:
        samples = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get("/async/orders/", query)  # type: ignore[attr-defined]
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content[:300]
            assert len(response.json()["results"]) == 50, len(response.json()["results"])
        return harness.median_ms(samples)

    return measure


def explain(requester: str, label: str | None) -> None:
    """Log the database's own time for the first page's query, and its plan's top:
    the figure the HTTP medians hold, without the rendering of 50 orders around it."""
    lines = first_page_plan(requester, label)
    harness.log(f"{label or 'unfiltered'}: {lines[-1].strip()}; {lines[1].strip()[:90]}")


def first_page_plan(requester: str, label: str | None) -> list[str]:
    """``EXPLAIN ANALYZE`` of the first page's query, line by line."""
    from async_orders.labels import having, parse_filters
    from async_orders.models import Order

    wanted, _ = parse_filters([label] if label else [])
    page = having(Order.objects.filter(requester=requester).shown(), wanted)
    return page.order_by("-created_at", "-id")[:51].explain(analyze=True).splitlines()


def run(database: str) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    user, _ = User.objects.get_or_create(username="bench-labels")
    fill(f"user:{user.pk}")
    client = Client()
    client.force_login(user)
    sides = {
        "unfiltered": first_pages(client, {}),
        "tenant:t7": first_pages(client, {"label": "tenant:t7"}),
        "run:r123": first_pages(client, {"label": "run:r123"}),
    }
    for side in sides.values():
        side()  # warm up
    figures = harness.alternate(RUNS, sides)
    for label in (None, "tenant:t7", "run:r123"):
        explain(f"user:{user.pk}", label)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE async_orders_order CASCADE")
    User.objects.filter(pk=user.pk).delete()
    baseline = figures["unfiltered"]
    for row, name, share in ((32, "tenant:t7", "1%"), (33, "run:r123", "50 orders")):
        harness.report(
            harness.Result(
                row,
                f"GET orders ?label= ({share}) vs unfiltered, 1M orders",
                database,
                figures[name].median,
                baseline.median,
                "ms",
                1.5,
                False,
                figures[name].spread,
                baseline.spread,
            )
        )


if __name__ == "__main__":
    harness.main(run)
