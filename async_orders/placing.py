"""Placing an order: admit it (idempotency key, the active-orders cap), create it
with its conflict locks, and publish it once its row is committed; and re-running one.

What the web layer and the admin call; the Celery wiring it publishes through is
:mod:`async_orders.tasks` (looked up there at call time, so one stub of
``async_orders.tasks.publish`` stops every message in a test).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from async_orders import locks, log_context, tasks, tracing
from async_orders.conf import conf
from async_orders.envelope import Envelope
from async_orders.exceptions import (
    IdempotencyKeyNeedsClient,
    IdempotencyKeyReused,
    TooManyActiveOrders,
)
from async_orders.models import ACTIVE, ANONYMOUS, Order, OrderStatus, RequesterLock
from async_orders.order_statements import count_rows, insert_row


def place_order(
    envelope: Envelope,
    owner: Any,
    origin: str,
    *,
    requester: str = ANONYMOUS,
    idempotency_key: str = "",
) -> tuple[Order, bool]:
    """Create the order and publish its message once the order's row is committed.

    A worker can therefore never receive an order it cannot read, and a rolled-back
    order is never published. With an ``idempotency_key`` already used by this
    requester, the existing order is returned instead (``created`` is False); the
    database's unique constraint decides between concurrent duplicates. An anonymous
    requester without a session may not send a key: nothing would tell two such
    clients apart. The order's conflict locks are taken in the same transaction
    (:class:`~async_orders.locks.Locked` if one is held).
    """
    if idempotency_key and requester == ANONYMOUS:
        raise IdempotencyKeyNeedsClient()
    with log_context.about(view=envelope.view_name):
        return _place(envelope, owner, origin, requester, idempotency_key)


def _place(
    envelope: Envelope, owner: Any, origin: str, requester: str, idempotency_key: str
) -> tuple[Order, bool]:
    try:
        with transaction.atomic():
            if existing := _admit(requester, idempotency_key):
                return _same_request(existing, envelope), False
            order = Order(
                **envelope.order_fields(),
                owner=owner if owner is not None and owner.is_authenticated else None,
                requester=requester,
                idempotency_key=idempotency_key,
                origin=origin,
                traceparent=tracing.current_traceparent(),
                status=OrderStatus.SCHEDULED if envelope.run_at else OrderStatus.QUEUED,
            )
            insert_row(order)
            log_context.now_about(order)
            if envelope.lock_keys:
                locks.take(order, envelope.lock_keys)  # raises Locked: nothing is kept
            transaction.on_commit(partial(tasks.publish, order))
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key inserted first: that one is ours.
        order = Order.objects.get(requester=requester, idempotency_key=idempotency_key)
        return _same_request(order, envelope), False
    return order, True


def _same_request(order: Order, envelope: Envelope) -> Order:
    if order.fingerprint != envelope.fingerprint:
        raise IdempotencyKeyReused()
    return order


def _admit(requester: str, idempotency_key: str) -> Order | None:
    """In the placing transaction: the order ``idempotency_key`` placed already, else
    ``None`` once the requester may place one more (``MAX_ACTIVE_ORDERS``; 429 if not).

    The requester's lock row is taken first, so concurrent placements of one requester
    count one after the other and the cap holds. The count and the key's lookup are one
    query: a capped POST costs the lock, that query and the INSERT, each a statement
    written once (:mod:`~async_orders.order_statements`). Anonymous requests
    without a session have no identity to count by (one cap for all would let one
    client lock out the rest): limit them with ``THROTTLE_CLASSES``.
    """
    cap = conf.MAX_ACTIVE_ORDERS
    if cap is None or requester == ANONYMOUS:
        return _keyed(requester, idempotency_key) if idempotency_key else None
    RequesterLock.take(requester)
    active, keyed = _count_active_and_keyed(requester, idempotency_key)
    if keyed:
        return _keyed(requester, idempotency_key)
    if active >= cap:
        raise TooManyActiveOrders(cap, retry_after=conf.RETRY_AFTER)
    return None


def _count_active_and_keyed(requester: str, idempotency_key: str) -> tuple[int, int]:
    """The requester's active orders, and its orders with ``idempotency_key`` (0 or 1)."""
    if not idempotency_key:
        return count_rows(Order, ("requester", requester), ("status", ACTIVE)), 0
    mine = Order.objects.filter(requester=requester).order_by()
    active = Q(status__in=ACTIVE)
    keyed = Q(idempotency_key=idempotency_key)
    counts = mine.filter(active | keyed).aggregate(
        active=Count("pk", filter=active), keyed=Count("pk", filter=keyed)
    )
    return counts["active"], counts["keyed"]


def _keyed(requester: str, idempotency_key: str) -> Order | None:
    mine = Order.objects.filter(requester=requester, idempotency_key=idempotency_key)
    return next(iter(mine.order_by()[:1]), None)


def rerun_order(order: Order) -> Order:
    """Place a new order with ``order``'s envelope, owner and origin (admin "re-run"),
    to run now; it takes the same conflict locks and has the same attempts."""
    envelope = replace(Envelope.of_order(order), run_at=None)
    again, _ = place_order(envelope, order.owner, order.origin, requester=order.requester)
    return again
