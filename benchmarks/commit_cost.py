"""What one PostgreSQL commit costs here, seen from Python: ``BEGIN; INSERT; COMMIT``.

docs/performance.md sizes the paths that commit by this figure, so it is measured,
not assumed: ``TRANSACTIONS`` single-row transactions on one psycopg connection to
the benchmark database, each timed from ``BEGIN`` to the end of ``COMMIT``; then the
same with ``synchronous_commit = off`` (no wait for the WAL flush), and a bare
``SELECT 1`` (one round trip), so the flush's share and the round trips' show apart.

    .venv/bin/python -m benchmarks.commit_cost
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

TRANSACTIONS = 2000
TABLE = "commit_cost_probe"


def conninfo() -> str:
    from benchmarks import settings

    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    return f"host={host} port={port} user=postgres dbname={settings.DATABASE_NAME}"


def timed_ms(count: int, step: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(name: str, samples: list[float]) -> str:
    quartiles = statistics.quantiles(samples, n=4)
    return (
        f"{name}: median {statistics.median(samples):.3f} ms, mean "
        f"{statistics.fmean(samples):.3f} ms, p25-p75 {quartiles[0]:.3f}-{quartiles[2]:.3f} ms"
    )


def measure(count: int) -> None:
    import psycopg

    from benchmarks import harness

    harness.setup_django("postgres")
    harness.prepare_database()  # creates the benchmark database when it is missing
    with psycopg.connect(conninfo(), autocommit=True) as connection:
        connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial, note text)")

        def insert_and_commit() -> None:
            connection.execute("BEGIN")
            connection.execute(f"INSERT INTO {TABLE} (note) VALUES ('x')")
            connection.execute("COMMIT")

        try:
            print(summary("BEGIN; INSERT; COMMIT", timed_ms(count, insert_and_commit)))
            connection.execute("SET synchronous_commit = off")
            print(summary("  same, synchronous_commit=off", timed_ms(count, insert_and_commit)))
            print(summary("SELECT 1", timed_ms(count, lambda: connection.execute("SELECT 1"))))
        finally:
            connection.execute(f"DROP TABLE {TABLE}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=TRANSACTIONS)
    measure(parser.parse_args().transactions)
