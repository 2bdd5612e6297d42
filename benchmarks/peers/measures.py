"""Rows 8-11: async_orders against the peers users pick instead of it.

Four measures, each taken for async_orders and for both peers (Celery +
django-celery-results, django-tasks-db) alternately, ``runs`` times; each side's
figure is the median of its runs, shown with their min-max, and each row's ratio is
async_orders / peer. Everything runs in one Django project on one PostgreSQL database,
behind the same gunicorn (2 sync workers, persistent connections), each side with 2
worker processes (a prefork Celery worker with 2 children, or 2 ``db_worker``):

- **drain** (row 10): ``jobs`` jobs queued while no worker runs, then the workers
  start; jobs finished per second between the first and the last completion, every
  job's status stored in the database (the order row, the ``TaskResult`` row, the
  ``DBTaskResult`` row);
- **poll** (row 9): wrk GETs of the status URL of a finished job (one of those the
  drain finished, at random);
- **enqueue** (row 8): wrk POSTs placing a job over HTTP, from stored anonymous
  sessions, as row 1 does;
- **latency** (row 11): POST -> done as a client sees it: async_orders follows the
  302 and long-polls (``?wait=``); the peers' client GETs at once and then every
  ``PEER_POLL_INTERVAL`` until the job is finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial

from benchmarks import harness, http_throughput, latency, worker_throughput

#: The peers' client: how long it sleeps between two polls of a job not yet finished.
PEER_POLL_INTERVAL = 0.05
#: async_orders' client: seconds each GET may wait for the order to change.
LONG_POLL_WAIT = 10
#: Finished jobs the polls pick from, at most.
POLLED = 1000
LATENCY_WARM_UP = 3
DATABASE = "postgres"


@dataclass(frozen=True)
class Size:
    """How much work each measure does; the defaults are the issue's reference sizes."""

    jobs: int = 1500
    seconds: int = 4
    samples: int = 20
    runs: int = 3


@dataclass(frozen=True, eq=False)
class Side:
    """One system under test, as each measure drives it (compared by identity)."""

    name: str
    #: Where jobs are placed over HTTP, and the JSON body of that POST.
    post_path: str
    post_body: object
    #: Queue ``n`` jobs from this process, for the drain.
    publish: Callable[[int], None]
    #: Its 2 worker processes, running until the context ends.
    workers: Callable[[], AbstractContextManager[object]]
    #: Status URLs of finished jobs.
    finished_paths: Callable[[], list[str]]
    #: Seconds from the POST to the client seeing the job done.
    one_job: Callable[[str], float]


# async_orders ---------------------------------------------------------------------


def finished_orders() -> list[str]:
    from async_orders.models import Order, OrderStatus

    ids = Order.objects.filter(status=OrderStatus.COMPLETED).values_list("pk", flat=True)
    return [f"/async/orders/{pk}/" for pk in ids[:POLLED]]


SUBJECT = Side(
    name="async_orders",
    post_path="/async/noop/order/",
    post_body={"data": {"name": "x"}},
    publish=worker_throughput.publish_orders,
    workers=harness.celery_worker,
    finished_paths=finished_orders,
    one_job=partial(latency.one_order, wait=LONG_POLL_WAIT),
)


# The peers ------------------------------------------------------------------------


def one_job(path: str, base_url: str) -> float:
    """Seconds from the POST of a peer's job to the 200 of its status URL."""
    started = time.perf_counter()
    status, location = latency.request(base_url, "POST", path, "{}")
    if status != 202:
        raise RuntimeError(f"POST {path} answered {status}")
    while (status := latency.request(base_url, "GET", location)[0]) != 200:
        if status != 202 or time.perf_counter() - started > latency.TIMEOUT:
            raise RuntimeError(f"GET {location} answered {status}")
        time.sleep(PEER_POLL_INTERVAL)
    return time.perf_counter() - started


def publish_celery(count: int) -> None:
    from benchmarks.peers.celery_results import noop_job

    for _ in range(count):
        noop_job.delay({"name": "x"})


def finished_celery_jobs() -> list[str]:
    from django.urls import reverse
    from django_celery_results.models import TaskResult

    ids = TaskResult.objects.filter(status="SUCCESS").values_list("task_id", flat=True)
    return [reverse("peer-celery-job", kwargs={"job_id": pk}) for pk in ids[:POLLED]]


def publish_tasks_db(count: int) -> None:
    from benchmarks.peers.tasks_db import noop_job

    for _ in range(count):
        noop_job.enqueue({"name": "x"})


def finished_tasks_db_jobs() -> list[str]:
    from django.urls import reverse
    from django_tasks_db.models import DBTaskResult

    ids = DBTaskResult.objects.successful().values_list("pk", flat=True)
    return [reverse("peer-tasks-db-job", kwargs={"job_id": pk}) for pk in ids[:POLLED]]


CELERY = Side(
    name="Celery + django-celery-results",
    post_path="/peers/celery/jobs/",
    post_body={"name": "x"},
    publish=publish_celery,
    workers=partial(harness.celery_worker, 2, "benchmarks.peers.celery_results"),
    finished_paths=finished_celery_jobs,
    one_job=partial(one_job, "/peers/celery/jobs/"),
)
TASKS_DB = Side(
    name="django-tasks-db",
    post_path="/peers/tasks-db/jobs/",
    post_body={"name": "x"},
    publish=publish_tasks_db,
    workers=partial(harness.db_workers, 2),
    finished_paths=finished_tasks_db_jobs,
    one_job=partial(one_job, "/peers/tasks-db/jobs/"),
)
PEERS = (CELERY, TASKS_DB)
SIDES = (SUBJECT, *PEERS)

#: (row, measure, unit, at_least: a throughput, else a latency).
ROWS = {
    "enqueue": (8, "enqueue over HTTP", "req/s", True),
    "poll": (9, "poll of a finished job", "req/s", True),
    "drain": (10, "drain queued jobs", "jobs/s", True),
    "latency": (11, "POST->done latency", "ms", False),
}
#: Each row's target ratio against each peer (``None``: printed for information) and
#: why it is that one: the guarantee classes of the two sides (issue 28).
POLLED_ROW = "one row read by key on each side; ours is built for polling"
TARGETS: dict[tuple[str, Side], tuple[float | None, str]] = {
    ("enqueue", CELERY): (None, "it commits nothing before answering; we commit and publish"),
    ("enqueue", TASKS_DB): (0.8, "same class: a committed row before the answer; we also publish"),
    ("poll", CELERY): (1.2, POLLED_ROW),
    ("poll", TASKS_DB): (1.2, POLLED_ROW),
    ("drain", CELERY): (1.5, "it writes its row twice per job (STARTED, SUCCESS), claims nothing"),
    ("drain", TASKS_DB): (1.0, "same class: claim and outcome both committed"),
    ("latency", CELERY): (0.7, "a long-poll against a client polling every 50 ms"),
    ("latency", TASKS_DB): (None, "its idle db_worker adds up to its --interval"),
}


# The measures ---------------------------------------------------------------------


def drain(size: Size) -> dict[str, harness.Samples]:
    sides = {
        side.name: partial(worker_throughput.drain, side.publish, size.jobs, side.workers)
        for side in SIDES
    }
    return harness.alternate(size.runs, sides)


def poll(size: Size, base_url: str) -> dict[str, harness.Samples]:
    scripts = {side.name: http_throughput.get_script(_polled(side)) for side in SIDES}
    return _wrk_rates(size, {side.name: (base_url + "/", scripts[side.name]) for side in SIDES})


def _polled(side: Side) -> list[str]:
    paths = side.finished_paths()
    if not paths:
        raise RuntimeError(f"{side.name}: no finished job to poll (the drain runs first)")
    return paths


def enqueue(size: Size, base_url: str) -> dict[str, harness.Samples]:
    sessions = http_throughput.client_sessions()
    targets = {
        side.name: (
            base_url + side.post_path,
            http_throughput.post_script(side.post_body, sessions),
        )
        for side in SIDES
    }
    try:
        return _wrk_rates(size, targets)
    finally:
        discard_queued_tasks()


def _wrk_rates(size: Size, targets: dict[str, tuple[str, str]]) -> dict[str, harness.Samples]:
    """Requests per second of each (URL, wrk script), after a 1 s warm-up of each."""
    for url, script in targets.values():
        harness.wrk(url, script, http_throughput.WARM_UP_SECONDS)
    sides = {
        name: partial(http_throughput.rate, url, "", script, size.seconds)
        for name, (url, script) in targets.items()
    }
    return harness.alternate(size.runs, sides)


def discard_queued_tasks() -> None:
    """Drop the jobs the enqueue measure left: ``db_worker`` would run them later."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.ready().delete()
    harness.purge_queue()


def latency_ms(size: Size, base_url: str) -> dict[str, harness.Samples]:
    sides = {side.name: partial(_median_latency_ms, side, size, base_url) for side in SIDES}
    return harness.alternate(size.runs, sides)


def _median_latency_ms(side: Side, size: Size, base_url: str) -> float:
    """Median of ``size.samples`` jobs, one after the other, with the side's workers up."""
    with side.workers():
        for _ in range(LATENCY_WARM_UP):
            side.one_job(base_url)
        return harness.median_ms([side.one_job(base_url) for _ in range(size.samples)])


# The rows -------------------------------------------------------------------------


def results(measure: str, samples: dict[str, harness.Samples]) -> Iterator[harness.Result]:
    """One row per peer: async_orders' median against the peer's, with their spreads."""
    row, what, unit, at_least = ROWS[measure]
    subject = samples[SUBJECT.name]
    for peer in PEERS:
        target, why = TARGETS[measure, peer]
        baseline = samples[peer.name]
        yield harness.Result(
            row,
            f"{what} vs {peer.name}",
            DATABASE,
            subject.median,
            baseline.median,
            unit,
            target,
            at_least,
            subject.spread,
            baseline.spread,
            why,
        )


def run(size: Size) -> None:
    """Every measure, drain first (the polls read the jobs it finished); the rows are
    reported at the end, in their numbers' order."""
    samples = {"drain": drain(size)}
    with harness.gunicorn() as base_url:
        samples["poll"] = poll(size, base_url)
        samples["enqueue"] = enqueue(size, base_url)
        samples["latency"] = latency_ms(size, base_url)
    for measure in sorted(samples, key=lambda name: ROWS[name][0]):
        for result in results(measure, samples[measure]):
            harness.report(result)
