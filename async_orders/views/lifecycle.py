"""An order's lifecycle endpoints: its attempts, and re-running it.

``GET /async/orders/<id>/attempts/`` shows whoever may see the order each attempt,
oldest first; ``POST /async/orders/<id>/rerun/`` places a failed or canceled order
again, for its owner and holders of ``async_orders.rerun_order``.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

import async_orders.views.openapi as openapi
from async_orders.attempts import history
from async_orders.exceptions import OrderConflict
from async_orders.locks import Locked
from async_orders.models import Order
from async_orders.ownership import RERUN_PERMISSION
from async_orders.placing import rerun_order
from async_orders.serializers import represent, represent_attempt
from async_orders.views.base import OrderAPIView
from async_orders.views.body import require_json_if_body
from async_orders.views.headers import idempotency_key
from async_orders.views.orders import placed_answer


class OrderAttemptsView(OrderAPIView):
    """``GET /async/orders/<id>/attempts/``: the order's attempts, oldest first."""

    @openapi.order_attempts_schema
    def get(self, request: Request, pk: str) -> Response:
        order = self.get_order(pk)
        return Response([represent_attempt(attempt) for attempt in history(order)])


class RerunOrderView(OrderAPIView):
    """``POST /async/orders/<id>/rerun/``: a new order with the same envelope, 302 to it;
    the same 404 as for an order the caller cannot see to anyone who may not re-run it."""

    @openapi.rerun_order_schema
    def post(self, request: Request, pk: str) -> Response:
        require_json_if_body(request._request)
        order = self.get_order(pk, acting=RERUN_PERMISSION)
        try:
            again, _ = rerun(order, idempotency_key(request))
        except Locked as locked:
            raise OrderConflict(self._blocking_url(locked.order)) from None
        return placed_answer(request, represent(again, request))


def rerun(order: Order, idempotency_key: str = "") -> tuple[Order, bool]:
    """Re-run ``order`` where it ran: a task another ``TASKS`` backend ran is enqueued
    with that backend again (the Tasks framework, there, is imported only then)."""
    submit = None
    if order.is_followed:
        from async_orders.followed_tasks import resubmission

        submit = resubmission(order)
    return rerun_order(order, idempotency_key, submit)
