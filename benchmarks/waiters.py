"""Waiting under ASGI: what N concurrent waiters cost, and what they do to everyone else.

uvicorn (one process) serves the benchmark project with the order endpoint as an
async view. A separate process holds ``--waiters`` connections waiting on scheduled
orders, half of them long-polls (``?wait=30``, sent again as each returns) and half
event streams. Printed: the server's PostgreSQL connections (``pg_stat_activity``, by
its ``application_name``) sampled while they wait, the server's threads, and the p99
latency of plain polls and of POSTs that ``LOAD_THREADS`` clients make back-to-back,
idle and with the waiters. Run by hand: ``python -m benchmarks.waiters [--waiters N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from benchmarks import harness

WAITERS = 1000
ORDERS = 50
LOAD_THREADS = 4
LOAD_SECONDS = 8.0
SAMPLE_SECONDS = 6.0
APPLICATION_NAME = "async-orders-bench-asgi"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waiters", type=int, default=WAITERS)
    waiters = parser.parse_args().waiters
    harness.setup_django("postgres")
    harness.prepare_database()
    orders = scheduled_orders(ORDERS)
    try:
        run(orders, waiters)
    finally:
        harness.purge_queue()


def run(orders: list[str], waiters: int) -> None:
    with uvicorn() as (base_url, server_pid):
        harness.log("load, idle")
        idle = load(base_url, orders)
        with holding(base_url, orders, waiters):
            harness.wait_until(lambda: subscribed(orders) >= waiters, "the waiters to wait")
            held = sample(server_connections, SAMPLE_SECONDS)
            threads = server_threads(server_pid)
            harness.log(f"load, with {waiters} waiters")
            busy = load(base_url, orders)
            still = subscribed(orders)
    print(f"waiters: {waiters} waiting ({still} still subscribed after the load)")
    print(
        f"database connections of the server while they wait: max {max(held)}, "
        f"mean {statistics.fmean(held):.2f} over {len(held)} samples in {SAMPLE_SECONDS:g} s"
    )
    print(f"threads of the server process: {threads}")
    for kind in ("poll", "post"):
        before, after = p99_ms(idle[kind]), p99_ms(busy[kind])
        print(
            f"p99 {kind}: idle {before:.1f} ms, with waiters {after:.1f} ms "
            f"-> ratio {after / before:.2f} (target <= 2); "
            f"{len(idle[kind])} and {len(busy[kind])} requests"
        )


# The orders and the server ------------------------------------------------------------


def scheduled_orders(count: int) -> list[str]:
    """Orders due in an hour: nothing changes them while the benchmark runs."""
    from django.utils import timezone

    from async_orders.models import Order, OrderStatus

    run_at = timezone.now() + timedelta(hours=1)
    orders = [
        Order(view_name="noop", status=OrderStatus.SCHEDULED, run_at=run_at, origin="http://bench")
        for _ in range(count)
    ]
    Order.objects.bulk_create(orders)
    return [str(order.pk) for order in orders]


@contextmanager
def uvicorn() -> Iterator[tuple[str, int]]:
    port = harness.free_port()
    command = [sys.executable, "-m", "uvicorn", "benchmarks.asgi:application"]
    options = ["--port", str(port), "--lifespan", "off", "--log-level", "warning"]
    with harness.process([*command, *options], "uvicorn") as server:
        harness.wait_until(
            lambda: server.poll() is not None or harness._answers(port), "uvicorn to listen"
        )
        yield f"http://127.0.0.1:{port}", server.pid


def server_connections() -> int:
    rows = harness._postgres_admin(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME]
    )
    return int(rows[0][0])


def server_threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def subscribed(orders: list[str]) -> int:
    """Clients subscribed to the orders' channels: the waiters waiting now."""
    import redis
    from django.conf import settings

    from async_orders.notify import channel

    with redis.Redis.from_url(settings.REDIS_URL) as client:
        return sum(count for _, count in client.pubsub_numsub(*map(channel, orders)))


def sample(measure: Callable[[], int], seconds: float) -> list[int]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(measure())
        time.sleep(0.05)
    return samples


# The waiters: another process, asyncio, one socket each --------------------------------


@contextmanager
def holding(base_url: str, orders: list[str], count: int) -> Iterator[None]:
    port = int(base_url.rsplit(":", 1)[1])
    paths = [
        f"/async/orders/{orders[n % len(orders)]}/" + ("?wait=30" if n % 2 else "events/")
        for n in range(count)
    ]
    waiter = multiprocessing.get_context("fork").Process(target=_hold, args=(port, paths))
    waiter.start()
    try:
        yield
    finally:
        waiter.terminate()
        waiter.join(timeout=30)


def _hold(port: int, paths: list[str]) -> None:
    asyncio.run(_hold_all(port, paths))


async def _hold_all(port: int, paths: list[str]) -> None:
    await asyncio.gather(*(_wait_forever(port, path) for path in paths))


async def _wait_forever(port: int, path: str) -> None:
    """Ask, read the answer to its end, ask again: a client that keeps waiting."""
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            while await reader.read(65536):
                pass
            writer.close()
        except OSError:
            await asyncio.sleep(0.1)


# The load: plain polls and POSTs, back-to-back -------------------------------------------


def load(base_url: str, orders: list[str]) -> dict[str, list[float]]:
    """Latencies (s) of plain polls and POSTs from ``LOAD_THREADS`` clients."""
    latencies: dict[str, list[float]] = {"poll": [], "post": []}
    deadline = time.monotonic() + LOAD_SECONDS
    threads = [
        threading.Thread(target=_client, args=(base_url, orders, deadline, latencies))
        for _ in range(LOAD_THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _client(
    base_url: str, orders: list[str], deadline: float, latencies: dict[str, list[float]]
) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    turn = 0
    while time.monotonic() < deadline:
        turn += 1
        kind = "post" if turn % 2 else "poll"
        started = time.perf_counter()
        if kind == "post":
            status = _request(connection, "POST", "/async/noop/order/", b"{}")
        else:
            status = _request(connection, "GET", f"/async/orders/{orders[turn % len(orders)]}/")
        latencies[kind].append(time.perf_counter() - started)
        if status not in (202, 302):
            raise RuntimeError(f"{kind} answered {status}")
    connection.close()


def _request(connection: http.client.HTTPConnection, method: str, path: str, body=None) -> int:
    headers = {"Content-Type": "application/json"} if body else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def p99_ms(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


if __name__ == "__main__":
    main()
