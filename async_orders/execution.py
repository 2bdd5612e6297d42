"""Running one order: claim it, call its view, record what happened.

This is what the Celery task does, without Celery: the task in :mod:`tasks` is a
thin wrapper, and tests call :func:`execute_order` directly.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.urls import NoReverseMatch, Resolver404, reverse

from async_orders.dispatch import ViewResponse, call_view
from async_orders.models import Order
from async_orders.progress import OrderCanceled, OrderRun, running

logger = logging.getLogger("async_orders")


def execute_order(order_id: uuid.UUID | str) -> None:
    """Run the order once. A message for an order already started or finished is ignored."""
    order = Order.objects.select_related("owner").filter(pk=order_id).first()
    if order is None:
        logger.warning("Order %s does not exist; its message is dropped.", order_id)
        return
    if not order.start():
        logger.info("Order %s is %s; its message is ignored.", order_id, order.status)
        return
    with running(order) as run:
        try:
            response = call_view(order)
        except OrderCanceled:
            logger.info("Order %s stopped: it was canceled.", order.pk)
            order.stop_canceled(*run.progress)
            return
        except (NoReverseMatch, Resolver404):
            logger.exception("Order %s: %r no longer resolves.", order.pk, order.view_name)
            order.fail(_error("view_unavailable", "The ordered view is no longer available."))
            return
        except Exception:
            logger.exception("Order %s: the view %r raised.", order.pk, order.view_name)
            order.fail(_error("exception", run.failure_message or "The view raised an error."))
            return
    _record(order, response, run)


def _record(order: Order, response: ViewResponse, run: OrderRun) -> None:
    if response.succeeded:
        order.complete(response=response, resource_url=response.location or result_path(order))
        return
    message = run.failure_message or f"The view answered {response.status_code}."
    error = _error("http_error", message, response.status_code, response.json())
    order.fail(error, response)


def result_path(order: Order) -> str:
    """Where the stored response of ``order`` is replayed."""
    return reverse("async_orders:order-result", kwargs={"pk": order.pk})


def _error(
    code: str, message: str, status_code: int | None = None, body: Any = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "status_code": status_code, "body": body}
