"""Celery wiring: the order task, and publishing an order to it after commit.

``execute_order`` is a shared task, so a standard Django + Celery project picks it
up through ``app.autodiscover_tasks()`` with no extra wiring.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from functools import partial
from typing import Any

from celery import shared_task
from django.db import transaction

from async_orders import execution
from async_orders.conf import conf
from async_orders.envelope import Envelope
from async_orders.models import Order, Status

logger = logging.getLogger("async_orders")

TASK_NAME = "async_orders.execute_order"


@shared_task(name=TASK_NAME, ignore_result=True)
def execute_order(order_id: str) -> None:
    """Run one order; see :func:`async_orders.execution.execute_order`."""
    execution.execute_order(order_id)


def place_order(envelope: Envelope, owner: Any, origin: str) -> Order:
    """Create the order and publish its message once the order's row is committed.

    A worker can therefore never receive an order it cannot read, and a rolled-back
    order is never published.
    """
    with transaction.atomic():
        order = Order.objects.create(
            owner=owner if owner is not None and owner.is_authenticated else None,
            view_name=envelope.view_name,
            method=envelope.method,
            args=envelope.args,
            kwargs=envelope.kwargs,
            query=envelope.query,
            data=envelope.data,
            origin=origin,
            run_at=envelope.run_at,
            status=Status.SCHEDULED if envelope.run_at else Status.QUEUED,
            callback_url=envelope.callback_url,
        )
        transaction.on_commit(partial(publish, order.pk, envelope.run_at))
    return order


def rerun_order(order: Order) -> Order:
    """Place a new order with ``order``'s envelope, owner and origin (admin "re-run")."""
    envelope = Envelope(
        view_name=order.view_name,
        method=order.method,
        args=order.args,
        kwargs=order.kwargs,
        query=order.query,
        data=order.data,
        run_at=None,
        callback_url=order.callback_url,
    )
    return place_order(envelope, order.owner, order.origin)


def publish(order_id: uuid.UUID, run_at: datetime | None = None) -> None:
    """Send the order's message; a broker failure is logged and the order stays queued."""
    try:
        execute_order.apply_async(args=[str(order_id)], eta=run_at, queue=conf.QUEUE)
    except Exception:
        logger.exception("Order %s could not be published; it stays queued.", order_id)
