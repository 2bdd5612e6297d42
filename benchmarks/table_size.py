"""Row 6: GET order latency with 1,000 and with 1,000,000 orders in the table.

The rows are made by the database itself (``generate_series``), in the benchmark
database only, and removed afterwards. Latency is the median over ``REQUESTS`` polls
of orders picked at random from the whole table, through Django's full handler.
"""

from __future__ import annotations

import random
import time

from benchmarks import harness

SMALL = 1_000
LARGE = 1_000_000
REQUESTS = 2000
SAMPLE = 1000

#: Copies of one template order made through the ORM, so every column the model has
#: (now or after a migration) gets a valid value; only the id and times differ.
VARYING = {
    "id": "gen_random_uuid()",
    "created_at": "now() - make_interval(secs => n)",
}


def insert_sql(varying: dict[str, str] = VARYING) -> str:
    """Copies of the template order; ``varying`` gives the SQL of the columns that
    differ (of ``n``, the copy's number)."""
    from async_orders.models import Order

    columns = [field.column for field in Order._meta.concrete_fields]
    values = [varying.get(column, f'template."{column}"') for column in columns]
    quoted = ", ".join(f'"{column}"' for column in columns)
    return (
        f"INSERT INTO async_orders_order ({quoted}) "
        f"SELECT {', '.join(values)} FROM async_orders_order AS template, "
        "generate_series(1, %s) AS n WHERE template.id = %s"
    )


def template() -> object:
    """A completed order with a small stored response, as most of a real table is."""
    from async_orders.models import Order, OrderStatus

    return Order.objects.create(
        view_name="noop",
        origin="http://127.0.0.1",
        status=OrderStatus.COMPLETED,
        response_status=200,
        response_content_type="application/json",
        response_body=b'{"ok": true}',
    )


def grow_to(rows: int) -> None:
    from django.db import connection

    from async_orders.models import Order

    started = time.monotonic()
    model = Order.objects.first() or template()
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(), [rows - Order.objects.count(), model.pk])
        cursor.execute("VACUUM ANALYZE async_orders_order")
    harness.log(f"{rows:,} orders in the table ({time.monotonic() - started:.1f} s to insert)")


def poll_latency_ms() -> float:
    from django.test import Client

    from async_orders.models import Order

    ids = list(Order.objects.order_by("?").values_list("pk", flat=True)[:SAMPLE])
    client = Client()
    for pk in ids:  # each sampled row read once, so no figure includes a first read
        client.get(f"/async/orders/{pk}/")
    paths = [f"/async/orders/{random.choice(ids)}/" for _ in range(REQUESTS)]
    samples = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 201, response.status_code
    return harness.median_ms(samples)


def run(database: str) -> None:
    from django.db import connection

    grow_to(SMALL)
    small = poll_latency_ms()
    grow_to(LARGE)
    large = poll_latency_ms()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE async_orders_order CASCADE")
    harness.report(
        harness.Result(
            6, "GET order latency 1M vs 1k rows", database, large, small, "ms", 1.2, False
        )
    )


if __name__ == "__main__":
    harness.main(run)
