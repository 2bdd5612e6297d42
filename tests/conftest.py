"""Fixtures: users, an API client, and for integration tests a live server with a
real Celery worker process on the chosen broker and database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from async_orders.embedded import EmbeddedRedis
from tests import celery_app, services

ROOT = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT = 60.0


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def pytest_report_header() -> str:
    return f"async_orders services: database={services.DATABASE} broker={services.BROKER}"


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("root", password="pw", is_staff=True)


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


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, django_db_blocker: Any, broker: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process on the test database, stopped after the session."""
    from django.db import connection

    log_path = Path(services.SCRATCH) / "worker.log"
    env = {**os.environ, "ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"])}
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker"]
    options = ["--pool=solo", "--without-gossip", "--without-mingle", "--loglevel=INFO"]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [*command, *options, "-Q", services.QUEUE], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        wait_until(
            lambda: worker.poll() is not None or b" ready." in log_path.read_bytes(),
            timeout=WORKER_START_TIMEOUT,
            what="the Celery worker to start",
        )
        if worker.poll() is not None:
            pytest.fail(f"The Celery worker exited:\n{log_path.read_text()}")
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """The test project under uvicorn (ASGI) on the test database; yields its base URL."""
    from django.db import connection

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"])}
    command = [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--lifespan", "off"]
    options = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with open(Path(services.SCRATCH) / "uvicorn.log", "wb") as log:
        server = subprocess.Popen([*command, *options], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: server.poll() is not None or _answers(port), what="uvicorn to start")
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
def worker_log() -> Path:
    return Path(services.SCRATCH) / "worker.log"
