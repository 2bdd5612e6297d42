"""How PostgreSQL's statistics target for ``labels`` decides row 32's plan.

With :mod:`benchmarks.label_filter`'s million labelled orders, for each target asked
for, ``ANALYZE`` runs ``--analyses`` times, and after each one the first page's plan
is printed for a label 1 % of the orders carry and for one that 50 carry: ANALYZE's
time, the database's own time for the page, and the top of the plan with the rows it
estimated. Migration 0014 chose the target from this.

    .venv/bin/python -m benchmarks.label_statistics --targets -1 300 1000 --analyses 12
"""

from __future__ import annotations

import argparse
import importlib
import time

from benchmarks import harness
from benchmarks.label_filter import fill, first_page_plan

COMMON, RARE = "tenant:t7", "run:r123"
TABLE = "async_orders_order"
#: The target the benchmark database is left with: the migration's.
SHIPPED = importlib.import_module("async_orders.migrations.0014_labels_statistics")


def plan_of(requester: str, label: str) -> str:
    lines = first_page_plan(requester, label)
    return f"{lines[-1].strip()}; {lines[1].strip()[:70]}"


def set_target(target: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN labels SET STATISTICS {target}")


def analyse(target: int, analyses: int, requester: str) -> None:
    from django.db import connection

    set_target(target)
    harness.log(f"statistics target {target} (-1: the server's default)")
    for _ in range(analyses):
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")
        took = time.monotonic() - started
        harness.log(f"  ANALYZE {took:.2f} s; {COMMON}: {plan_of(requester, COMMON)}")
        harness.log(f"  {'':>14}{RARE}: {plan_of(requester, RARE)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, nargs="+", default=[-1, 300, 1000])
    parser.add_argument("--analyses", type=int, default=8)
    arguments = harness.parse_and_prepare(parser)
    from django.contrib.auth.models import User
    from django.db import connection

    user, _ = User.objects.get_or_create(username="bench-labels")
    fill(f"user:{user.pk}")
    for target in arguments.targets:
        analyse(target, arguments.analyses, f"user:{user.pk}")
    set_target(SHIPPED.LABELS_STATISTICS)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TABLE} CASCADE")
    User.objects.filter(pk=user.pk).delete()


if __name__ == "__main__":
    main()
