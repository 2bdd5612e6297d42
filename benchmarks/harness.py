"""What every benchmark shares: the benchmark database, gunicorn, wrk, a Celery worker,
and the one way results are printed.

Servers and load run as separate processes on 127.0.0.1 only; every run is bounded
in time (wrk's ``-d``) or in count (a fixed number of tasks or requests).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("postgres", "sqlite")
#: The load of the issue's reference figures: wrk, 2 threads x 16 connections.
WRK_THREADS = 2
WRK_CONNECTIONS = 16
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Result:
    """One row of the results table: the subject against its same-run baseline."""

    row: int
    what: str
    database: str
    subject: float
    baseline: float
    unit: str
    #: ``None`` for a figure printed for information only (it always passes).
    target: float | None
    #: True when the subject must reach ``target`` x baseline (throughput); False when
    #: it must stay under it (latency, time).
    at_least: bool
    #: (min, max) of the repetitions when ``subject`` and ``baseline`` are medians.
    subject_range: tuple[float, float] | None = None
    baseline_range: tuple[float, float] | None = None
    #: Why the target is what it is: the guarantee class of the two sides (issue 28).
    why: str = ""

    @property
    def ratio(self) -> float:
        return self.subject / self.baseline

    @property
    def passed(self) -> bool:
        if self.target is None:
            return True
        return self.ratio >= self.target if self.at_least else self.ratio <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "none"
        return f"{'>=' if self.at_least else '<='} {self.target:g}"

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "pass" if self.passed else "FAIL"

    @property
    def subject_text(self) -> str:
        return _figure(self.subject, self.subject_range)

    @property
    def baseline_text(self) -> str:
        return _figure(self.baseline, self.baseline_range)

    def line(self) -> str:
        return (
            f"row {self.row} [{self.database}] {self.what}: {self.subject_text} vs "
            f"{self.baseline_text} {self.unit} -> ratio {self.ratio:.2f} "
            f"(target {self.target_text}) {self.verdict.upper()}"
        )


def _figure(value: float, spread: tuple[float, float] | None) -> str:
    """``value``, with the min-max of its repetitions when it is their median."""
    if spread is None:
        return f"{value:,.2f}"
    return f"{value:,.2f} ({spread[0]:,.2f}-{spread[1]:,.2f})"


@dataclass(frozen=True)
class Samples:
    """One figure per repetition of a measure; reported as median with min-max."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.values), max(self.values)


def report(result: Result) -> None:
    """Print the result as the benchmark's last line; keep it for ``benchmarks.run``."""
    print(result.line(), flush=True)
    results_file = os.environ.get("ASYNC_ORDERS_BENCH_RESULTS")
    if results_file:
        with open(results_file, "a") as out:
            out.write(json.dumps(asdict(result)) + "\n")


def main(run: Callable[[str], None], databases: tuple[str, ...] = ("postgres",)) -> None:
    """Command line of one benchmark module: ``--db`` picks the database, then ``run``."""
    run(parse_and_prepare(argparse.ArgumentParser(), databases).db)


def parse_and_prepare(
    parser: argparse.ArgumentParser, databases: tuple[str, ...] = ("postgres",)
) -> argparse.Namespace:
    """Add ``--db`` to a benchmark's own options, parse them, set Django and the database up."""
    parser.add_argument("--db", choices=databases, default=databases[0])
    args = parser.parse_args()
    setup_django(args.db)
    prepare_database()
    return args


def setup_django(database: str) -> None:
    os.environ["ASYNC_ORDERS_BENCH_DB"] = database
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    import django

    django.setup()


def log(message: str) -> None:
    print(f"  {message}", flush=True)


# The database --------------------------------------------------------------------


def prepare_database() -> None:
    """Create the benchmark database if need be, migrate it, and empty its tables.

    SQLite starts from a new file: its ``DELETE`` would refuse the orders that an
    earlier benchmark's attempts still refer to, which PostgreSQL's ``TRUNCATE ...
    CASCADE`` empties with them."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if settings.DATABASE == "postgres":
        if not _postgres_admin(
            "SELECT 1 FROM pg_database WHERE datname = %s", [settings.DATABASE_NAME]
        ):
            _postgres_admin(f'CREATE DATABASE "{settings.DATABASE_NAME}"')
    else:
        connection.close()
        _remove_sqlite_file(settings.SQLITE_FILE)
    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for label in settings.BENCHMARK_MODELS:
                cursor.execute(f"TRUNCATE {apps.get_model(label)._meta.db_table} CASCADE")


def drop_database() -> None:
    """Remove what the benchmarks stored: the PostgreSQL database and the SQLite file."""
    from benchmarks import settings

    _postgres_admin(f'DROP DATABASE IF EXISTS "{settings.DATABASE_NAME}" WITH (FORCE)')
    _remove_sqlite_file(settings.SQLITE_FILE)


def _remove_sqlite_file(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def _postgres_admin(sql: str, params: list[str] | None = None) -> list[tuple]:
    """Run ``sql`` on the server's maintenance database (outside any transaction)."""
    import psycopg

    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    conninfo = f"host={host} port={port} user=postgres dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        cursor = admin.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


# Processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], object], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def process(command: list[str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` from the project root with its output in a log file; stop it after."""
    log_file = Path(tempfile.gettempdir()) / f"async-orders-bench-{name}.log"
    with open(log_file, "wb") as out:
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child.returncode not in (0, -15):
        print(log_file.read_text()[-3000:], file=sys.stderr)


@contextmanager
def gunicorn(workers: int = 2) -> Iterator[str]:
    """The benchmark project behind gunicorn (sync workers); yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "benchmarks.wsgi:application"]
    options = ["--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--log-level=warning"]
    with process([*command, *options], "gunicorn") as server:
        wait_until(lambda: server.poll() is not None or _answers(port), "gunicorn to listen")
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited; see its log in the temporary directory")
        yield f"http://127.0.0.1:{port}"


@contextmanager
def celery_worker(
    concurrency: int = 2, app: str = "benchmarks.celery"
) -> Iterator[subprocess.Popen[bytes]]:
    """One ``celery worker`` process of the Celery app in module ``app``, prefork with
    ``concurrency`` children, ready to consume that app's default queue; yields it.

    The app's module must import :mod:`benchmarks.celery`, whose signal handlers say
    when the worker is ready and count finished tasks.
    """
    from benchmarks import celery as celery_app

    queue = importlib.import_module(app).app.conf.task_default_queue
    client = celery_app.redis_client()
    client.delete(celery_app.READY_KEY)
    command = [sys.executable, "-m", "celery", "-A", app, "worker"]
    options = [
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
        "-Q",
        queue,
    ]
    with process([*command, *options], f"worker-{app}") as worker:
        wait_until(
            lambda: worker.poll() is not None or client.exists(celery_app.READY_KEY),
            "the Celery worker to start",
        )
        yield worker


#: How often an idle ``db_worker`` looks for new tasks (its default is 1 s).
DB_WORKER_INTERVAL = 0.05


@contextmanager
def db_workers(processes: int = 2) -> Iterator[None]:
    """``processes`` django-tasks-db ``db_worker`` processes (each runs one task at a time).

    There is nothing to wait for: a worker that has not started yet only finds the
    queue later, which the benchmarks' first-completion clocks leave out.
    """
    command = [sys.executable, "-m", "django", "db_worker", "--no-startup-delay"]
    options = ["--interval", str(DB_WORKER_INTERVAL), "--verbosity", "0", "--no-reload"]
    with ExitStack() as workers:
        for number in range(processes):
            workers.enter_context(process([*command, *options], f"db-worker-{number}"))
        yield


def purge_queue() -> None:
    """Drop messages left in the benchmark queues (POSTs publish orders nobody runs)."""
    from django.conf import settings

    from benchmarks import celery as celery_app

    celery_app.redis_client().delete(*settings.BENCHMARK_QUEUES)


# Load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    unexpected_statuses: int
    socket_errors: int


def wrk(url: str, script: str, seconds: float) -> Load:
    """Run wrk (a separate process) against ``url`` for ``seconds`` with a Lua ``script``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                f"-t{WRK_THREADS}",
                f"-c{WRK_CONNECTIONS}",
                f"-d{seconds}s",
                "--timeout=10s",
                "-s",
                lua.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(lua.name)
    return _parse_wrk(output)


def _parse_wrk(output: str) -> Load:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    statuses = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Load(
        requests_per_second=float(rate.group(1)),
        unexpected_statuses=int(statuses.group(1)) if statuses else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def best_of(runs: int, subject: Callable[[], float], baseline: Callable[[], float]) -> tuple:
    """Alternate subject and baseline ``runs`` times each; the best figure of each side.

    Alternating spreads any drift of the machine over both sides alike.
    """
    subjects, baselines = [], []
    for _ in range(runs):
        baselines.append(baseline())
        subjects.append(subject())
    return max(subjects), max(baselines)


def alternate(runs: int, sides: dict[str, Callable[[], float]]) -> dict[str, Samples]:
    """Measure every side ``runs`` times, in turn, starting each round one side later.

    Alternating spreads any drift of the machine over all sides alike; rotating the
    start keeps any side from always running first (on a cold cache) or last.
    """
    names = list(sides)
    values: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            values[name].append(sides[name]())
            log(f"{name}: {values[name][-1]:,.2f}")
    return {name: Samples(figures) for name, figures in values.items()}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) used so far by ``process`` and its children (a prefork
    worker's pool), read from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [process.pid, *_children(process.pid)]
    return sum(_cpu_ticks(pid) for pid in pids) / ticks


def cpu_by_kind(
    kinds: dict[str, tuple[str, ...]],
    split_pools: tuple[str, ...] = (),
    mine: tuple[str, ...] = (),
) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process of the machine, by kind:
    the first of ``kinds`` one of whose words is in its command line, else ``other``.
    For a kind in ``split_pools``, the processes whose parent is of that kind too (a
    Celery worker's pool) are counted apart, as ``"<kind> pool"``.

    A process's count includes its children that ended (PostgreSQL's postmaster those
    of its backends, a Celery worker those of its pool), so that a kind's total only
    grows while its processes come and go: Celery reconnects to the database every
    ``CELERY_DB_REUSE_MAX`` tasks, which ends a backend in the middle of a drain.

    A process of a kind in ``mine`` counts as that kind only when this process
    started it (directly or not): on a shared machine, others run Celery workers too."""
    ticks = os.sysconf("SC_CLK_TCK")
    kind_of = {pid: _kind(command, kinds) for pid, command in _commands().items()}
    ours = _descendants(os.getpid())
    for pid, kind in kind_of.items():
        if kind in mine and pid not in ours:
            kind_of[pid] = "other"
    used: dict[str, float] = {}
    for pid, kind in kind_of.items():
        if kind in split_pools and kind_of.get(_parent(pid)) == kind:
            kind = f"{kind} pool"
        used[kind] = used.get(kind, 0.0) + _cpu_ticks(pid, with_ended=True) / ticks
    return used


def _commands() -> dict[int, str]:
    """Every process's command line, by pid."""
    commands = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        commands[int(entry.name)] = command
    return commands


def _kind(command: str, kinds: dict[str, tuple[str, ...]]) -> str:
    return next((k for k, words in kinds.items() if any(w in command for w in words)), "other")


def _parent(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else 0


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        children = _children(todo.pop())
        found.update(children)
        todo += children
    return found


def _cpu_ticks(pid: int, with_ended: bool = False) -> int:
    """utime + stime of ``pid``, and of its children that ended (cutime + cstime)."""
    fields = _stat_fields(pid)
    counted = fields[11:15] if with_ended else fields[11:13]
    return sum(int(ticks) for ticks in counted)


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command's name (state, ppid, ...);
    none for a process that ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []
