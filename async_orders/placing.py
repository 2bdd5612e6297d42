"""Placing an order: admit it (idempotency key, the active-orders cap), create it
with its conflict locks, and publish it once its row is committed; and re-running one.

What the web layer and the admin call; it publishes through
:mod:`async_orders.broker.publishing` (looked up there at call time, so one stub of
``async_orders.broker.publishing.send_order`` stops every message in a test).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from async_orders import locks, log_context, tracing
from async_orders.broker import publishing
from async_orders.conf import conf
from async_orders.envelope import Envelope
from async_orders.exceptions import (
    IdempotencyKeyNeedsClient,
    IdempotencyKeyReused,
    OrderNotRerunnable,
    TooManyActiveOrders,
)
from async_orders.models import ACTIVE, RERUNNABLE, Order, OrderStatus, RequesterLock
from async_orders.order_statements import Limit, insert_row
from async_orders.ownership import ANONYMOUS, UNCOUNTED


def place_order(
    envelope: Envelope,
    owner: Any,
    origin: str,
    *,
    requester: str = ANONYMOUS,
    idempotency_key: str = "",
    submit: Submit | None = None,
    batch_id: uuid.UUID | None = None,
    rerun_of: Order | None = None,
) -> tuple[Order, bool]:
    """Create the order and publish its message once the order's row is committed.

    A worker can therefore never receive an order it cannot read, and a rolled-back
    order is never published. With an ``idempotency_key`` already used by this
    requester, the existing order is returned instead (``created`` is False); the
    database's unique constraint decides between concurrent duplicates. An anonymous
    requester without a session may not send a key: nothing would tell two such
    clients apart. The order's conflict locks are taken in the same transaction
    (:class:`~async_orders.locks.Locked` if one is held). ``batch_id`` names the
    batch it is an item of (:mod:`async_orders.batches`).

    ``submit`` sends the new order on its way, last in its transaction: by default
    its message, published once the row is committed; a task of another ``TASKS``
    backend is enqueued with that backend instead
    (:func:`async_orders.followed_tasks.enqueue_followed`).
    """
    if idempotency_key and requester == ANONYMOUS:
        raise IdempotencyKeyNeedsClient()
    with log_context.about(view=envelope.view_name):
        return _place(
            envelope,
            owner,
            origin,
            requester,
            idempotency_key,
            submit or _publish,
            batch_id,
            rerun_of,
        )


#: Sends a new order on its way, inside the transaction that inserts it.
Submit = Callable[[Order], None]


def _publish(order: Order) -> None:
    transaction.on_commit(partial(publishing.send_order, order))


def _place(
    envelope: Envelope,
    owner: Any,
    origin: str,
    requester: str,
    idempotency_key: str,
    submit: Submit,
    batch_id: uuid.UUID | None,
    rerun_of: Order | None,
) -> tuple[Order, bool]:
    try:
        with transaction.atomic():
            cap = _cap(requester)
            if cap is not None:
                # Concurrent placements of this requester insert one after the other,
                # so each INSERT's count sees the orders placed before it.
                RequesterLock.take(requester)
            if idempotency_key and (existing := _keyed(requester, idempotency_key)):
                return _same_request(existing, envelope), False
            order = _new_order(envelope, owner, origin, requester, idempotency_key)
            order.batch_id = batch_id
            order.rerun_of = rerun_of
            if not insert_row(order, below=cap):
                assert cap is not None  # only the cap can refuse the INSERT
                raise TooManyActiveOrders(cap.most, retry_after=conf.RETRY_AFTER)
            log_context.now_about(order)
            if envelope.lock_keys:
                locks.take(order, envelope.lock_keys)  # raises Locked: nothing is kept
            submit(order)
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key inserted first: that one is ours.
        order = Order.objects.get(requester=requester, idempotency_key=idempotency_key)
        return _same_request(order, envelope), False
    return order, True


def _new_order(
    envelope: Envelope, owner: Any, origin: str, requester: str, idempotency_key: str
) -> Order:
    return Order(
        **envelope.order_fields(),
        owner=owner if owner is not None and owner.is_authenticated else None,
        requester=requester,
        idempotency_key=idempotency_key,
        origin=origin,
        traceparent=tracing.current_traceparent(),
        status=OrderStatus.SCHEDULED if envelope.run_at else OrderStatus.QUEUED,
    )


def _same_request(order: Order, envelope: Envelope) -> Order:
    if order.fingerprint != envelope.fingerprint:
        raise IdempotencyKeyReused()
    return order


def _keyed(requester: str, idempotency_key: str) -> Order | None:
    """The order this requester placed already with ``idempotency_key``, if any."""
    mine = Order.objects.filter(requester=requester, idempotency_key=idempotency_key)
    return next(iter(mine.order_by()[:1]), None)


def _cap(requester: str) -> Limit | None:
    """The cap the order's INSERT checks: fewer than ``MAX_ACTIVE_ORDERS`` active orders
    of this requester (else 429), counted by the INSERT itself under the requester's
    lock, so that a capped POST costs two statements (the lock, the INSERT), each
    written once
    (:mod:`~async_orders.order_statements`). Anonymous requests without a session have
    no identity to count by (one cap for all would let one client lock out the rest):
    limit them with ``THROTTLE_CLASSES``; nor do tasks enqueued in code."""
    cap = conf.MAX_ACTIVE_ORDERS
    if cap is None or requester in UNCOUNTED:
        return None
    return Limit(equal=("requester", requester), among=("status", ACTIVE), most=cap)


def rerun_order(
    order: Order, idempotency_key: str = "", submit: Submit | None = None
) -> tuple[Order, bool]:
    """Place a new order with ``order``'s envelope, owner and origin, to run now, linked
    to it (``rerun_of``): ``POST .../rerun/`` and the admin's re-run both call this. It
    takes the same conflict locks, has the same attempts and time limits, and counts
    against the owner's cap. With an ``idempotency_key`` the owner already used for a
    re-run of this order, that re-run is returned instead (``created`` False).
    :class:`~async_orders.exceptions.OrderNotRerunnable` unless it failed or was canceled.
    ``submit`` is :func:`place_order`'s (a task another backend ran goes back there)."""
    if order.status not in RERUNNABLE:
        raise OrderNotRerunnable(order.status)
    # Its own fingerprint: the key of the original order, sent again, is then refused
    # as a reuse rather than answered with the original.
    fingerprint = hashlib.sha256(f"rerun:{order.pk}".encode()).hexdigest()
    envelope = replace(Envelope.of_order(order), run_at=None, fingerprint=fingerprint)
    return place_order(
        envelope,
        order.owner,
        order.origin,
        requester=order.requester,
        idempotency_key=idempotency_key,
        submit=submit,
        rerun_of=order,
    )
