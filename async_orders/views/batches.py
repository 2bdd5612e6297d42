"""The batch endpoints: place a batch, poll it (``?wait=`` too), cancel it, its events.

``POST /async/batches/`` places every order or none and answers ``302`` to the
batch; ``GET /async/batches/<id>/`` answers ``202`` while any of its orders is
unfinished and ``200`` once all are, reading the batch in one query. Waiting and
events are the order's (:mod:`.longpoll`, :mod:`.events`), following every order of
the batch at once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

import async_orders.views.batch_openapi as openapi
from async_orders.batch_serializers import represent_batch
from async_orders.batches import Batch, cancel_batch, parse_batch, place_batch
from async_orders.conf import conf
from async_orders.exceptions import BatchFinished, BatchNotFound, OrderConflict
from async_orders.locks import Locked
from async_orders.models import Order
from async_orders.ownership import may_see, remember_session_requester, requester_key
from async_orders.views.base import OrderAPIView, session_key
from async_orders.views.body import json_body, require_json_if_body
from async_orders.views.events import Snapshot, event_stream
from async_orders.views.headers import etag_matches, requested_wait
from async_orders.views.longpoll import WaitsInThread, waiting_view
from async_orders.views.orders import origin, placed_answer
from async_orders.views.waiting import released


class PlaceBatchView(OrderAPIView):
    """``POST /async/batches/``: validate every order, place them all, 302 to the batch."""

    schema = openapi.BatchSchema()

    @openapi.place_batch_schema
    def post(self, request: Request) -> Response:
        envelopes = parse_batch(json_body(request._request))
        requester = requester_key(request.user, session_key(request))
        try:
            batch = place_batch(envelopes, request.user, origin(request), requester=requester)
        except Locked as locked:
            raise OrderConflict(self._blocking_url(locked.order)) from None
        remember_session_requester(request, requester)
        return placed_answer(request, represent_batch(batch, request))


class BatchView(OrderAPIView):
    """What the batch endpoints share: finding a batch the caller may see."""

    schema = openapi.BatchSchema()

    def get_batch(self, pk: str) -> Batch:
        """The batch ``pk`` if the caller may see it (one query); a 404 otherwise,
        whichever the reason, as for an order."""
        batch = _read(pk)
        if batch is None or not may_see(batch.requester, self.request.user, self._session_key()):
            raise BatchNotFound()
        return batch


class BatchDetailView(BatchView):
    """``GET /async/batches/<id>/``: 202 with the aggregate while any order is
    unfinished, 200 once all are; an ETag, and 304 for ``If-None-Match``.
    ``DELETE``: cancel every unfinished order of it."""

    @openapi.poll_batch_schema
    def get(self, request: Request, pk: str) -> HttpResponse:
        requested_wait(request)
        batch = self.get_batch(pk)
        etag = batch_etag(batch, request)
        if etag_matches(request, etag):
            return HttpResponseNotModified(headers={"ETag": etag})
        if batch.is_finished:
            response = Response(represent_batch(batch, request), status=status.HTTP_200_OK)
        else:
            response = Response(
                represent_batch(batch, request),
                status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(conf.RETRY_AFTER)},
            )
        response["ETag"] = etag
        return response

    @openapi.cancel_batch_schema
    def delete(self, request: Request, pk: str) -> Response:
        """200 once every order is canceled or finished, 202 while running ones stop."""
        require_json_if_body(request._request)
        batch = self.get_batch(pk)
        if not cancel_batch(batch.id):
            raise BatchFinished()
        batch = self.get_batch(pk)
        code = status.HTTP_200_OK if batch.is_finished else status.HTTP_202_ACCEPTED
        return Response(represent_batch(batch, request), status=code)


def batch_etag(batch: Batch, request: Any) -> str:
    """A strong ETag of what the representation shows: each order's status and
    progress, and the site's address (the URLs are absolute)."""
    values = [(item.id, item.status, item.current, item.total) for item in batch.items]
    values.append(f"{request.scheme}://{request.get_host()}")  # type: ignore[arg-type]
    return f'"{hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()}"'


def batch_state(pk: str, request: Any) -> tuple[str | None, bool]:
    """The batch's ETag and whether it is finished, for a waiter."""
    batch = _read(pk)
    if batch is None:
        return None, True
    return batch_etag(batch, request), batch.is_finished


def batch_orders(pk: str) -> list[uuid.UUID]:
    """The orders a waiter on the batch listens to."""
    batch_id = _batch_id(pk)
    if batch_id is None:
        return []
    return list(Order.objects.filter(batch_id=batch_id).values_list("pk", flat=True))


@extend_schema_view(get=openapi.poll_batch_schema)
class WaitingBatchDetailView(WaitsInThread, BatchDetailView):
    """The batch's detail view that waits in its own thread when asked to (WSGI)."""

    state = staticmethod(batch_state)
    watched = staticmethod(batch_orders)


def batch_detail_view() -> Callable[..., Any]:
    """The callable of the batch endpoint, for ``urls.py``."""
    return waiting_view(BatchDetailView, WaitingBatchDetailView)


class BatchEventsView(BatchView):
    """``GET /async/batches/<id>/events/``: the batch as server-sent events, one per
    change of any of its orders, ``finished`` last."""

    @openapi.batch_events_schema
    def get(self, request: Request, pk: str) -> HttpResponse | StreamingHttpResponse:
        batch = self.get_batch(pk)
        read = partial(_read_snapshot, pk, request)
        watched = [item.id for item in batch.items]
        return event_stream(request, batch_snapshot(batch, request), read, watched)


def batch_events_view() -> Callable[..., Any]:
    """The callable of the batch's events endpoint: read as waiters read."""
    return released(BatchEventsView.as_view())


def batch_snapshot(batch: Batch, request: Any) -> Snapshot:
    name = "finished" if batch.is_finished else "progress"
    etag = batch_etag(batch, request).strip('"')
    return Snapshot(etag, name, batch.is_finished, lambda: represent_batch(batch, request))


def _read_snapshot(pk: str, request: Any) -> Snapshot | None:
    batch = _read(pk)
    return None if batch is None else batch_snapshot(batch, request)


def _read(pk: str) -> Batch | None:
    batch_id = _batch_id(pk)
    return None if batch_id is None else Batch.read(batch_id)


def _batch_id(pk: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(pk)
    except ValueError:
        return None
