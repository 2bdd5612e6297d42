"""A deployment of the test project made of real processes, for fault tests.

A web server, Celery workers and the reconciler loop run as child processes on a
broker of their own (a private redis-server, restartable empty) and on the test
database or a private PostgreSQL cluster (restartable, and held down). What the
ordered views did is recorded in a ledger, a Redis list on yet another private
server, so that overlapping attempts are counted outside the database under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from async_orders.embedded import EmbeddedRedis
from tests import services
from tests.helpers import ROOT, stop_worker, wait_until

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_programs() -> Path | None:
    """Where initdb and pg_ctl are, if this machine has a PostgreSQL server."""
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")))
    return found[-1] if found and (found[-1] / "initdb").exists() else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, its
    own port), so that it can be restarted and held down without touching anyone's."""

    def __init__(self) -> None:
        programs = postgres_programs()
        if programs is None:
            pytest.fail("No PostgreSQL server programs (initdb, pg_ctl) on this machine")
        self.programs = programs
        # Not under pytest's temporary directory, which only its owner may enter.
        self.directory = Path(tempfile.mkdtemp(prefix="async-orders-postgres-"))
        self.data = self.directory / "data"
        self.port = free_port()

    def create(self) -> PrivatePostgres:
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.programs / program), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.directory)


@dataclass
class Stack:
    """The processes of one fault test, and how to watch what they do."""

    directory: Path
    database_env: dict[str, str]
    broker: EmbeddedRedis
    ledger_server: EmbeddedRedis
    settings: dict[str, Any] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    base: str = ""
    #: What runs each process, before Python: ``ip netns exec <host>`` on a test bed.
    launcher: tuple[str, ...] = ()

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.database_env,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "ASYNC_ORDERS_TEST_BROKER_URL": self.broker.url,
            "ASYNC_ORDERS_TEST_SETTINGS": json.dumps({"PROGRESS_INTERVAL": 0.05, **self.settings}),
        }

    def freeze(self, process: subprocess.Popen[bytes]) -> None:
        """SIGSTOP ``process`` between two of its writes. On SQLite a process frozen
        inside a write holds the database's one write lock, and no other process can
        write until it is thawed, lease or none: that is SQLite's limit (PostgreSQL
        locks rows), not the frozen worker these tests are about."""
        shm = Path(f"{self.database_env['ASYNC_ORDERS_TEST_DB_NAME']}-shm")
        for _ in range(100):
            process.send_signal(signal.SIGSTOP)
            wait_until(lambda: _state(process.pid) == "T", timeout=10, what="the stop")
            if services.DATABASE != "sqlite" or not holds_wal_write_lock(process.pid, shm):
                return
            process.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        raise AssertionError(f"process {process.pid} held SQLite's write lock 100 times")

    @property
    def ledger(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.ledger_server.socket_path))

    def start(
        self, name: str, *arguments: str, ready: bytes | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        """Start ``python <arguments>`` in a session of its own; with ``ready``, wait
        until its log shows that text."""
        log_path = self.directory / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*self.launcher, sys.executable, *arguments],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.processes.append(process)
        if ready is not None:
            wait_until(
                lambda: process.poll() is not None or ready in log_path.read_bytes(),
                timeout=60,
                what=f"{name} to start",
            )
            if process.poll() is not None:
                pytest.fail(f"{name} exited:\n{log_path.read_text()}")
        return process

    def log_of(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def web(self, address: str = "127.0.0.1") -> str:
        port = free_port()
        self.start("web", "manage.py", "runserver", f"{address}:{port}", "--noreload")
        self.base = f"http://{address}:{port}"
        wait_until(self._web_answers, timeout=60, what="the web server to start")
        return self.base

    def _web_answers(self) -> bool:
        try:
            return requests.get(f"{self.base}/async/orders/", timeout=1).status_code < 500
        except requests.ConnectionError:
            return False

    def worker(self, name: str, *options: str) -> subprocess.Popen[bytes]:
        command = ["-m", "celery", "-A", "tests.celery_app", "worker", "-n", f"{name}@%h"]
        pool = options or ("--pool=solo",)
        quiet = ("--without-gossip", "--without-mingle", "--loglevel=INFO")
        worker_env = {"ASYNC_ORDERS_TEST_ROLE": "worker"}
        return self.start(name, *command, *pool, *quiet, ready=b" ready.", **worker_env)

    def reconciler(self) -> subprocess.Popen[bytes]:
        return self.start(
            "reconciler", "manage.py", "reconcile_orders", "--loop", ready=b"Reconciling"
        )

    def place(self, view: str, steps: int, step_seconds: float, **envelope: Any) -> str:
        """Place a ledgered order (``envelope`` adds to its body); its URL."""
        envelope["data"] = {"ledger": self.ledger_url, "step_seconds": step_seconds}
        response = requests.post(
            f"{self.base}/async/{view}/order/",
            json={"kwargs": {"steps": steps}, **envelope},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    @property
    def ledger_url(self) -> str:
        return f"unix://{self.ledger_server.socket_path}"

    def broker_queue_length(self) -> int:
        """Messages waiting in the orders' queue (not those prefetched by a worker)."""
        client = redis.Redis(unix_socket_path=str(self.broker.socket_path))
        return client.llen(services.QUEUE)

    def order(self, url: str) -> dict[str, Any]:
        return requests.get(url, timeout=10).json()

    def entries(self) -> list[tuple[str, int, int, int]]:
        """The ledger: (order id, attempt, step, pid) per step, in the order done."""
        rows = [entry.decode().split(":") for entry in self.ledger.lrange("ledger", 0, -1)]
        return [(order, int(attempt), int(step), int(pid)) for order, attempt, step, pid in rows]

    def overlapping_attempts(self) -> int:
        """Steps an attempt took after a later attempt of the same order had begun."""
        latest: dict[str, int] = {}
        overlapping = 0
        for order, attempt, _step, _pid in self.entries():
            overlapping += attempt < latest.get(order, 0)
            latest[order] = max(attempt, latest.get(order, 0))
        return overlapping

    def figure(self, fault: str, urls: list[str], stuck: float, recovery: float) -> Figure:
        """The figure row of a fault, from what the orders and the ledger show now."""
        lost = sum(self.order(url)["status"] != "completed" for url in urls)
        return Figure(fault, len(urls), lost, stuck, self.overlapping_attempts(), recovery)

    def stop(self) -> None:
        for process in self.processes:
            _stop_session(process)


#: The byte of a WAL database's shared-memory file that its writer locks (SQLite's
#: WAL_WRITE_LOCK, the first of the locks at offset 120).
WAL_WRITE_LOCK_BYTE = 120


def holds_wal_write_lock(pid: int, shm: Path) -> bool:
    """Whether process ``pid`` holds the write lock of the WAL database whose
    shared-memory file is ``shm``, from the kernel's table of file locks: lines like
    ``1: POSIX  ADVISORY  WRITE 4242 00:2a:1234 120 120``."""
    try:
        inode = shm.stat().st_ino
    except FileNotFoundError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[1] != "POSIX" or fields[3] != "WRITE":
            continue
        owner, file, start, end = fields[4], fields[5], fields[6], fields[7]
        if int(owner) == pid and int(file.rsplit(":", 1)[1]) == inode:
            last = int(end) if end != "EOF" else WAL_WRITE_LOCK_BYTE
            if int(start) <= WAL_WRITE_LOCK_BYTE <= last:
                return True
    return False


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name (which may hold spaces
    and parentheses): the state first, then the parent, the process group..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _state(pid: int) -> str:
    """The process's state letter (``T``: stopped by a signal)."""
    return stat_fields(pid)[0]


def _stop_session(process: subprocess.Popen[bytes]) -> None:
    """Stop a child and everything it started (a prefork worker's pool)."""
    with_group = _group_of(process)
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)  # a frozen process cannot stop
    stop_worker(process)
    if with_group is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(with_group, signal.SIGKILL)


def _group_of(process: subprocess.Popen[bytes]) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


@dataclass
class Figure:
    """One row of the fault table printed at the end of ``make test``: orders placed,
    those not completed (lost), the longest an order sat still because of the fault,
    steps taken by an attempt after a later one had begun, and the time until every
    order completed."""

    fault: str
    placed: int
    lost: int
    stuck_seconds: float
    overlapping: int
    recovery_seconds: float

    def __str__(self) -> str:
        return (
            f"{self.fault}: placed {self.placed}, lost {self.lost}, stuck "
            f"{self.stuck_seconds:.1f}s, overlapping attempts {self.overlapping}, "
            f"recovered in {self.recovery_seconds:.1f}s"
        )


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return time.monotonic() - self.started


def private_redis(directory: Path) -> EmbeddedRedis:
    """A redis-server of the test's own, on a Unix socket in ``directory``; use it as
    a context manager. ``process.kill()`` then ``start()`` restarts it empty."""
    directory.mkdir(parents=True, exist_ok=True)
    return EmbeddedRedis(directory)
