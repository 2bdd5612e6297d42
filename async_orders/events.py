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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from async_orders import schema as openapi
from async_orders.conditional import order_etag
from async_orders.conf import conf
from async_orders.models import Order
from async_orders.notify import alistening, listening
from async_orders.serializers import OrderSerializer
from async_orders.views import OrderAPIView

HEARTBEAT = ": heartbeat\n\n"


class OrderEventsView(OrderAPIView):
    """Streams the order's changes; same ownership rule (and 404) as the order itself."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # EventSource sends ``Accept: text/event-stream``; errors are JSON all the same.
        return JSONRenderer(), JSONRenderer.media_type

    @openapi.order_events
    def get(self, request: Request, pk: uuid.UUID) -> HttpResponse | StreamingHttpResponse:
        order = self.get_order(pk, shown_only=True)
        stream = EventStream(pk, request, request.headers.get("Last-Event-ID"))
        if order.is_finished and stream.has_seen(order):
            return HttpResponse(status=204)
        chunks = stream.aiter() if isinstance(request._request, ASGIRequest) else iter(stream)
        response = StreamingHttpResponse(chunks, content_type="text/event-stream")
        response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
        return response


class EventStream:
    """The events of one order for one client; :meth:`step` holds all the logic."""

    def __init__(self, pk: uuid.UUID, request: Request, last_event_id: str | None) -> None:
        self.pk = pk
        self.request = request
        self.last_id = last_event_id
        self.last_sent = time.monotonic()

    def __iter__(self) -> Iterator[str]:
        yield self._preamble()
        with listening(self.pk) as next_change:
            while True:
                chunks, done = self.step()
                yield from chunks
                if done:
                    return
                next_change(self._quiet_left())

    async def aiter(self) -> AsyncIterator[str]:
        yield self._preamble()
        async with alistening(self.pk) as next_change:
            while True:
                chunks, done = await sync_to_async(self.step)()
                for chunk in chunks:
                    yield chunk
                if done:
                    return
                await next_change(self._quiet_left())

    def step(self) -> tuple[list[str], bool]:
        """Read the order once: what to send now, and whether the stream is over."""
        order = Order.objects.shown().one(self.pk)
        if order is None:
            return [], True
        chunks = []
        if not self.has_seen(order):
            chunks.append(self._event(order))
        elif time.monotonic() - self.last_sent >= conf.SSE_HEARTBEAT:
            chunks.append(HEARTBEAT)
        if chunks:
            self.last_sent = time.monotonic()
        return chunks, order.is_finished

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

    def _quiet_left(self) -> float:
        return max(0.01, conf.SSE_HEARTBEAT - (time.monotonic() - self.last_sent))
