"""The reconciler: the Order rows are the truth, so whatever the broker or a worker
lost is found there and made right.

- A due order whose message was never sent (broker down at POST time) or has not
  been picked up for ``REPUBLISH_AFTER`` seconds is published again.
- When the broker lost its messages (Redis restarted empty: a key the reconciler
  keeps there is gone), every order still waiting is published again at once.
- When a worker died (its presence lease expired), the messages it had taken and not
  acknowledged are put back in their queue (Redis: :mod:`.unacked`); with a broker
  whose unacknowledged messages cannot be read, every order waiting is published
  again.
- A running order whose lease has gone unrenewed for ``WORKER_LOST_AFTER`` +
  ``LEASE_MARGIN`` seconds is queued again if it has attempts left, else failed as
  "worker lost"; one asked to cancel is canceled instead. Its locks are released when
  it ends. Only after the reconciler itself has reached the database for that long
  without a gap: time the database was unreachable never makes a worker look dead.

Duplicate messages are harmless: only one worker can claim an order. Run it with
``manage.py reconcile_orders --loop``: several may run, one leads.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import DurationField, Func, Q
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, Now
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from async_orders import log_context, signals
from async_orders.broker import publishing, unacked
from async_orders.broker.probes import broker_lost_messages
from async_orders.conf import conf
from async_orders.models import STARTABLE, Order, OrderStatus
from async_orders.outage import UNREACHABLE, reconnect_later
from async_orders.worker import role_leases

if TYPE_CHECKING:
    from django.db.models.sql.compiler import _AsSqlType

logger = logging.getLogger("async_orders")

#: Orders handled per query, so that one statement stays short after a long outage.
BATCH = 500


@dataclass
class Reconciliation:
    """What one pass did, order ids per outcome; ``leader`` is False when another
    reconciler leads and this one did nothing."""

    leader: bool = True
    republished: list[uuid.UUID] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    canceled: list[uuid.UUID] = field(default_factory=list)
    #: Waiting orders failed as ``start_deadline_exceeded``: no worker came in time.
    expired: list[uuid.UUID] = field(default_factory=list)


def reconcile(holder: str | None = None) -> Reconciliation:
    """One pass over the orders that need help, if ``holder`` leads (or may take the
    lead). Safe to run from several places at once.

    ``holder`` defaults to this host's name, so that one-shot passes run from cron or
    Celery beat on one host keep the lead from one pass to the next.
    """
    holder = holder or socket.gethostname()
    watched = role_leases.hold(role_leases.RECONCILER, holder, role_leases.leadership_ttl())
    if watched is None:
        return Reconciliation(leader=False)
    report = Reconciliation()
    _expire_unstarted(report)
    _republish_lost(report)
    _republish_unsent(report)
    if watched > timedelta(seconds=_grace()):
        _recover_lost(report)
    if report.republished or report.requeued or report.failed or report.canceled or report.expired:
        logger.warning(
            "Reconciled orders: %d republished, %d requeued, %d failed as worker lost, "
            "%d canceled, %d past their start deadline.",
            *(len(report.republished), len(report.requeued), len(report.failed)),
            *(len(report.canceled), len(report.expired)),
        )
    signals.orders_reconciled.send(sender=Reconciliation, report=report)
    return report


def reconcile_forever(stop: threading.Event) -> None:
    """Run a pass every ``RECONCILE_INTERVAL`` seconds until ``stop`` is set; an
    unreachable database or broker is logged and the next pass tries again.

    The leader's passes start an interval apart, however long each took, so that its
    lease is renewed in time; a spare tries every half interval, so that it takes over
    soon after the leader's lease ends."""
    holder = f"{role_leases.this_process()}:{uuid.uuid4().hex[:8]}"
    while True:
        started = time.monotonic()
        if _pass(holder):
            pause = conf.RECONCILE_INTERVAL - (time.monotonic() - started)
        else:
            pause = conf.RECONCILE_INTERVAL / 2
        if stop.wait(max(0.0, pause)):
            return


def _pass(holder: str) -> bool:
    """One pass, its failures logged: whether ``holder`` led it (a failed pass counts
    as led, so that it is tried again an interval later)."""
    try:
        return reconcile(holder).leader
    except UNREACHABLE:
        logger.warning("The reconciler cannot reach the database; trying again.")
        reconnect_later()
    except Exception:
        logger.exception("A reconciler pass failed; trying again.")
    return True


def _grace() -> float:
    return conf.WORKER_LOST_AFTER + conf.LEASE_MARGIN


def _republish_lost(report: Reconciliation) -> None:
    """Publish again what the broker lost, or what a dead worker took with it."""
    everything_waiting = Q(published_at__lt=timezone.now())
    lost, died = broker_lost_messages(), _workers_died()  # each death counted this pass
    if lost:
        _republish(everything_waiting, report)
    elif died:
        # What the dead took was delivered before its last renewal, plus at most one
        # heartbeat: earlier than this, however soon after its death this runs.
        held = unacked.held_since(conf.WORKER_LOST_AFTER - conf.HEARTBEAT_INTERVAL)
        if held is None:
            _republish(everything_waiting, report)
        else:
            _restore_waiting(held, report)


def _workers_died() -> bool:
    """Whether a worker's presence lease expired since the last pass (each expiry is
    counted by one reconciler only)."""
    died = False
    ttl = conf.WORKER_LOST_AFTER
    for gone in role_leases.expired(role_leases.WORKER_PREFIX, ttl):
        if role_leases.forget(gone, ttl):
            logger.warning("Worker %s is gone; the messages it held are queued again.", gone)
            died = True
    return died


def _restore_waiting(held: list[unacked.Held], report: Reconciliation) -> None:
    """Put back the ``held`` messages of orders still waiting. Those of running orders
    stay: the order's lease decides whether it is recovered."""
    for start in range(0, len(held), BATCH):
        batch = held[start : start + BATCH]
        pks = [message.order_id for message in batch]
        waiting = Order.objects.filter(pk__in=pks, status__in=STARTABLE, external_id="")
        still_waiting = set(waiting.values_list("pk", flat=True))
        restored = [message for message in batch if message.order_id in still_waiting]
        unacked.restore(message.tag for message in restored)
        report.republished.extend(message.order_id for message in restored)


def _republish_unsent(report: Reconciliation) -> None:
    stale = timezone.now() - timedelta(seconds=conf.REPUBLISH_AFTER)
    waiting_long = Q(published_at__lt=stale) & (Q(run_at__isnull=True) | Q(run_at__lt=stale))
    _republish(Q(published_at__isnull=True) | waiting_long, report)


def _republish(which: Q, report: Reconciliation) -> None:
    """Publish the startable orders ``which`` selects again, each claimed first (its
    ``published_at`` moved on) so that two reconcilers never both send it."""
    # An order following another backend's task has no message of ours to resend.
    waiting = Order.objects.filter(which, status__in=STARTABLE, external_id="").order_by("pk")
    after = Q()
    while batch := list(waiting.filter(after)[:BATCH]):
        after = Q(pk__gt=batch[-1].pk)
        for order in batch:
            claimed = Order.objects.filter(pk=order.pk, published_at=order.published_at)
            if claimed.filter(status__in=STARTABLE).update(published_at=timezone.now()):
                publishing.send_order(order)
                report.republished.append(order.pk)


def _expire_unstarted(report: Reconciliation) -> None:
    """Fail the waiting orders that no worker started within their start deadline (a
    worker that claims one later fails it too, calling nothing). The database picks
    the expired ones, so that a batch of orders still within their deadlines never
    hides one past it."""
    waiting = Order.objects.filter(status__in=STARTABLE, start_deadline__isnull=False)
    expired = waiting.alias(start_by=_start_by()).filter(start_by__lt=timezone.now())
    for order in expired.order_by("start_by")[:BATCH]:
        with log_context.about(order):
            if order.expire_unstarted():
                report.expired.append(order.pk)


def _start_by() -> CombinedExpression:
    """When a waiting order must have started: its deadline after it fell due, as
    :meth:`Order.start_deadline_passed` counts it."""
    return Coalesce("run_at", "created_at") + SecondsAsDuration("start_deadline")


class SecondsAsDuration(Func):
    """A float number of seconds as a duration the database adds to a date: an
    interval on PostgreSQL. Django keeps durations as integer microseconds on SQLite,
    where its own product of a float and a duration is a float its date arithmetic
    refuses."""

    output_field = DurationField()
    template = "(%(expressions)s * INTERVAL '1 second')"

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _AsSqlType:
        microseconds = "CAST(%(expressions)s * 1000000 AS INTEGER)"
        return self.as_sql(compiler, connection, template=microseconds, **extra)


def _recover_lost(report: Reconciliation) -> None:
    lost = Q(heartbeat_at__lt=Now() - timedelta(seconds=_grace()))
    outcomes = {
        OrderStatus.QUEUED: report.requeued,
        OrderStatus.FAILED: report.failed,
        OrderStatus.CANCELED: report.canceled,
    }
    # Another backend's worker runs the orders that follow its tasks: none of ours lost them.
    running = Order.objects.filter(lost, status=OrderStatus.RUNNING, external_id="")
    for order in running[:BATCH]:
        with log_context.about(order):
            outcome = order.recover_lost(lost)
            if outcome == OrderStatus.QUEUED:
                publishing.send_order(order)
        if outcome is not None:
            outcomes[outcome].append(order.pk)


def recover_order_of_dead_process(order_id: str, process: str) -> None:
    """Recover the order ``process`` was running when it died, if it still is: the
    worker's main process calls this the moment one of its pool processes dies, so
    the order need not wait for its lease to expire. A database it cannot reach is
    logged, never raised: the order is then recovered when its lease expires."""
    died_running_it = Q(worker=process)
    try:
        running = Order.objects.filter(died_running_it, pk=order_id, status=OrderStatus.RUNNING)
        order = running.first()
        if order is not None and order.recover_lost(died_running_it) == OrderStatus.QUEUED:
            publishing.send_order(order)
    except UNREACHABLE:
        logger.warning("Order %s: its process died; the reconciler will recover it.", order_id)
