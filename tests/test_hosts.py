"""Partitions between hosts, with real processes on a test bed of network namespaces
(``tests/netbed.py``): a "db" host runs a private PostgreSQL and the Redis broker, a
"web" host the web server, two worker hosts a Celery worker each, and the reconciler
runs on one of them. Links are cut per host, with the shipped leases.

Each scenario adds a row to the fault table printed at the end of the run; attempts
are counted in the ledger, a Redis list on a Unix socket outside the network under
test, so a cut-off host still records what it does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from async_orders.conf import DEFAULTS
from tests import netbed
from tests.faultstack import Stack, Stopwatch, private_redis
from tests.helpers import FAULT_FIGURES, wait_until
from tests.netbed import Host, HostPostgres, HostRedis, NetBed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres_server,
    pytest.mark.default_leases,
    pytest.mark.hosts,
]

#: The settings as shipped that these scenarios are about (the test settings shorten
#: the leases and lengthen the publish timeout).
SHIPPED = (
    "HEARTBEAT_INTERVAL",
    "WORKER_LOST_AFTER",
    "LEASE_MARGIN",
    "RECONCILE_INTERVAL",
    "PUBLISH_TIMEOUT",
    "PUBLISH_BREAKER_SECONDS",
)
LEASES = {name: DEFAULTS[name] for name in SHIPPED}
#: How soon after a cut the shipped leases promise another attempt.
RECOVERY_BOUND = LEASES["WORKER_LOST_AFTER"] + LEASES["LEASE_MARGIN"] + LEASES["RECONCILE_INTERVAL"]
CUT_SECONDS = 60
STEP_SECONDS = 0.25
#: Polling the ledger and the order over HTTP, on a busy machine.
SLACK = 2.0


@dataclass
class HostFigure:
    """A row of the hosts' table: orders placed, not completed, run to completion
    twice, steps of an attempt after a later one of its order had begun, the time
    from the fault to the recovery, and the scenario's wall time."""

    scenario: str
    placed: int
    lost: int
    twice: int
    overlapping: int
    recovered_seconds: float
    wall_seconds: float

    def __str__(self) -> str:
        return (
            f"hosts | {self.scenario} | placed {self.placed} | lost {self.lost} | twice "
            f"{self.twice} | overlapping attempts {self.overlapping} | recovered in "
            f"{self.recovered_seconds:.1f}s | wall {self.wall_seconds:.0f}s"
        )


@dataclass
class Deployment:
    """The bed, the servers on its db host, and one :class:`Stack` per host (all on
    the same broker, database and ledger), each starting its processes there."""

    bed: NetBed
    db: Host
    broker: HostRedis
    stacks: dict[str, Stack]
    database_url: str
    started: Stopwatch

    def on(self, host: str) -> Stack:
        return self.stacks[host]

    @property
    def web(self) -> Stack:
        return self.stacks["web"]

    def place(self, view: str, steps: int, step_seconds: float) -> str:
        return self.web.place(view, steps, step_seconds)

    def attempts(self) -> dict[str, set[int]]:
        """The attempts each order's steps were taken by, from the ledger."""
        seen: dict[str, set[int]] = {}
        for order, attempt, _step, _pid in self.web.entries():
            seen.setdefault(order, set()).add(attempt)
        return seen

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows read straight from the db host, as the processes see them."""
        with psycopg.connect(self.database_url, connect_timeout=5) as connection:
            return connection.execute(sql).fetchall()

    def record(self, scenario: str, urls: list[str], recovered: float, twice: int = 0) -> None:
        """Add the scenario's row to the table; nothing may be lost or overlap."""
        lost = sum(self.web.order(url)["status"] != "completed" for url in urls)
        overlapping = self.web.overlapping_attempts()
        figure = HostFigure(
            scenario, len(urls), lost, twice, overlapping, recovered, self.started.seconds()
        )
        FAULT_FIGURES.append(str(figure))
        assert (figure.lost, figure.twice, figure.overlapping) == (0, 0, 0), figure


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    netbed.require()
    started = Stopwatch()
    with ExitStack() as cleanup:
        bed = NetBed()
        cleanup.callback(bed.destroy)
        db = bed.add("db", 10, 11)
        hosts = {
            name: bed.add(name, number) for name, number in (("web", 20), ("w1", 31), ("w2", 32))
        }
        postgres = HostPostgres(db, f"{netbed.SUBNET}.{bed.index}.0/24").create()
        cleanup.callback(postgres.destroy)
        broker = cleanup.enter_context(HostRedis(tmp_path / "broker", db, bed.address(11)))
        ledger = cleanup.enter_context(private_redis(tmp_path / "ledger"))
        database_env = {
            "ASYNC_ORDERS_TEST_DATABASE": "postgres",
            "ASYNC_ORDERS_TEST_DB_NAME": "postgres",
            "PGHOST": db.address,
            "PGPORT": str(postgres.port),
        }
        stacks = {}
        for name, host in hosts.items():
            directory = tmp_path / name
            directory.mkdir()
            stack = Stack(
                directory, database_env, broker, ledger, dict(LEASES), launcher=host.launcher
            )
            cleanup.callback(stack.stop)
            stacks[name] = stack
        migrate = stacks["web"].start("migrate", "manage.py", "migrate", "--noinput")
        assert migrate.wait(timeout=180) == 0, stacks["web"].log_of("migrate")
        stacks["web"].web(hosts["web"].address)
        url = f"postgresql://postgres@{db.address}:{postgres.port}/postgres"
        yield Deployment(bed, db, broker, stacks, url, started)


def first_step(deployment: Deployment, url: str) -> tuple[str, int, int, int]:
    order_id = url.rstrip("/").rsplit("/", 1)[1]
    return wait_until(
        lambda: next((entry for entry in deployment.web.entries() if entry[0] == order_id), None),
        timeout=60,
        what="the order's first step",
    )


def attempt_began(deployment: Deployment, order_id: str, attempt: int) -> bool:
    return any(entry[0] == order_id and entry[1] == attempt for entry in deployment.web.entries())


def status(deployment: Deployment, url: str) -> str:
    return deployment.web.order(url)["status"]


def test_a_worker_host_cut_off_mid_order_has_it_recovered_on_the_other_host(
    deployment: Deployment,
) -> None:
    d = deployment
    cut_off = d.bed.hosts["w1"]
    d.on("w2").reconciler()
    d.on("w1").worker("w1")
    url = d.place("ledgered-retrying", 160, STEP_SECONDS)  # 40 s an attempt: past the lease
    order_id, _, _, _ = first_step(d, url)
    d.on("w2").worker("w2")

    d.bed.cut(cut_off)
    cut = Stopwatch()
    steps_before_the_cut = steps_of_attempt(d, 1)
    wait_until(
        lambda: attempt_began(d, order_id, 2),
        timeout=RECOVERY_BOUND + 15,
        what="attempt 2 on the other host",
    )
    recovered = cut.seconds()
    # Attempt 1 went on only while its lease was surely valid, then waits at its
    # checkpoint for a renewal: the cut keeps it from hearing the answer.
    ran_into_the_cut = (steps_of_attempt(d, 1) - steps_before_the_cut) * STEP_SECONDS
    time.sleep(max(0.0, CUT_SECONDS - cut.seconds()))  # the cut lasts its minute
    paused_steps = steps_of_attempt(d, 1)
    d.bed.heal(cut_off)
    # TCP's retransmissions back off to a minute or so: the renewal's refusal, and the
    # LeaseLost it raises, come within that of the heal.
    wait_until(
        lambda: "lost its lease" in d.on("w1").log_of("w1"),
        timeout=120,
        what="the cut-off attempt to stop at its checkpoint once healed",
    )
    wait_until(lambda: status(d, url) == "completed", timeout=90, what="attempt 2 to complete")

    assert recovered <= RECOVERY_BOUND + SLACK
    assert ran_into_the_cut <= LEASES["WORKER_LOST_AFTER"] + SLACK
    assert steps_of_attempt(d, 1) == paused_steps  # nothing after the heal
    assert d.web.order(url)["attempts"] == 2
    assert {pid for _, attempt, _, pid in d.web.entries() if attempt == 2} == {
        d.on("w2").processes[-1].pid
    }
    scenario = (
        f"worker host cut off {CUT_SECONDS}s mid-order (attempt 1 ran "
        f"{ran_into_the_cut:.0f}s into the cut)"
    )
    d.record(scenario, [url], recovered)


def steps_of_attempt(deployment: Deployment, attempt: int) -> int:
    return sum(entry[1] == attempt for entry in deployment.web.entries())


def leads(deployment: Deployment, reconciler: subprocess.Popen[bytes]) -> bool:
    """Whether ``reconciler`` holds the lead (its holder is ``<host>:<pid>:<nonce>``)."""
    rows = deployment.query(
        "SELECT holder FROM async_orders_processlease WHERE name = 'reconciler'"
    )
    return bool(rows) and f":{reconciler.pid}:" in rows[0][0]


def test_the_reconcilers_host_cut_off_hands_the_lead_to_the_spare(deployment: Deployment) -> None:
    d = deployment
    leading = d.on("w2").reconciler()
    wait_until(lambda: leads(d, leading), what="w2 to lead")
    spare = d.on("w1").reconciler()
    d.on("w1").worker("w1")
    healthy = d.place("ledgered-retrying", 120, STEP_SECONDS)  # 30 s an attempt
    first_step(d, healthy)
    d.on("w2").worker("w2")
    cut_off = d.place("ledgered-retrying", 120, STEP_SECONDS)
    cut_off_id, _, _, pid = first_step(d, cut_off)
    assert pid == d.on("w2").processes[-1].pid

    d.bed.cut(d.bed.hosts["w2"])
    cut = Stopwatch()
    wait_until(
        lambda: leads(d, spare),
        timeout=3 * LEASES["RECONCILE_INTERVAL"] + 15,
        what="the spare to lead",
    )
    took_lead = cut.seconds()
    time.sleep(max(0.0, CUT_SECONDS - cut.seconds()))  # the cut lasts its minute
    d.bed.heal(d.bed.hosts["w2"])
    urls = [healthy, cut_off]
    wait_until(
        lambda: all(status(d, url) == "completed" for url in urls),
        timeout=120,
        what="both orders to complete",
    )

    assert took_lead <= 3 * LEASES["RECONCILE_INTERVAL"] + SLACK
    attempts = d.attempts()
    assert attempts[cut_off_id] == {1, 2}
    assert [d.web.order(url)["attempts"] for url in urls] == [1, 2]
    twice = sum(len(seen) > 2 for seen in attempts.values())  # recovered more than once
    d.record(f"reconciler's host cut off {CUT_SECONDS}s", urls, took_lead, twice=twice)


def test_a_web_host_cut_off_from_the_broker_answers_posts_within_a_second(
    deployment: Deployment,
) -> None:
    d = deployment
    d.on("w2").reconciler()
    d.on("w1").worker("w1")
    warm = d.place("ledgered", 1, 0)  # the web's connection to the broker is open
    wait_until(lambda: status(d, warm) == "completed", timeout=30, what="a first order")

    with d.bed.unreachable(d.bed.hosts["web"], d.broker.address):
        cut = Stopwatch()

        def timed_post(_: int) -> tuple[float, str]:
            started = time.monotonic()
            url = d.place("ledgered", 1, 0)
            return time.monotonic() - started, url

        with ThreadPoolExecutor(2) as posting:
            timed = list(posting.map(timed_post, range(20)))
        urls = [url for _, url in timed]
        wait_until(
            lambda: all(status(d, url) == "completed" for url in urls),
            timeout=3 * LEASES["RECONCILE_INTERVAL"] + 15,
            what="the reconciler to publish the orders the web could not",
        )
        recovered = cut.seconds()

    slowest = max(seconds for seconds, _ in timed)
    assert slowest < 1, sorted(seconds for seconds, _ in timed)
    assert len(d.web.entries()) == 21  # each once
    d.record(
        f"web host cut off from the broker (20 POSTs, slowest {slowest:.2f}s)", urls, recovered
    )
