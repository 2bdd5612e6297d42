"""``python -m benchmarks.peers``: rows 8-11 alone; the options make a quick run.

For instance ``python -m benchmarks.peers --jobs 50 --seconds 1 --samples 3 --runs 1``
checks the machinery in about a minute; the defaults are the sizes ``make bench`` uses.
"""

from __future__ import annotations

import argparse

from benchmarks import harness
from benchmarks.peers import measures


def parse() -> measures.Size:
    default = measures.Size()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("--jobs", type=int, default=default.jobs, help="jobs per drain")
    parser.add_argument("--seconds", type=int, default=default.seconds, help="per wrk run")
    parser.add_argument(
        "--samples", type=int, default=default.samples, help="latency samples per run"
    )
    parser.add_argument("--runs", type=int, default=default.runs, help="runs of each side")
    args = harness.parse_and_prepare(parser)
    return measures.Size(args.jobs, args.seconds, args.samples, args.runs)


if __name__ == "__main__":
    measures.run(parse())
