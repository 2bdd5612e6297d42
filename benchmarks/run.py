"""``make bench``: every benchmark, each in its own process, then the results table.

Each benchmark prints its own ratio as its last line; this collects them into one
Markdown table (the one in docs/performance.md) and drops the benchmark database.
Exits non-zero when a row misses its target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness

#: (module, database) in the order they run; SQLite only where it is cheap.
PLAN = [
    ("http_throughput", "postgres"),
    ("http_throughput", "sqlite"),
    ("worker_throughput", "postgres"),
    ("worker_throughput", "sqlite"),
    ("latency", "postgres"),
    ("latency", "sqlite"),
    ("progress", "postgres"),
    ("table_size", "postgres"),
    ("peers", "postgres"),
    ("peers.worker_settings", "postgres"),
    ("task_drain", "postgres"),
    ("metrics_overhead", "postgres"),
    ("batch_placing", "postgres"),
    ("batch_poll", "postgres"),
    ("label_filter", "postgres"),
]


def run_all(results_file: Path) -> None:
    env = {**os.environ, "ASYNC_ORDERS_BENCH_RESULTS": str(results_file)}
    for module, database in PLAN:
        print(f"\n== benchmarks.{module} --db {database}", flush=True)
        command = [sys.executable, "-m", f"benchmarks.{module}", "--db", database]
        subprocess.run(command, cwd=harness.ROOT, env=env, check=True)


def table(results: list[harness.Result]) -> str:
    lines = [
        "| row | measures | db | subject | baseline | unit | ratio | target | result | why |",
        "|---|---|---|---:|---:|---|---:|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.row} | {r.what} | {r.database} | {r.subject_text} | {r.baseline_text} "
            f"| {r.unit} | {r.ratio:.2f} | {r.target_text} | {r.verdict} | {r.why} |"
        )
    return "\n".join(lines)


def main() -> None:
    started = time.monotonic()
    results_file = Path(tempfile.mkdtemp(prefix="async-orders-bench-")) / "results.jsonl"
    try:
        run_all(results_file)
    finally:
        harness.drop_database()
    results = [harness.Result(**json.loads(line)) for line in results_file.read_text().splitlines()]
    print(f"\n{table(results)}\n\n({time.monotonic() - started:.0f} s in all)")
    sys.exit(0 if all(result.passed for result in results) else 1)


if __name__ == "__main__":
    main()
