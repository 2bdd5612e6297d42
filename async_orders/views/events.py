"""``GET /async/orders/<id>/events/``: the order as a stream of server-sent events.

Each change of the order is one event with the same JSON as ``GET
/async/orders/<id>/``: ``progress`` while it is active, then one ``completed``,
``failed`` or ``canceled`` event, and the stream ends. An event's ``id`` is the
order's ETag (without quotes), so a client reconnecting with ``Last-Event-ID`` gets
only what changed since; one that already has the final state gets ``204``, which
tells ``EventSource`` not to reconnect. A comment line is sent after
``SSE_HEARTBEAT`` seconds of silence so that proxies keep the connection open.

Under ASGI the stream is an async generator (waiting holds no thread); under WSGI a
plain generator, which holds the request's thread for as long as the stream lasts.
Either way it holds no database connection while it waits, counts against the caps
of :mod:`async_orders.views.waiting`, and ends after ``SSE_MAX_LIFETIME`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

import async_orders.views.openapi as openapi
from async_orders.conf import conf
from async_orders.models import Order
from async_orders.serializers import OrderSerializer
from async_orders.views.base import OrderAPIView
from async_orders.views.headers import order_etag
from async_orders.views.waiting import Waiter, afollow, follow, released, room

HEARTBEAT = ": heartbeat\n\n"


class OrderEventsView(OrderAPIView):
    """Streams the order's changes; same ownership rule (and 404) as the order itself."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # EventSource sends ``Accept: text/event-stream``; errors are JSON all the same.
        return JSONRenderer(), JSONRenderer.media_type

    @openapi.order_events_schema
    def get(self, request: Request, pk: str) -> HttpResponse | StreamingHttpResponse:
        order = self.get_order(pk, shown_only=True)
        asynchronous = isinstance(request._request, ASGIRequest)
        waiter = Waiter.of(request, blocking=not asynchronous)
        stream = EventStream(pk, request, request.headers.get("Last-Event-ID"), waiter)
        if order.is_finished and stream.has_seen(order):
            return HttpResponse(status=204)
        chunks = stream.aiter() if asynchronous else iter(stream)
        response = StreamingHttpResponse(chunks, content_type="text/event-stream")
        response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
        return response


def order_events_view() -> Callable[..., Any]:
    """The callable of the events endpoint, for ``urls.py``: the view reads the order
    as waiters do (:func:`~async_orders.views.waiting.released`), so that a crowd of streams
    opening at once holds few database connections, and none once they stream."""
    return released(OrderEventsView.as_view())


class EventStream:
    """The events of one order for one client; :meth:`step` holds all the logic.

    The stream lasts ``SSE_MAX_LIFETIME`` seconds at most, then ends; ``EventSource``
    reconnects after ``retry`` with ``Last-Event-ID`` and misses nothing. A stream with
    no room to wait (:mod:`async_orders.views.waiting`) sends the current state and ends at
    once: to the client, a plain poll.
    """

    def __init__(
        self, pk: str, request: Request, last_event_id: str | None, waiter: Waiter
    ) -> None:
        self.pk = pk
        self.request = request
        self.last_id = last_event_id
        self.waiter = waiter
        self.last_sent = time.monotonic()
        self.ends_at = self.last_sent + conf.SSE_MAX_LIFETIME

    def __iter__(self) -> Iterator[str]:
        yield self._preamble()
        with room.admit(self.waiter) as admitted:
            yield from follow(self.pk, self) if admitted else released(self.step)()[0]

    async def aiter(self) -> AsyncIterator[str]:
        yield self._preamble()
        with room.admit(self.waiter) as admitted:
            if not admitted:
                chunks, _ = await sync_to_async(released(self.step))()
                for chunk in chunks:
                    yield chunk
                return
            async for chunk in afollow(self.pk, self):
                yield chunk

    def step(self) -> tuple[list[str], float | None]:
        """Read the order once: what to send now, and how long to wait for the next
        change (``None`` once the order is finished or gone, or the stream is over)."""
        order = Order.objects.shown_one(self.pk)
        if order is None:
            return [], None
        chunks = []
        if not self.has_seen(order):
            chunks.append(self._event(order))
        elif time.monotonic() - self.last_sent >= conf.SSE_HEARTBEAT:
            chunks.append(HEARTBEAT)
        if chunks:
            self.last_sent = time.monotonic()
        return chunks, None if order.is_finished else self._pause()

    def has_seen(self, order: Order) -> bool:
        return self.last_id == self._id(order)

    def _event(self, order: Order) -> str:
        self.last_id = self._id(order)
        name = order.status if order.is_finished else "progress"
        body: Any = OrderSerializer(order, context={"request": self.request}).data
        data = JSONRenderer().render(body).decode()
        return f"id: {self.last_id}\nevent: {name}\ndata: {data}\n\n"

    def _id(self, order: Order) -> str:
        return order_etag(order, self.request).strip('"')

    def _preamble(self) -> str:
        """Tell ``EventSource`` how long to wait before reconnecting, as ``Retry-After`` does."""
        return f"retry: {conf.RETRY_AFTER * 1000}\n\n"

    def _pause(self) -> float | None:
        """Until the next heartbeat is due, or ``None`` once the stream's life is over."""
        now = time.monotonic()
        if now >= self.ends_at:
            return None
        quiet_left = conf.SSE_HEARTBEAT - (now - self.last_sent)
        return max(0.01, min(quiet_left, self.ends_at - now))
