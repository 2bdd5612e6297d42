"""A/B of the framework internals async_orders keeps against their public-API
stand-ins (:mod:`benchmarks.public_api`), on figures a user sees: POST and poll
req/s (as row 1 and 2) and drained orders/s (as row 3).

A side is a value of ``ASYNC_ORDERS_BENCH_PUBLIC`` (``internals``: the package as it
is), given to the processes started for it: one gunicorn per side, all started
first, then wrk against each in turn; or one prefork worker per side and drain,
started for each drain. Every round measures every side, the first one moving by
one each round (``harness.alternate``), so that the drift of a shared machine falls
on every side alike. Figures: medians of the rounds with their min-max, and each
side's against the first side's.

    .venv/bin/python -m benchmarks.internals --post --drain internals statements
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import partial
from typing import TypeVar

from benchmarks import harness, http_throughput, worker_throughput
from benchmarks.public_api import SWITCH

T = TypeVar("T")

AS_IS = "internals"
PLACE = "/async/noop/order/"
WARM_UP_SECONDS = 2


@contextmanager
def side_of(side: str, start: Callable[[], AbstractContextManager[T]]) -> Iterator[T]:
    """Start processes with ``start`` and ``side``'s stand-ins; this process's own
    environment is left as it was."""
    saved = os.environ.get(SWITCH)
    os.environ[SWITCH] = "" if side == AS_IS else side
    try:
        with ExitStack() as stack:
            started = stack.enter_context(start())
            os.environ.pop(SWITCH)
            if saved is not None:
                os.environ[SWITCH] = saved
            yield started
    finally:
        os.environ.pop(SWITCH, None)
        if saved is not None:
            os.environ[SWITCH] = saved


def http_rates(sides: list[str], rounds: int, seconds: int) -> dict[str, harness.Samples]:
    """POST and poll req/s of one gunicorn per side, alternated, and the CPU its
    processes spent per request in ms (steadier than a rate on a shared machine)."""
    sessions = http_throughput.client_sessions()
    place = http_throughput.post_script({"data": {"name": "x"}}, sessions)
    order_ids, _ = http_throughput.polled_rows()
    poll = http_throughput.get_script(f"/async/orders/{pk}/" for pk in order_ids)
    cpu: dict[str, list[float]] = {}

    def measure(name: str, server: tuple[int, str], path: str, script: str) -> float:
        master, url = server
        before = cpu_seconds(master)
        rate = http_throughput.rate(url, path, script, seconds)
        used = (cpu_seconds(master) - before) / max(rate * seconds, 1) * 1000
        cpu.setdefault(name, []).append(used)
        harness.log(f"{name}: gunicorn CPU {used:.2f} ms per request")
        return rate

    with ExitStack() as stack:
        servers = {side: stack.enter_context(side_of(side, gunicorn_process)) for side in sides}
        for _, url in servers.values():
            harness.wrk(url + PLACE, place, WARM_UP_SECONDS)  # a fresh gunicorn is slow
            harness.wrk(url + "/", poll, WARM_UP_SECONDS)
        measures: dict[str, Callable[[], float]] = {}
        for side, server in servers.items():
            for figure, path, script in (("POST", PLACE, place), ("poll", "/", poll)):
                name = f"{figure} req/s, {side}"
                measures[name] = partial(measure, f"{figure} CPU ms, {side}", server, path, script)
        rates = harness.alternate(rounds, measures)
    return rates | {name: harness.Samples(values) for name, values in cpu.items()}


@contextmanager
def gunicorn_process() -> Iterator[tuple[int, str]]:
    """:func:`harness.gunicorn`'s master process (to read its CPU) and its URL."""
    before = set(harness._children(os.getpid()))
    with harness.gunicorn() as url:
        [master] = [pid for pid in harness._children(os.getpid()) if pid not in before]
        yield master, url


def drain_rates(sides: list[str], rounds: int, batch: int) -> dict[str, harness.Samples]:
    """Orders/s one prefork worker (2 processes) per side drains, and the worker's CPU
    per order in ms, alternated."""
    cpu: dict[str, list[float]] = {side: [] for side in sides}

    def drain(side: str) -> float:
        worker = partial(side_of, side, harness.celery_worker)
        rate, used = worker_throughput.metered_drain(
            worker_throughput.publish_orders, batch, worker
        )
        cpu[side].append(used["worker"] * 1000)
        harness.log(f"{side}: worker CPU {cpu[side][-1]:.2f} ms per order")
        return rate

    rates = harness.alternate(
        rounds, {f"drain orders/s, {side}": partial(drain, side) for side in sides}
    )
    return rates | {f"worker CPU ms/order, {side}": harness.Samples(cpu[side]) for side in sides}


def print_table(samples: dict[str, harness.Samples], sides: list[str]) -> None:
    """Each figure's median (min-max) per side, and the first side's median over it."""
    figures = sorted({name.rsplit(", ", 1)[0] for name in samples})
    for figure in figures:
        print(f"\n{figure}, {len(samples[f'{figure}, {sides[0]}'].values)} rounds:")
        first = samples[f"{figure}, {sides[0]}"].median
        for side in sides:
            got = samples[f"{figure}, {side}"]
            low, high = got.spread
            print(
                f"  {side:>14}: {got.median:,.2f} ({low:,.2f}-{high:,.2f}); "
                f"{sides[0]} / {side} = {first / got.median:.3f}"
                f"  [{', '.join(f'{v:,.1f}' for v in got.values)}]"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sides", nargs="+", help=f"{AS_IS}, or ASYNC_ORDERS_BENCH_PUBLIC values")
    parser.add_argument("--post", action="store_true", help="POST and poll req/s")
    parser.add_argument("--drain", action="store_true", help="drained orders/s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=http_throughput.SECONDS)
    parser.add_argument("--batch", type=int, default=1000)
    args = harness.parse_and_prepare(parser)
    samples: dict[str, harness.Samples] = {}
    if args.post:
        samples |= http_rates(args.sides, args.rounds, args.seconds)
    if args.drain:
        samples |= drain_rates(args.sides, args.rounds, args.batch)
    print_table(samples, args.sides)


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid`` and its children (gunicorn's workers)."""
    ticks = [harness._cpu_ticks(pid), *map(harness._cpu_ticks, harness._children(pid))]
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
