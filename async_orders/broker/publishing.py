"""Sending an order's message: the one place an order is handed to the broker.

Placing, the worker (a retry, or a message that came before its order was due) and
the reconciler all send through :func:`send_order`. The order task is found by its
name in the current Celery app, as a shared task is, so this module does not import
the task definitions (:mod:`async_orders.tasks` imports it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Task, current_app

from async_orders import log_context
from async_orders.broker import celery_config
from async_orders.broker.breaker import Breaker, PublishSkipped, call_within
from async_orders.conf import conf
from async_orders.models import Order
from async_orders.registry import ViewOptions, options_for

logger = logging.getLogger("async_orders")

#: The order task's name, in every message ever published: never change it.
ORDER_TASK = "async_orders.execute_order"

#: This process's breaker: open while the broker failed lately (``PUBLISH_TIMEOUT``).
BREAKER = Breaker()


def order_task() -> Task:
    """The order task of the current Celery app (the app a shared task is bound to)."""
    return current_app.tasks[ORDER_TASK]


def send_order(order: Order) -> None:
    """Send the order's message through ``apply_async``, routed by its view's options,
    so that the project's Celery configuration (routes, annotations, compression,
    publish signals, another transport) applies to it as to any task.

    A broker failure is logged and noted on the order (``published_at`` empty); the
    order stays accepted and the reconciler sends it once the broker is back. With
    ``PUBLISH_TIMEOUT`` set, the publish may take that long at most, and after a
    failure none is tried for ``PUBLISH_BREAKER_SECONDS`` (:mod:`.breaker`), so that a
    POST never waits out the transport's retries. Run at commit, maybe after the
    placing code returned: the order is named again for logs.
    """
    sending = {**_routing(order), "eta": order.run_at, "time_limit": hard_time_limit(order)}
    with log_context.about(order):
        try:
            task = order_task()
            apply = partial(task.apply_async, args=[str(order.pk)], **sending)
            _publish(apply, bounded=not task.app.conf.task_always_eager)
        except PublishSkipped:
            logger.warning("Order %s not published: the broker failed lately.", order.pk)
            order.mark_unpublished()
        except Exception:
            logger.exception("Order %s could not be published; the reconciler retries.", order.pk)
            order.mark_unpublished()


def hard_time_limit(order: Order) -> float | None:
    """Celery's hard time limit for the order's message: its ``timeout`` plus
    ``LEASE_MARGIN``, the longest a view may run between two checkpoints. An attempt
    that reached no checkpoint by then has its pool process replaced (prefork pool;
    the solo and thread pools have no hard limit, and there the lease, which is not
    renewed past the timeout, fences it out). Before its lease could expire, so the
    next attempt never starts while that process still runs."""
    return None if order.timeout is None else order.timeout + conf.LEASE_MARGIN


def _publish(apply: Callable[[], object], *, bounded: bool) -> None:
    """``apply()`` bounded by ``PUBLISH_TIMEOUT`` and the breaker; inline without one,
    or when not ``bounded``: under ``task_always_eager`` applying runs the order
    itself, which must happen on the caller's thread and database connection."""
    timeout = conf.PUBLISH_TIMEOUT
    if timeout is None or not bounded:
        apply()
        return
    if not BREAKER.allows():
        raise PublishSkipped()
    try:
        call_within(timeout, apply, BREAKER)
    except Exception:
        BREAKER.failed(conf.PUBLISH_BREAKER_SECONDS)
        raise


def _routing(order: Order) -> dict[str, Any]:
    """Queue, routing key and priority: what the order chose when it was placed (a
    task's queue and priority), else its view's options. A task order never looks its
    dotted path up among URL names, where an unrelated route could bear it."""
    options = ViewOptions() if order.is_task else options_for(order.view_name, order.method)
    return {
        "queue": order.queue or options.queue or conf.QUEUE,
        "routing_key": options.routing_key,
        "priority": order.priority if order.priority is not None else options.priority,
    }


#: The Celery priorities a task's priority is spread over: 0-9, the range both Redis
#: (kombu's default ``priority_steps`` 0, 3, 6, 9) and RabbitMQ queues declared with
#: ``x-max-priority`` take.
CELERY_PRIORITIES = 9


def celery_priority(priority: int, lowest: int = -100, highest: int = 100) -> int | None:
    """A ``django.tasks`` priority (``lowest``..``highest``, higher runs sooner) as the
    Celery priority of the order's message; ``None`` for the default 0, so that an
    ordinary task's message is as plain as a view's. Redis takes 0 as the most urgent,
    AMQP brokers 9: the broker's URL decides which end is which."""
    if priority == 0:
        return None
    scaled = round((priority - lowest) * CELERY_PRIORITIES / (highest - lowest))
    return CELERY_PRIORITIES - scaled if _lower_runs_first() else scaled


@celery_config.read_once
def _lower_runs_first() -> bool:
    """Whether the broker serves low priority numbers first: Redis (and Sentinel)."""
    url = str(current_app.conf.broker_url or "")
    return url.split(":", 1)[0] in ("redis", "rediss", "sentinel", "redis+socket")
