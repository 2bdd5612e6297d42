"""Profile the hot paths in-process with pyinstrument: ``python -m benchmarks.profile``.

Each path (place an order, poll it, execute it, and the two DRF baselines) is called
``CALLS`` times through Django's full handler, and pyinstrument's call tree is
printed, so the subject's tree can be read next to its baseline's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable

from benchmarks import harness
from benchmarks.http_throughput import client_sessions

CALLS = 500


def paths() -> dict[str, Callable[[], object]]:
    from django.test import Client

    from async_orders.execution import execute_order
    from async_orders.models import Order
    from benchmarks.models import Row

    client = Client()
    sessions = itertools.cycle(client_sessions())
    order = Order.objects.create(view_name="noop", origin="http://127.0.0.1")
    row = Row.objects.create(name="x")
    body = json.dumps({"data": {"name": "x"}})

    def place() -> object:
        # A client of its own each time, as in the HTTP benchmark: MAX_ACTIVE_ORDERS.
        client.cookies["sessionid"] = next(sessions)
        return client.post("/async/noop/order/", body, "application/json")

    def execute() -> None:
        execute_order(Order.objects.create(view_name="noop", origin="http://127.0.0.1").pk)

    return {
        "place": place,
        "create": lambda: client.post("/baseline/rows/", '{"name": "x"}', "application/json"),
        "poll": lambda: client.get(f"/async/orders/{order.pk}/"),
        "retrieve": lambda: client.get(f"/baseline/rows/{row.pk}/"),
        "execute": execute,
    }


def profile(name: str, call: Callable[[], object]) -> None:
    from pyinstrument import Profiler

    for _ in range(20):
        call()
    started = time.perf_counter()
    with Profiler(interval=0.0002) as profiler:
        for _ in range(CALLS):
            call()
    per_call = (time.perf_counter() - started) / CALLS * 1000
    print(f"\n===== {name}: {per_call:.3f} ms per call (profiled) =====")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="place create poll retrieve execute")
    parser.add_argument("--db", choices=harness.DATABASES, default="postgres")
    arguments = parser.parse_args()
    harness.setup_django(arguments.db)
    harness.prepare_database()
    from async_orders.conf import conf

    assert conf.MAX_ACTIVE_ORDERS  # placing is profiled with its cap check
    for name, call in paths().items():
        if not arguments.names or name in arguments.names:
            profile(name, call)


if __name__ == "__main__":
    main()
