"""``GET /async/orders/<id>/?wait=N``: answer as soon as the order changes, or after N s.

This async view wraps the DRF detail view, which keeps doing authentication,
ownership, the status table, ETags and ``DELETE``: it is called once to learn the
order's ETag (or to answer at once: an error, a finished order, no ``?wait=``), then
the wrapper waits for a change notification (:mod:`async_orders.notify`) and calls it
again for the answer. Under ASGI the wait is a coroutine and holds no thread; under
WSGI Django runs this view in the request's thread, which stays busy while it waits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from async_orders.conditional import order_etag, requested_wait
from async_orders.models import Order
from async_orders.notify import alistening
from async_orders.views import OrderDetailView

_detail = OrderDetailView.as_view()
#: Answers after which a poll may wait: the order is active (202) or unchanged (304).
WAITABLE = (202, 304)

State = Callable[[], tuple[str | None, bool]]


@csrf_exempt  # as DRF's views are: DRF enforces CSRF itself for session authentication
async def order_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponseBase:
    """The order endpoint; ``GET`` with ``?wait=`` waits for a change before answering."""
    response = await sync_to_async(_detail)(request, pk=pk)
    if request.method != "GET" or response.status_code not in WAITABLE:
        return response
    wait = requested_wait(request)
    if wait <= 0:
        return response
    await wait_for_change(pk, response["ETag"], partial(_state, pk, request), wait)
    return await sync_to_async(_detail)(request, pk=pk)


async def wait_for_change(pk: uuid.UUID, etag: str, state: State, timeout: float) -> None:
    """Return once the order's ETag differs from ``etag``, it is finished, or on timeout.

    The order is re-read after subscribing, so a change between the first answer
    and the subscription is not missed.
    """
    deadline = time.monotonic() + timeout
    async with alistening(pk) as next_change:
        while (left := deadline - time.monotonic()) > 0:
            current, finished = await sync_to_async(state)()
            if finished or current != etag:
                return
            await next_change(left)


def _state(pk: uuid.UUID, request: HttpRequest) -> tuple[str | None, bool]:
    """The order's ETag and whether it is finished; ``(None, True)`` once it is gone."""
    order = Order.objects.filter(pk=pk).first()
    if order is None:
        return None, True
    return order_etag(order, request), order.is_finished
