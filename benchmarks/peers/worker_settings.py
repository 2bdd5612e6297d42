"""Row 15: the drain of row 10 under each worker-settings profile, every side alike.

``python -m benchmarks.peers.worker_settings`` drains ``--jobs`` no-op jobs with the
2 worker processes of each side (async_orders, Celery + django-celery-results,
django-tasks-db), the workers started with one profile of
:mod:`benchmarks.worker_profiles` (``users``: no ``CELERY_DB_REUSE_MAX``; ``tuned``;
``quickstart``: docs/quickstart.md's settings verbatim; the ``pool`` ones: Django's
connection pool), all of them alternated in one run. For each drain it also counts
the CPU of every process by kind (as ``benchmarks.peers.cpu``) and the PostgreSQL
sessions opened, per job. The row with a target is the quickstart's: async_orders
against django-tasks-db, both with the quickstart's settings (issue 24, item 6);
the other ratios are printed for information.

    .venv/bin/python -m benchmarks.peers.worker_settings --jobs 1000 --runs 2
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial

from benchmarks import harness, worker_profiles, worker_throughput
from benchmarks.peers import cpu, measures

#: (profile, peer) -> target of async_orders' drain rate over the peer's, and why;
#: the others are printed for information.
TARGETS = {
    ("quickstart", measures.TASKS_DB): (
        0.9,
        "same class, both with docs/quickstart.md's settings as a new user has them",
    )
}
ROW = 15
DEFAULT_PROFILES = ("users", "tuned", "quickstart", "quickstart-pool")


@contextmanager
def profiled(
    profile: str, workers: Callable[[], AbstractContextManager[object]]
) -> Iterator[object]:
    """``workers`` started with ``profile``'s settings (this process keeps its own)."""
    saved = os.environ.get(worker_profiles.SWITCH)
    os.environ[worker_profiles.SWITCH] = profile
    try:
        with workers() as started:
            yield started
    finally:
        os.environ.pop(worker_profiles.SWITCH)
        if saved is not None:
            os.environ[worker_profiles.SWITCH] = saved


def sessions_opened(_: object = None) -> dict[str, float]:
    """PostgreSQL sessions of the benchmark database so far (those that ended are
    counted by the statistics collector; the open ones are added)."""
    from benchmarks import settings

    rows = harness._postgres_admin(
        "SELECT sessions + numbackends FROM pg_stat_database WHERE datname = %s",
        [settings.DATABASE_NAME],
    )
    return {"sessions": float(rows[0][0])}


def metered(side: measures.Side, profile: str, jobs: int, used: dict[str, list]) -> float:
    """One drain: its rate; its CPU and sessions per job go into ``used``."""

    def meter(process: object) -> dict[str, float]:
        return cpu.machine_cpu(process) | sessions_opened()

    workers = partial(profiled, profile, side.workers)
    rate, per_job = worker_throughput.metered_drain(side.publish, jobs, workers, meter)
    used.setdefault(f"{side.name} @ {profile}", []).append(per_job)
    return rate


def run(jobs: int, runs: int, profiles: tuple[str, ...], sides: tuple[measures.Side, ...]) -> None:
    used: dict[str, list[dict[str, float]]] = {}
    drains: dict[str, Callable[[], float]] = {
        f"{side.name} @ {profile}": partial(metered, side, profile, jobs, used)
        for profile in profiles
        for side in sides
    }
    samples = harness.alternate(runs, drains)
    print_usage(used)
    if sides != measures.SIDES:
        return  # an A/B of profiles on some sides: the figures above are the result
    for profile in profiles:
        subject = samples[f"{measures.SUBJECT.name} @ {profile}"]
        for peer in measures.PEERS:
            baseline = samples[f"{peer.name} @ {profile}"]
            target, why = TARGETS.get((profile, peer), (None, "the same settings on both sides"))
            harness.report(
                harness.Result(
                    ROW,
                    f"drain, worker settings {profile}, vs {peer.name}",
                    measures.DATABASE,
                    subject.median,
                    baseline.median,
                    "jobs/s",
                    target,
                    True,
                    subject.spread,
                    baseline.spread,
                    why,
                )
            )


def print_usage(used: dict[str, list[dict[str, float]]]) -> None:
    """CPU in ms per job by kind of process, and PostgreSQL sessions per job: the
    median of the runs of each side and profile."""
    kinds = sorted({kind for runs in used.values() for one in runs for kind in one})
    print("\n| side @ profile | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for name, runs in used.items():
        cells = []
        for kind in kinds:
            scale = 1 if kind == "sessions" else 1000
            values = sorted(one.get(kind, 0.0) * scale for one in runs)
            cells.append(f"{values[len(values) // 2]:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("(ms of CPU per job by kind of process; sessions: PostgreSQL sessions opened per job)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per drain")
    parser.add_argument("--runs", type=int, default=2, help="drains of each side and profile")
    parser.add_argument(
        "--profiles",
        nargs="+",
        default=DEFAULT_PROFILES,
        choices=worker_profiles.PROFILES,
        help="worker-settings profiles (benchmarks.worker_profiles)",
    )
    parser.add_argument(
        "--subject-only", action="store_true", help="async_orders alone: an A/B of profiles"
    )
    args = harness.parse_and_prepare(parser)
    sides = (measures.SUBJECT,) if args.subject_only else measures.SIDES
    run(args.jobs, args.runs, tuple(args.profiles), sides)


if __name__ == "__main__":
    main()
