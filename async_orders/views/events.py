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
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

import async_orders.views.openapi as openapi
from async_orders.conf import conf
from async_orders.models import Order
from async_orders.serializers import represent
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
        read = partial(read_order, pk, request)
        return event_stream(request, order_snapshot(order, request), read, (pk,))


def event_stream(
    request: Request, first: Snapshot, read: Read, watched: Sequence[str | uuid.UUID]
) -> HttpResponse | StreamingHttpResponse:
    """The streaming answer of an events endpoint (an order's, a batch's) whose state was
    ``first`` when the request was checked; :class:`EventStream` has the logic."""
    asynchronous = isinstance(request._request, ASGIRequest)
    waiter = Waiter.of(request, blocking=not asynchronous)
    stream = EventStream(read, watched, request.headers.get("Last-Event-ID"), waiter)
    if first.finished and stream.has_seen(first):
        return HttpResponse(status=204)
    chunks = stream.aiter() if asynchronous else iter(stream)
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return response


@dataclass(frozen=True)
class Snapshot:
    """What one read found, as an event would say it."""

    #: The event's id: the ETag, without quotes.
    id: str
    #: ``progress`` while active, else the final status (``completed``, ``finished``...).
    name: str
    finished: bool
    #: The event's JSON body; built only when the event is sent.
    body: Callable[[], Any]


#: One read of what a stream follows: a :class:`Snapshot`, ``None`` once it is gone.
Read = Callable[[], "Snapshot | None"]


def order_snapshot(order: Order, request: Request) -> Snapshot:
    name = order.status if order.is_finished else "progress"
    etag = order_etag(order, request).strip('"')
    return Snapshot(etag, name, order.is_finished, lambda: represent(order, request))


def read_order(pk: str, request: Request) -> Snapshot | None:
    order = Order.objects.shown_one(pk)
    return None if order is None else order_snapshot(order, request)


def order_events_view() -> Callable[..., Any]:
    """The callable of the events endpoint, for ``urls.py``: the view reads the order
    as waiters do (:func:`~async_orders.views.waiting.released`), so that a crowd of streams
    opening at once holds few database connections, and none once they stream."""
    return released(OrderEventsView.as_view())


class EventStream:
    """The events of one order (or batch) for one client; :meth:`step` holds all the logic.

    The stream lasts ``SSE_MAX_LIFETIME`` seconds at most, then ends; ``EventSource``
    reconnects after ``retry`` with ``Last-Event-ID`` and misses nothing. A stream with
    no room to wait (:mod:`async_orders.views.waiting`) sends the current state and ends at
    once: to the client, a plain poll.
    """

    def __init__(
        self,
        read: Read,
        watched: Sequence[str | uuid.UUID],
        last_event_id: str | None,
        waiter: Waiter,
    ) -> None:
        self.read = read
        self.watched = watched
        self.last_id = last_event_id
        self.waiter = waiter
        self.last_sent = time.monotonic()
        self.ends_at = self.last_sent + conf.SSE_MAX_LIFETIME

    def __iter__(self) -> Iterator[str]:
        yield self._preamble()
        with room.admit(self.waiter) as admitted:
            yield from follow(self.watched, self) if admitted else released(self.step)()[0]

    async def aiter(self) -> AsyncIterator[str]:
        yield self._preamble()
        with room.admit(self.waiter) as admitted:
            if not admitted:
                chunks, _ = await sync_to_async(released(self.step))()
                for chunk in chunks:
                    yield chunk
                return
            async for chunk in afollow(self.watched, self):
                yield chunk

    def step(self) -> tuple[list[str], float | None]:
        """Read once: what to send now, and how long to wait for the next change
        (``None`` once what it follows is finished or gone, or the stream is over)."""
        snapshot = self.read()
        if snapshot is None:
            return [], None
        chunks = []
        if not self.has_seen(snapshot):
            chunks.append(self._event(snapshot))
        elif time.monotonic() - self.last_sent >= conf.SSE_HEARTBEAT:
            chunks.append(HEARTBEAT)
        if chunks:
            self.last_sent = time.monotonic()
        return chunks, None if snapshot.finished else self._pause()

    def has_seen(self, snapshot: Snapshot) -> bool:
        return self.last_id == snapshot.id

    def _event(self, snapshot: Snapshot) -> str:
        self.last_id = snapshot.id
        data = JSONRenderer().render(snapshot.body()).decode()
        return f"id: {self.last_id}\nevent: {snapshot.name}\ndata: {data}\n\n"

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
