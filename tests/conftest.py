"""Fixtures: users, an API client, and for integration tests a live server with a
real Celery worker process on the chosen broker and database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders.broker import publishing
from async_orders.embedded import EmbeddedRedis
from async_orders.models import ProcessLease
from async_orders.worker import role_leases
from tests import celery_app, services
from tests.faultstack import Stack, private_redis
from tests.helpers import (
    FAULT_FIGURES,
    ROOT,
    WebhookReceiver,
    forget_queues,
    redis_client,
    stop_worker,
    wait_until,
)

WORKER_START_TIMEOUT = 60.0


def pytest_report_header() -> str:
    return f"async_orders services: database={services.DATABASE} broker={services.BROKER}"


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("root", password="pw", is_staff=True)


@pytest.fixture
def viewer(db: None) -> User:
    """Not staff, but allowed to view orders."""
    viewer = User.objects.create_user("viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    return viewer


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The ids of the orders published, recorded instead of sent: placing, the worker
    task and the reconciler all publish through ``send_order``."""
    sent: list[uuid.UUID] = []
    monkeypatch.setattr(
        "async_orders.broker.publishing.send_order", lambda order: sent.append(order.pk)
    )
    return sent


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """The broker URL, with the embedded Redis running when that is the choice."""
    if services.BROKER == "redis":
        yield celery_app.app.conf.broker_url
        return
    os.makedirs(services.EMBEDDED_REDIS_DIR, exist_ok=True)
    with EmbeddedRedis(Path(services.EMBEDDED_REDIS_DIR)) as redis:
        yield redis.url


@pytest.fixture(scope="session", autouse=True)
def _leave_no_queues_behind() -> Iterator[None]:
    """After the session, forget its queues in the real Redis (an embedded one dies
    with the session)."""
    yield
    if services.BROKER == "redis":
        forget_queues(redis_client(services.broker_url()), services.QUEUE)


def start_worker(queue: str, name: str) -> subprocess.Popen[bytes]:
    """Start a real ``celery worker`` process on ``queue`` against the test database
    and return once it is ready to take messages. Its log is ``<scratch>/<name>.log``."""
    from django.db import connection

    log_path = Path(services.SCRATCH) / f"{name}.log"
    env = {
        **os.environ,
        "ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "ASYNC_ORDERS_TEST_ROLE": "worker",
    }
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue]
    options = ["--pool=solo", "--without-gossip", "--without-mingle", "--loglevel=INFO"]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [*command, *options, "-n", f"{name}@%h"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    wait_until(
        lambda: worker.poll() is not None or b" ready." in log_path.read_bytes(),
        timeout=WORKER_START_TIMEOUT,
        what=f"the Celery worker {name} to start",
    )
    if worker.poll() is not None:
        pytest.fail(f"The Celery worker {name} exited:\n{log_path.read_text()}")
    return worker


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, django_db_blocker: Any, broker: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The session's worker on the default test queue, stopped after the session."""
    worker = start_worker(services.QUEUE, "worker")
    try:
        yield worker
    finally:
        stop_worker(worker)


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """The test project under uvicorn (ASGI) on the test database; yields its base URL."""
    from django.db import connection

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "ASYNC_ORDERS_TEST_ASGI": "1",
        "ASYNC_ORDERS_TEST_ROLE": "asgi",
    }
    command = [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--lifespan", "off"]
    options = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with open(Path(services.SCRATCH) / "uvicorn.log", "wb") as log:
        server = subprocess.Popen([*command, *options], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until(
            lambda: server.poll() is not None or _answers(port),
            timeout=WORKER_START_TIMEOUT,  # as long as a worker: xdist workers start at once
            what="uvicorn to start",
        )
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited with {server.returncode}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def spare_queue(settings: Any) -> str:
    """A queue of this test alone: orders placed in the test are routed to it."""
    queue = f"{services.QUEUE}-{uuid.uuid4().hex[:6]}"
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "QUEUE": queue}
    return queue


@pytest.fixture
def workers(django_db_setup: None, broker: str) -> Iterator[Callable[..., Any]]:
    """Start extra workers (on a test's own queue); all are stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(queue: str, name: str = "extra") -> subprocess.Popen[bytes]:
        worker = start_worker(queue, f"{name}-{len(started)}")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop_worker(worker)


FUZZ_CASES: list[str] = []
#: The name of the user property that carries a test's figures to the summary.
FIGURES_PROPERTY = "async_orders_figures"
#: What the tests reported, gathered from their reports: under pytest-xdist the
#: tests run in the xdist workers and the summary is printed by the controller.
REPORTED_CASES: list[str] = []
REPORTED_FIGURES: list[str] = []


@pytest.fixture
def fuzz_counter() -> list[str]:
    """Every schemathesis case run, for the summary line."""
    return FUZZ_CASES


@pytest.fixture(autouse=True)
def _breaker_closed() -> Iterator[None]:
    """Each test starts with this process's publish breaker closed: one test's refused
    publish must not make the next test's orders wait for a reconciler."""
    yield
    publishing.BREAKER.succeeded()


@pytest.fixture(autouse=True)
def _figures_to_the_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hand the fault figures and schemathesis cases a test added to its report."""
    cases, figures = len(FUZZ_CASES), len(FAULT_FIGURES)
    yield
    if len(FUZZ_CASES) > cases or len(FAULT_FIGURES) > figures:
        added = (FUZZ_CASES[cases:], FAULT_FIGURES[figures:])
        request.node.user_properties.append((FIGURES_PROPERTY, added))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name == FIGURES_PROPERTY:
            cases, figures = value
            REPORTED_CASES.extend(cases)
            REPORTED_FIGURES.extend(figures)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORTED_CASES:
        terminalreporter.write_line(
            f"schemathesis: {len(REPORTED_CASES)} cases over {len(set(REPORTED_CASES))} operations"
        )
    for figure in REPORTED_FIGURES:
        terminalreporter.write_line(f"fault: {figure}")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under pytest-xdist (``make test`` runs ``--dist loadgroup``), the tests of a module
    with a module-scoped fixture (a built package, a generated client, the browser and
    the demo) run on one xdist worker, so that the fixture is made once; every other
    test goes to whichever worker is free."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return
    definitions = info.name2fixturedefs.values()
    if any(fixture.scope == "module" for chain in definitions for fixture in chain):
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        thread = threading.Thread(target=receiver.serve_forever, daemon=True)
        thread.start()
        yield receiver
        receiver.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def watching() -> None:
    """The reconciler has led, with no gap, for an hour: the database was reachable
    long enough for every live worker to have renewed its leases."""
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ProcessLease.objects.create(
        name=role_leases.RECONCILER,
        holder=socket.gethostname(),
        renewed_at=timezone.now(),
        since=an_hour_ago,
    )


@pytest.fixture
def private_servers(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    """A broker and a ledger of this test's own."""
    with ExitStack() as servers:
        yield tuple(
            servers.enter_context(private_redis(tmp_path / name)) for name in ("broker", "ledger")
        )


@pytest.fixture
def stack(tmp_path: Path, private_servers: tuple[EmbeddedRedis, EmbeddedRedis]) -> Iterator[Stack]:
    """A fault test's processes (web, workers, reconciler) on the test database, with
    a broker and a ledger of its own (:mod:`tests.faultstack`)."""
    from django.db import connection

    database_env = {"ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"])}
    built = Stack(tmp_path, database_env, *private_servers)
    try:
        yield built
    finally:
        built.stop()
