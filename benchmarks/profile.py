"""Profile the hot paths in-process with pyinstrument: ``python -m benchmarks.profile``.

Each path (place an order, poll it, execute it, and the two DRF baselines) is called
``CALLS`` times through Django's full handler, and pyinstrument's call tree is
printed, so the subject's tree can be read next to its baseline's.

``--time`` prints ms per call instead, without the profiler's overhead: the named
paths take turns, ``ROUNDS`` rounds of ``TIMED_CALLS`` calls each, and each path's
median round (wall clock and this process's CPU) is printed with the fastest and
slowest, so a change can be measured before and after with one rerunnable command.
``poll-finished`` is issue 12's poll (a completed order: 201 with ``Location``),
``celery-job`` and ``tasks-db-job`` the peers' DRF detail views of a finished job,
which it is compared with; ``celery-enqueue`` and ``tasks-db-enqueue`` their POSTs,
which ``place`` is compared with; ``progress-write`` one progress write of a running
order, what ``ProgressItems`` costs per ``PROGRESS_INTERVAL``; ``read-row`` turning
one fetched row of the poll's SELECT into an order (what the claim and the poll
do with the row they get back); ``requester-lock`` a transaction that takes one
requester's lock (what placing takes before its INSERT when ``MAX_ACTIVE_ORDERS`` is
set); ``envelope`` validating the POST's body for the no-op view; ``publish`` sending
one order's Celery message, as placing does once its row is committed;
``notify-url`` finding the Redis that wakes an order's waiters, which a worker does
twice per order; ``order-task`` the Celery task of an order, applied in this process
(what ``execute`` does, after the task's ``close_old_connections()``: with the
worker-settings profile of ``ASYNC_ORDERS_BENCH_WORKER_SETTINGS``, e.g. ``reuse-only``,
it shows what a connection opened for every order costs); ``route`` the route check
of an order's view (``reverse()``, ``resolve()``, the match compared with the view
opted in), what caching it per URLconf could save at most; ``call-view`` calling the
no-op view through the service-level reverse, the route check included.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import uuid
from collections.abc import Callable

from benchmarks import harness
from benchmarks.http_throughput import client_sessions

CALLS = 500
WARM_UP = 20
ROUNDS = 7
TIMED_CALLS = 300


def paths() -> dict[str, Callable[[], object]]:
    from django.db import transaction
    from django.test import Client

    from async_orders import notify
    from async_orders.broker.publishing import send_order
    from async_orders.envelope import parse_envelope
    from async_orders.models import Order, RequesterLock
    from async_orders.registry import find_endpoint
    from async_orders.tasks import execute_order
    from async_orders.worker import dispatch
    from async_orders.worker.execution import run_order
    from benchmarks.models import Row

    client = Client()
    sessions = itertools.cycle(client_sessions())
    order = Order.objects.create(view_name="noop", origin="http://127.0.0.1")
    finished, celery, tasks_db = finished_order(), celery_job(), tasks_db_job()
    row = Row.objects.create(name="x")
    body = json.dumps({"data": {"name": "x"}})
    peer_body = json.dumps({"name": "x"})

    def place() -> object:
        # A client of its own each time, as in the HTTP benchmark: MAX_ACTIVE_ORDERS.
        client.cookies["sessionid"] = next(sessions)
        return client.post("/async/noop/order/", body, "application/json")

    running = Order.objects.create(view_name="noop", origin="http://127.0.0.1")
    running.start()
    done = itertools.count()
    read_row = row_reading(finished)

    requesters = itertools.cycle(range(200))
    noop = find_endpoint("noop")
    assert noop is not None

    def requester_lock() -> None:
        with transaction.atomic():
            RequesterLock.take(f"session:{next(requesters)}")

    def execute() -> None:
        run_order(Order.objects.create(view_name="noop", origin="http://127.0.0.1").pk)

    def order_task() -> None:
        order = Order.objects.create(view_name="noop", origin="http://127.0.0.1")
        execute_order.apply(args=(str(order.pk),))

    return {
        "place": place,
        "create": lambda: client.post("/baseline/rows/", '{"name": "x"}', "application/json"),
        "celery-enqueue": lambda: client.post("/peers/celery/jobs/", peer_body, "application/json"),
        "tasks-db-enqueue": lambda: client.post(
            "/peers/tasks-db/jobs/", peer_body, "application/json"
        ),
        "poll": lambda: client.get(f"/async/orders/{order.pk}/"),
        "poll-finished": lambda: client.get(f"/async/orders/{finished}/"),
        "retrieve": lambda: client.get(f"/baseline/rows/{row.pk}/"),
        "celery-job": lambda: client.get(f"/peers/celery/jobs/{celery}/"),
        "tasks-db-job": lambda: client.get(f"/peers/tasks-db/jobs/{tasks_db}/"),
        "execute": execute,
        "order-task": order_task,
        "route": lambda: dispatch._route(order),
        "call-view": lambda: dispatch.call_view(order),
        "progress-write": lambda: running.report_progress(next(done), 10**9, None),
        "read-row": read_row,
        "requester-lock": requester_lock,
        "envelope": lambda: parse_envelope(noop, {"data": {"name": "x"}}),
        "publish": lambda: send_order(order),
        "notify-url": notify.redis_url,
    }


def row_reading(pk: uuid.UUID) -> Callable[[], object]:
    """Read the poll's row of order ``pk`` once; the call turns it into an order."""
    from django.db import connections

    from async_orders.models import Order, _shown_select

    connection = connections["default"]
    sql, reader = _shown_select(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [Order._meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    return lambda: reader.instance(row, connection)


def finished_order() -> uuid.UUID:
    """A completed order as a worker leaves one of the no-op view (its result replayed
    at ``resource_url``): 201 with ``Location`` when polled."""
    from django.utils import timezone

    from async_orders.models import Order, OrderStatus
    from async_orders.worker.execution import result_path

    order = Order(
        view_name="noop",
        origin="http://127.0.0.1",
        status=OrderStatus.COMPLETED,
        attempts=1,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        response_status=200,
        response_content_type="application/json",
        response_body=b'{"name": "x"}',
    )
    order.resource_url = result_path(order)
    order.save()
    return order.pk


def celery_job() -> str:
    """The result row of a Celery task that succeeded, as django-celery-results stores it."""
    from django.utils import timezone
    from django_celery_results.models import TaskResult

    return TaskResult.objects.create(
        task_id=str(uuid.uuid4()),
        task_name="benchmarks.peers.celery_results.noop_job",
        status="SUCCESS",
        result='{"ok": true}',
        date_done=timezone.now(),
    ).task_id


def tasks_db_job() -> uuid.UUID:
    """The row of a django-tasks-db task that succeeded."""
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.create(
        status="SUCCESSFUL",
        args_kwargs={"args": [{"name": "x"}], "kwargs": {}},
        task_path="benchmarks.peers.tasks_db.noop_job",
        backend_name="default",
        run_after=timezone.now(),
        finished_at=timezone.now(),
        return_value={"ok": True},
    ).pk


def profile(name: str, call: Callable[[], object]) -> None:
    from pyinstrument import Profiler

    for _ in range(WARM_UP):
        call()
    started = time.perf_counter()
    with Profiler(interval=0.0002) as profiler:
        for _ in range(CALLS):
            call()
    per_call = (time.perf_counter() - started) / CALLS * 1000
    print(f"\n===== {name}: {per_call:.3f} ms per call (profiled) =====")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def time_calls(calls: dict[str, Callable[[], object]]) -> None:
    """Print each path's ms per call, unprofiled; the paths take turns, round by round,
    so a change in the machine's load falls on all of them alike. The CPU time of this
    process is printed too: on a busy machine it moves much less than the wall clock
    (the database's own work is not in it)."""
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(WARM_UP):
            call()
    for _ in range(ROUNDS):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(TIMED_CALLS):
                call()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rounds[name].append((wall / TIMED_CALLS * 1000, cpu / TIMED_CALLS * 1000))
    print(f"ms per call: median of {ROUNDS} rounds of {TIMED_CALLS} (fastest-slowest)")
    for name, figures in rounds.items():
        wall_ms, cpu_ms = ([figure[i] for figure in figures] for i in (0, 1))
        print(f"{name}: {_spread(wall_ms)} wall, {_spread(cpu_ms)} CPU")


def _spread(ms: list[float]) -> str:
    return f"{statistics.median(ms):.3f} ({min(ms):.3f}-{max(ms):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "names",
        nargs="*",
        help="place create celery-enqueue tasks-db-enqueue poll poll-finished retrieve "
        "celery-job tasks-db-job execute order-task route call-view progress-write read-row "
        "requester-lock envelope publish notify-url",
    )
    parser.add_argument("--db", choices=harness.DATABASES, default="postgres")
    parser.add_argument("--time", action="store_true", help="ms per call, unprofiled")
    arguments = parser.parse_args()
    harness.setup_django(arguments.db)
    harness.prepare_database()
    from async_orders.conf import conf

    assert conf.MAX_ACTIVE_ORDERS  # placing is profiled with its cap check
    chosen = {
        name: call
        for name, call in paths().items()
        if not arguments.names or name in arguments.names
    }
    if arguments.time:
        time_calls(chosen)
    else:
        for name, call in chosen.items():
            profile(name, call)
    harness.purge_queue()  # the messages of the orders placed and published


if __name__ == "__main__":
    main()
