"""A/B of the framework internals async_orders keeps against their public-API
stand-ins (:mod:`benchmarks.public_api`), on the figures a user sees.

Each round runs one benchmark module (``http_throughput``: POST and poll req/s;
``worker_throughput``: drained orders/s; ``latency``: POST -> done) once per side,
the side that goes first moving by one each round, so that the drift of a shared
machine falls on every side alike. A side is a value of ``ASYNC_ORDERS_BENCH_PUBLIC``
("" = the package as it is). Figures: medians of the rounds with their min-max, the
subject's own and its ratio to the baseline measured in the same run.

    .venv/bin/python -m benchmarks.internals worker_throughput "" publisher --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict

from benchmarks import harness
from benchmarks.public_api import SWITCH

ROW = re.compile(
    r"^row (?P<row>\d+) \[(?P<db>\w+)\] (?P<what>.*?): (?P<subject>[\d,.]+) vs "
    r"(?P<baseline>[\d,.]+) (?P<unit>.+?) -> ratio (?P<ratio>[\d.]+)"
)
#: Units where less is better: a side's gain is then baseline / subject.
LOWER_IS_BETTER = {"ms", "us"}


def one_run(module: str, side: str, database: str) -> list[dict[str, str]]:
    """The result rows one run of ``benchmarks.<module>`` prints with ``side``'s stand-ins."""
    env = {**os.environ, SWITCH: side}
    command = [sys.executable, "-m", f"benchmarks.{module}", "--db", database]
    done = subprocess.run(command, cwd=harness.ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: a row missed its target, which is news too
        raise RuntimeError(f"{command} with {SWITCH}={side!r} failed:\n{done.stderr[-3000:]}")
    rows = [match.groupdict() for line in done.stdout.splitlines() if (match := ROW.match(line))]
    if not rows:
        raise RuntimeError(f"no result row in:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return rows


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.2f} ({min(values):,.2f}-{max(values):,.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="a benchmark module of benchmarks/, e.g. http_throughput")
    parser.add_argument("sides", nargs="+", help='ASYNC_ORDERS_BENCH_PUBLIC values; "" = as is')
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default="postgres")
    args = parser.parse_args()
    figures: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    units: dict[str, str] = {}
    for round_ in range(args.rounds):
        shift = round_ % len(args.sides)
        for side in args.sides[shift:] + args.sides[:shift]:
            started = time.monotonic()
            for row in one_run(args.module, side, args.db):
                key = f"row {row['row']} {row['what']}"
                units[key] = row["unit"]
                for name in ("subject", "baseline", "ratio"):
                    figures[(key, side)][name].append(float(row[name].replace(",", "")))
                harness.log(
                    f"round {round_ + 1}, side {side or 'internals'!r}: {key}: "
                    f"{row['subject']} vs {row['baseline']} {row['unit']}, ratio {row['ratio']}"
                    f" ({time.monotonic() - started:.0f} s)"
                )
    for key, unit in units.items():
        print(f"\n{key} [{args.db}], {args.rounds} rounds, medians (min-max):")
        reference = figures[(key, args.sides[0])]
        for side in args.sides:
            got = figures[(key, side)]
            gain = statistics.median(reference["subject"]) / statistics.median(got["subject"])
            if unit in LOWER_IS_BETTER:
                gain = 1 / gain
            print(
                f"  {side or 'internals':>14}: {_spread(got['subject'])} {unit}, baseline "
                f"{_spread(got['baseline'])}, ratio {_spread(got['ratio'])}; "
                f"{args.sides[0] or 'internals'} / this: {gain:.3f}"
            )


if __name__ == "__main__":
    main()
