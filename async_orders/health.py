"""Whether the parts orders depend on are up: facts for probes and monitoring.

Each fact is a boolean read from the outside world as it is now: the broker and the
database answer, the reconciler renewed its lease lately, no due order waits too
long, a worker's presence lease is fresh. Times are compared on the database's clock,
the one the leases are written with. A probe names the facts it asks: ``live`` none
(the process answering is the fact: a liveness probe must not restart every pod
when the database fails over), ``ready`` the database, ``all`` every fact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, connection
from django.db.models import Q
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, Now

from async_orders.broker.probes import broker_reachable
from async_orders.conf import conf
from async_orders.models import STARTABLE, Order, ProcessLease
from async_orders.worker import role_leases

logger = logging.getLogger("async_orders")


def database_reachable() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


def reconciler_ran() -> bool:
    """The reconcilers' leader renewed its lease within its leadership's time to
    live."""
    recent = Q(renewed_at__gte=_ago(role_leases.leadership_ttl()))
    return ProcessLease.objects.filter(recent, name=role_leases.RECONCILER).exists()


def queue_moving() -> bool:
    """No order has been due for longer than ``HEALTH_MAX_QUEUE_AGE``: due since its
    ``run_at`` when it was scheduled, else since it was created."""
    due_since = Coalesce("run_at", "created_at")
    waiting = Order.objects.filter(status__in=STARTABLE).alias(due_since=due_since)
    return not waiting.filter(due_since__lt=_ago(conf.HEALTH_MAX_QUEUE_AGE)).exists()


def workers_alive() -> bool:
    """At least one worker renewed its presence lease within ``WORKER_LOST_AFTER``."""
    fresh = Q(renewed_at__gte=_ago(conf.WORKER_LOST_AFTER))
    workers = Q(name__startswith=role_leases.WORKER_PREFIX)
    return ProcessLease.objects.filter(fresh, workers).exists()


def _ago(seconds: float) -> CombinedExpression:
    return Now() - timedelta(seconds=seconds)


#: Every fact by name, in the order reports list them.
FACTS: dict[str, Callable[[], bool]] = {
    "broker": broker_reachable,
    "database": database_reachable,
    "reconciler": reconciler_ran,
    "queue": queue_moving,
    "workers": workers_alive,
}

#: The facts each probe asks.
PROBES: dict[str, tuple[str, ...]] = {"live": (), "ready": ("database",), "all": tuple(FACTS)}


@dataclass(frozen=True)
class Health:
    """The facts one probe asked, each true or false."""

    facts: dict[str, bool]

    @property
    def healthy(self) -> bool:
        return all(self.facts.values())

    def line(self) -> str:
        """The report in one line: ``healthy: broker ok, database FAILED, ...``."""
        said = ", ".join(f"{name} {'ok' if ok else 'FAILED'}" for name, ok in self.facts.items())
        return f"{'healthy' if self.healthy else 'unhealthy'}: {said or 'no facts asked'}"


def check(probe: str = "all") -> Health:
    """Ask the facts of ``probe``. A fact that needs the database is false while the
    database cannot answer: a report is never an exception."""
    return Health({name: _ask(FACTS[name]) for name in PROBES[probe]})


def _ask(fact: Callable[[], bool]) -> bool:
    try:
        return fact()
    except DatabaseError:
        return False
