"""Row 4: end-to-end latency of one no-op order, against a raw Celery round trip.

The order: POST -> 302 -> GET the order back-to-back (``Retry-After`` ignored, so
the figure is the system's own latency) until 201. The baseline: ``delay()`` of a raw
task calling the same function and ``get()`` of its result from the Redis backend.
gunicorn (2 workers) and one worker process (prefork, 2 children) serve both.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from benchmarks import harness

SAMPLES = 50
WARM_UP = 5
TIMEOUT = 30.0


def request(base_url: str, method: str, path: str, body: str = "") -> tuple[int, str]:
    """One HTTP request on a fresh connection (gunicorn's sync workers close each one)."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def one_order(base_url: str, wait: float = 0) -> float:
    """Seconds from the POST to the 201 of its order; with ``wait``, each GET long-polls
    (``?wait=``) instead of coming back at once."""
    started = time.perf_counter()
    status, location = request(base_url, "POST", "/async/noop/order/", "{}")
    if status != 302:
        raise RuntimeError(f"POST answered {status}")
    path = urlsplit(location).path + (f"?wait={wait:g}" if wait else "")
    while (status := request(base_url, "GET", path)[0]) != 201:
        if status != 202 or time.perf_counter() - started > TIMEOUT:
            raise RuntimeError(f"the order answered {status}")
    return time.perf_counter() - started


def one_raw_task() -> float:
    from benchmarks.celery import noop_task

    started = time.perf_counter()
    noop_task.delay().get(timeout=TIMEOUT)
    return time.perf_counter() - started


def medians(subject: Callable[[], float], baseline: Callable[[], float]) -> tuple[float, float]:
    """Median of ``SAMPLES`` of each, taken alternately after a warm-up."""
    for _ in range(WARM_UP):
        subject(), baseline()
    subjects, baselines = [], []
    for _ in range(SAMPLES):
        subjects.append(subject())
        baselines.append(baseline())
    return harness.median_ms(subjects), harness.median_ms(baselines)


def run(database: str) -> None:
    harness.purge_queue()
    with harness.gunicorn() as base_url, harness.celery_worker(concurrency=2):
        subject, baseline = medians(lambda: one_order(base_url), one_raw_task)
    harness.report(
        harness.Result(
            4, "order POST->201 vs delay()+get()", database, subject, baseline, "ms", 4.0, False
        )
    )


if __name__ == "__main__":
    harness.main(run, harness.DATABASES)
