"""Running one order: claim it, call its view, record what happened.

This is what the Celery task does, without Celery: the task in :mod:`tasks` is a
thin wrapper, and tests call :func:`execute_order` directly.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta
from typing import Any

from django.urls import NoReverseMatch, Resolver404, reverse
from django.utils import timezone

from async_orders.conf import conf
from async_orders.dispatch import ViewResponse, call_view
from async_orders.heartbeat import heartbeat
from async_orders.models import Order
from async_orders.progress import OrderCanceled, OrderRun, running
from async_orders.registry import ViewOptions, options_for

logger = logging.getLogger("async_orders")


def execute_order(order_id: uuid.UUID | str) -> Order | None:
    """Run the order once; return it as it ended up (None if it does not exist).

    A message for an order already started or finished is ignored. An order that
    comes back ``scheduled`` (a retry after an exception, or a message that came
    before the order was due) needs its message sent again: the caller's job,
    so that this module knows nothing of Celery.
    """
    order = Order.objects.select_related("owner").filter(pk=order_id).first()
    if order is None:
        logger.warning("Order %s does not exist; its message is dropped.", order_id)
        return None
    if not order.start():
        order.refresh_from_db(fields=["status", "run_at"])
        logger.info("Order %s is %s; this message does not start it.", order.pk, order.status)
        return order
    with running(order) as run, heartbeat(order):
        try:
            response = call_view(order)
        except OrderCanceled:
            logger.info("Order %s stopped: it was canceled.", order.pk)
            order.stop_canceled(*run.progress)
            return order
        except (NoReverseMatch, Resolver404):
            logger.exception("Order %s: %r no longer resolves.", order.pk, order.view_name)
            order.fail(failure("view_unavailable", "The ordered view is no longer available."))
            return order
        except Exception as error:
            _retry_or_fail(order, run, error)
            return order
    try:
        _record(order, response, run)
    except Exception:  # the database refused the outcome: fail it, never leave it running
        logger.exception("Order %s: its outcome could not be stored.", order.pk)
        order.fail(failure("exception", "The view's response could not be stored."))
    return order


def _retry_or_fail(order: Order, run: OrderRun, error: Exception) -> None:
    options = options_for(order.view_name, order.method)
    if order.attempts < order.max_attempts and options.retries_for(error):
        run_at = timezone.now() + timedelta(seconds=_backoff(options, order.attempts))
        if order.retry_at(run_at):
            logger.warning(
                "Order %s: attempt %d of %d raised %r; retrying at %s.",
                *(order.pk, order.attempts, order.max_attempts, error, run_at.isoformat()),
            )
            return
    logger.error("Order %s: the view %r raised.", order.pk, order.view_name, exc_info=error)
    order.fail(failure("exception", run.failure_message or "The view raised an error."))


def _backoff(options: ViewOptions, attempt: int) -> float:
    """Exponential backoff with full jitter, capped by ``MAX_RETRY_BACKOFF``."""
    ceiling = min(options.retry_backoff * 2 ** (attempt - 1), conf.MAX_RETRY_BACKOFF)
    return random.uniform(ceiling / 2, ceiling)


def _record(order: Order, response: ViewResponse, run: OrderRun) -> None:
    if response.asks_for_login:
        message = "The view needs a signed-in user: it redirected to LOGIN_URL."
        order.fail(failure("unauthenticated", message, response.status_code), response)
        return
    if response.succeeded:
        # A Location off the site stays in the stored response; the client is sent to it
        # only by following the result itself, never by the order's 201.
        resource_url = response.location_on_site(order.origin) or result_path(order)
        order.complete(response=response, resource_url=resource_url)
        return
    message = run.failure_message or f"The view answered {response.status_code}."
    error = failure("http_error", message, response.status_code, response.json())
    order.fail(error, response)


def result_path(order: Order) -> str:
    """Where the stored response of ``order`` is replayed."""
    return reverse("async_orders:order-result", kwargs={"pk": order.pk})


def failure(
    code: str, message: str, status_code: int | None = None, body: Any = None
) -> dict[str, Any]:
    """An order's ``error``, in the one shape clients see for every kind of failure."""
    return {"code": code, "message": message, "status_code": status_code, "body": body}
