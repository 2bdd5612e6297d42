"""``GET /async/orders/<id>/?wait=N``: answer as soon as the order changes, or after N s;
and the same for a batch (``GET /async/batches/<id>/?wait=N``), which follows all its
orders at once (:func:`waiting_view` makes either endpoint).

The DRF detail view does authentication, ownership, the status table, ETags and
``DELETE``; waiting is added around it, in one of two shapes, chosen once by the
``LONG_POLL_ASYNC`` setting (see :func:`order_detail_view`):

- WSGI (the default): the DRF view itself blocks its request's thread while it
  waits. Plain polls cost nothing extra.
- ASGI: an async view calls the DRF view, then awaits the change, holding no thread
  while it waits. Under WSGI that shape would add a thread hop to every poll, and
  under ASGI the other would park every waiter on Django's one thread for sync views.

Both wait the same way (:mod:`async_orders.views.waiting`): only if there is room for
another waiter (else the plain poll's answer comes at once, with ``Retry-After``),
with the request's database connection closed, following the order with
:class:`UntilChange` until its ETag differs, it is finished, or the deadline passes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema_view

import async_orders.views.openapi as openapi
from async_orders.conf import conf
from async_orders.models import Order
from async_orders.views.headers import order_etag, requested_wait
from async_orders.views.orders import OrderDetailView
from async_orders.views.waiting import (
    Waiter,
    afollow,
    crowded,
    follow,
    release_connections,
    released,
    room,
)


def waits(request: Any, response: Any) -> bool:
    """Whether this answer may wait for a change: the order is active, and the client
    already has its state. A client that sent an ETag the order has moved on from
    gets the new state at once; one that sent none waits for the next change."""
    if "If-None-Match" in request.headers:
        return response.status_code == 304
    return response.status_code == 202


#: An endpoint's state for a waiter: its ETag and whether it is final; ``(None, True)``
#: once it is gone. Called with the id in the URL and the request.
State = Callable[[str, Any], tuple[str | None, bool]]
#: The orders whose changes may change an endpoint's answer, by the id in its URL.
Watched = Callable[[str], Sequence[str | uuid.UUID]]


class WaitsInThread:
    """Mixed into a DRF detail view (an order's, a batch's): its ``GET`` waits in its own
    thread when asked to (WSGI). The view says what it follows with :attr:`state` and
    :attr:`watched`."""

    state: State
    watched: Watched

    def get(self, request: Any, pk: str) -> Any:
        response = super().get(request, pk)  # type: ignore[misc]
        wait = requested_wait(request)  # checked by the view above: no 400 here
        if wait <= 0 or not waits(request, response):
            return response
        with room.admit(Waiter.of(request, blocking=True)) as admitted:
            if not admitted:
                return crowded(response)
            watched = type(self).watched(pk)
            release_connections()
            for _ in follow(watched, UntilChange.of(response, type(self).state, pk, request, wait)):
                pass
        return super().get(request, pk)  # type: ignore[misc]


def order_state(pk: str, request: HttpRequest) -> tuple[str | None, bool]:
    """The order's ETag and whether it is finished; ``(None, True)`` once it is gone."""
    order = Order.objects.shown_one(uuid.UUID(pk))
    if order is None:
        return None, True
    return order_etag(order, request), order.is_finished


def the_order(pk: str) -> tuple[str]:
    return (pk,)


@extend_schema_view(get=openapi.poll_order_schema)
class WaitingOrderDetailView(WaitsInThread, OrderDetailView):
    """The order's detail view that waits in its own thread when asked to (WSGI)."""

    state = staticmethod(order_state)
    watched = staticmethod(the_order)


def waiting_view(detail: type[Any], waiting: type[Any]) -> Callable[..., Any]:
    """The callable of a detail endpoint that may wait, for ``urls.py``: ``waiting``
    (the ``detail`` view with :class:`WaitsInThread`), or under ``LONG_POLL_ASYNC`` an
    async view around ``detail``; see the module docstring."""
    if not conf.LONG_POLL_ASYNC:
        return waiting.as_view()
    answer = detail.as_view()

    @csrf_exempt  # as DRF's views are: DRF enforces CSRF itself for session authentication
    async def view(request: HttpRequest, pk: str) -> HttpResponseBase:
        """``GET`` with ``?wait=`` awaits a change. A request that may wait reads as
        waiters do (:func:`released`): however many arrive at once, they hold few
        database connections, and none once answered."""
        respond = sync_to_async(released(answer) if "wait" in request.GET else answer)
        response = await respond(request, pk=pk)
        if request.method != "GET" or not waits(request, response):
            return response
        wait = requested_wait(request)  # checked by the view above: no 400 here
        if wait <= 0:
            return response
        with room.admit(Waiter.of(request, blocking=False)) as admitted:
            if not admitted:
                return crowded(response)
            watched = await sync_to_async(released(waiting.watched))(pk)
            until = UntilChange.of(response, waiting.state, pk, request, wait)
            async for _ in afollow(watched, until):
                pass
        return await respond(request, pk=pk)

    # The schema generator documents DRF views only: describe this endpoint as the DRF
    # view it wraps (its methods, responses and ETag), which is exactly what it answers.
    view.cls = detail  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view


def order_detail_view() -> Callable[..., Any]:
    """The callable of the order endpoint, for ``urls.py``."""
    return waiting_view(OrderDetailView, WaitingOrderDetailView)


@dataclass
class UntilChange:
    """A long-poll's :class:`~async_orders.views.waiting.Follower`: stop once the order's ETag
    differs from the client's, it is finished, or the wait is over."""

    etag: str
    state: Callable[[], tuple[str | None, bool]]
    deadline: float

    @classmethod
    def of(cls, response: Any, state: State, pk: str, request: Any, wait: float) -> UntilChange:
        return cls(response["ETag"], partial(state, pk, request), time.monotonic() + wait)

    def step(self) -> tuple[list[str], float | None]:
        current, finished = self.state()
        left = self.deadline - time.monotonic()
        return [], None if finished or current != self.etag or left <= 0 else left
