"""Named process leases on the database's clock: who leads the reconcilers, and
which workers are alive.

A lease is one row, renewed by one conditional UPDATE that only its holder, or
anyone once it has expired, can win: several reconcilers can run, one leads. The
row also remembers since when its holder has renewed without a gap, which is how
the reconciler knows the database has been reachable long enough for every live
worker to have renewed its own leases.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Case, Q, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now

from async_orders.conf import conf
from async_orders.models import ProcessLease

#: The reconcilers' leadership.
RECONCILER = "reconciler"
#: Prefix of the workers' presence leases.
WORKER_PREFIX = "worker:"


def leadership_ttl() -> float:
    """How long the reconcilers' leader may go without renewing before a spare takes
    over: two passes, so that a spare trying every half pass leads within two and a
    half passes of the leader's last renewal, and one slow pass does not cost the lead.
    A gap this long may also hide a database outage, so a new leader watches afresh."""
    return 2 * conf.RECONCILE_INTERVAL


def this_process() -> str:
    """A name for the calling process: ``<host>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def hold(name: str, holder: str, ttl: float) -> timedelta | None:
    """Take or renew the lease ``name`` for ``holder``; ``ttl`` seconds without a
    renewal let another holder take it over.

    Returns for how long ``holder`` has held it without a gap, or ``None`` when
    another holder has it.
    """
    expired = Q(renewed_at__lt=_ago(ttl))
    mine = ProcessLease.objects.filter(Q(holder=holder) | expired, name=name)
    renewed = mine.update(
        holder=holder,
        since=Case(When(Q(holder=holder) & ~expired, then="since"), default=Now()),
        renewed_at=Now(),
    )
    if not renewed and not _create(name, holder):
        return None
    since, now = ProcessLease.objects.values_list("since", Now()).get(name=name)
    return now - since


def _create(name: str, holder: str) -> bool:
    try:
        with transaction.atomic():
            ProcessLease.objects.create(name=name, holder=holder, renewed_at=Now(), since=Now())
    except IntegrityError:  # someone else holds it
        return False
    return True


def expired(prefix: str, ttl: float) -> list[str]:
    """The names of the leases named ``prefix...`` not renewed for ``ttl`` seconds."""
    stale = ProcessLease.objects.filter(name__startswith=prefix, renewed_at__lt=_ago(ttl))
    return list(stale.values_list("name", flat=True))


def forget(name: str, ttl: float) -> bool:
    """Delete the lease ``name`` if it is still expired: ``True`` for exactly one of
    the processes that try, so that what its expiry triggers happens once."""
    still_expired = ProcessLease.objects.filter(name=name, renewed_at__lt=_ago(ttl))
    return still_expired.delete()[0] == 1


def release(name: str, holder: str) -> None:
    """Give the lease ``name`` up at once, if ``holder`` still has it: a process that
    stopped cleanly is not to be taken for one that died."""
    ProcessLease.objects.filter(name=name, holder=holder).delete()


def _ago(seconds: float) -> CombinedExpression:
    return Now() - timedelta(seconds=seconds)
