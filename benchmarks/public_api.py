"""Public-API stand-ins for the parts of async_orders written against framework
internals (issue 23, item 7), so that a benchmark can run one side with them and
the other without: ``ASYNC_ORDERS_BENCH_PUBLIC=statements`` (names of
:data:`STAND_INS`, comma-separated) in the environment of every process a benchmark
starts. ``benchmarks.apps`` applies them when Django is ready; ``python -m
benchmarks.internals`` alternates the sides. Nothing here is part of the package.

Only the internals the package keeps have a stand-in here (docs/performance.md,
"Framework internals kept, and why"); the ones it replaced were measured with the
stand-ins and driver of commit ``6255e8b``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

SWITCH = "ASYNC_ORDERS_BENCH_PUBLIC"


def _orm_statements() -> None:
    """The statements of order_statements.py built by the ORM on each call: the claim
    as a conditional ``update()`` and a ``get()`` in one transaction, outcomes and
    progress writes as a conditional ``update()``, the cap as a ``count()`` before
    ``save(force_insert=True)``, the poll as ``shown().one(pk)``."""
    from django.db import router, transaction
    from django.db.models import F, Q
    from django.db.models.functions import Now

    from async_orders import models, placing
    from async_orders.order_statements import Limit

    def claim_row(model, pk, worker, now, running, startable):  # type: ignore[no-untyped-def]
        due = Q(run_at__isnull=True) | Q(run_at__lte=now)
        with transaction.atomic(using=router.db_for_write(model)):
            won = model.objects.filter(due, pk=pk, status__in=startable).update(
                status=running,
                started_at=now,
                heartbeat_at=Now(),
                attempts=F("attempts") + 1,
                worker=worker,
            )
            return model.objects.defer("response_body").get(pk=pk) if won else None

    def update_attempt(model, pk, attempt, running, changes, *, unless_canceled=False):  # type: ignore[no-untyped-def]
        mine = model.objects.filter(pk=pk, status=running, attempts=attempt)
        if unless_canceled:
            mine = mine.filter(cancel_requested=False)
        return mine.update(**changes) == 1

    def insert_row(instance: Any, below: Limit | None = None) -> bool:
        if below is not None:
            (name, value), (listed, values) = below.equal, below.among
            counted = type(instance).objects.filter(**{name: value, f"{listed}__in": values})
            if counted.count() >= below.most:
                return False
        instance.save(force_insert=True)
        return True

    def upsert_row(instance: Any, unique: str, update: str) -> None:
        type(instance).objects.bulk_create(
            [instance], update_conflicts=True, unique_fields=[unique], update_fields=[update]
        )

    models.claim_row = claim_row
    models.update_attempt = update_attempt
    models.upsert_row = upsert_row
    placing.insert_row = insert_row
    models.OrderQuerySet.shown_one = lambda self, pk: self.shown().one(pk)


#: The stand-ins by name, as ``ASYNC_ORDERS_BENCH_PUBLIC`` names them.
STAND_INS: dict[str, Callable[[], None]] = {
    "statements": _orm_statements,
}


def apply_from_environment() -> list[str]:
    """Apply the stand-ins ``ASYNC_ORDERS_BENCH_PUBLIC`` names; the names applied."""
    names = [name for name in os.environ.get(SWITCH, "").split(",") if name]
    for name in names:
        STAND_INS[name]()
    return names
