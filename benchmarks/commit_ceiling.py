"""The database's commit rate as the ceiling of orders per second (docs/deployment.md,
"Scaling out").

Every order commits a few times (its INSERT when placed, its claim, its outcome), and
every one of those commits waits for the primary's WAL flush: however many web and
worker hosts are added, orders/s cannot pass the primary's commits/s divided by the
commits per order. Measured here on one machine, in one run:

1. ``pgbench`` (PostgreSQL's own) with a script of single-row INSERTs, one commit
   each, on the benchmark database: the commits/s this server sustains, at as many
   clients as the workers below have processes, and at four times as many;
2. a backlog of no-op orders drained by one prefork worker of that many processes:
   orders/s, and the commits per order read from ``pg_stat_database.xact_commit``
   before and after (the POST's one commit added);
3. the ceiling, commits/s / commits per order, and the share of it reached.

    .venv/bin/python -m benchmarks.commit_ceiling [--processes 4] [--batch 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from functools import partial

from benchmarks import harness, worker_throughput

PROBE_TABLE = "commit_ceiling_probe"
#: One commit a POST makes: the order's INSERT (with its locks, in one transaction).
COMMITS_PER_POST = 1
STATISTICS_DELAY = 2.0


def pgbench() -> str:
    """PostgreSQL's pgbench: on the PATH, or where Debian puts the server's programs."""
    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        raise SystemExit("pgbench not found: install PostgreSQL's client programs")
    return found


def commits_per_second(clients: int, seconds: int) -> float:
    """pgbench's transactions/s, each one single-row INSERT committed on its own."""
    from django.conf import settings

    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(f"INSERT INTO {PROBE_TABLE} (note) VALUES ('one row');\n")
        script.flush()
        command = [
            pgbench(),
            *("-h", os.environ.get("PGHOST", "127.0.0.1"), "-p", os.environ.get("PGPORT", "5432")),
            *("-U", "postgres", "-n", "-f", script.name, "-c", str(clients)),
            *("-j", str(min(clients, os.cpu_count() or 1)), "-T", str(seconds)),
            settings.DATABASE_NAME,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    match = re.search(r"tps = ([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def database_commits() -> int:
    """Transactions committed in the benchmark database so far."""
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [settings.DATABASE_NAME]
        )
        return int(cursor.fetchone()[0])


def run(processes: int, batch: int, seconds: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (id bigserial, note text)")
        cursor.execute(f"TRUNCATE {PROBE_TABLE}")
    harness.log(f"{os.cpu_count()} CPUs; pgbench {seconds}s runs; {batch} no-op orders")
    rates = {
        clients: commits_per_second(clients, seconds) for clients in (processes, 4 * processes)
    }
    for clients, rate in rates.items():
        harness.log(f"pgbench, single-row commits, {clients} clients: {rate:,.0f} commits/s")
    before = database_commits()
    rate = worker_throughput.drain(
        worker_throughput.publish_orders, batch, partial(harness.celery_worker, processes)
    )
    # A backend reports its commits to the statistics at most once a second.
    time.sleep(STATISTICS_DELAY)
    # The worker's start and its presence renewals are counted too: a slight excess.
    per_order = (database_commits() - before) / batch + COMMITS_PER_POST
    best = max(rates.values())
    ceiling = best / per_order
    harness.log(
        f"{processes} worker processes: {rate:,.0f} orders/s drained, "
        f"{per_order:.1f} commits per order (its POST's included)"
    )
    harness.log(
        f"ceiling: {best:,.0f} commits/s / {per_order:.1f} = {ceiling:,.0f} orders/s; "
        f"the drain reached {rate / ceiling:.0%} of it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    args = harness.parse_and_prepare(parser)
    run(args.processes, args.batch, args.seconds)


if __name__ == "__main__":
    main()
