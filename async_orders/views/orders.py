"""The order endpoints: place, poll (and cancel), replay the result, list.

The status table of docs/http-api.md (order status -> HTTP status and headers) lives in
:func:`order_response` and nowhere else.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from django.utils import timezone
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

import async_orders.views.openapi as openapi
from async_orders.conf import conf
from async_orders.envelope import parse_envelope
from async_orders.exceptions import (
    InvalidQuery,
    ListingEveryoneDenied,
    OrderConflict,
    OrderFinished,
    ResultNotReady,
    ResultNotStored,
    UnknownView,
)
from async_orders.locks import Locked
from async_orders.models import Order, OrderStatus
from async_orders.ownership import (
    CANCEL_PERMISSION,
    may_see_everyones,
    remember_session_requester,
    requester_key,
)
from async_orders.placing import place_order
from async_orders.registry import find_endpoint
from async_orders.serializers import ListQuerySerializer, OrderSerializer, represent
from async_orders.views.base import OrderAPIView, session_key
from async_orders.views.body import has_body, json_body, require_json
from async_orders.views.headers import (
    etag_matches,
    idempotency_key,
    order_etag,
    prefers_respond_async,
    requested_wait,
)

logger = logging.getLogger("async_orders")

#: HTTP status of ``GET /async/orders/<id>/`` for each order status (docs/http-api.md).
POLL_STATUS = {
    OrderStatus.SCHEDULED: status.HTTP_202_ACCEPTED,
    OrderStatus.QUEUED: status.HTTP_202_ACCEPTED,
    OrderStatus.RUNNING: status.HTTP_202_ACCEPTED,
    OrderStatus.COMPLETED: status.HTTP_201_CREATED,
    OrderStatus.FAILED: status.HTTP_200_OK,
    OrderStatus.CANCELED: status.HTTP_200_OK,
}


class PlaceOrderView(OrderAPIView):
    """``POST /async/<view_name>/order/``: validate the envelope, place the order, 302."""

    schema = openapi.PlaceOrderSchema()

    @openapi.place_order_schema
    def post(self, request: Request, view_name: str) -> Response:
        endpoint = find_endpoint(view_name)
        if endpoint is None or not endpoint.is_schedulable:
            raise UnknownView(view_name)
        envelope = parse_envelope(endpoint, json_body(request._request))
        requester = requester_key(request.user, session_key(request))
        try:
            order, _ = place_order(
                envelope,
                owner=request.user,
                origin=_origin(request),
                requester=requester,
                idempotency_key=idempotency_key(request),
            )
        except Locked as locked:
            raise OrderConflict(self._blocking_url(locked.order)) from None
        remember_session_requester(request, requester)
        return placed_response(order, request)


class OrderDetailView(OrderAPIView):
    """``GET /async/orders/<id>/``: the order, with the HTTP status of its state and an
    ETag; ``304`` when ``If-None-Match`` has it. ``DELETE``: cancel it.
    ``?wait=`` is checked here, so a malformed one is a 400 wherever the view is
    mounted; :mod:`async_orders.views.longpoll` does the waiting."""

    @openapi.poll_order_schema
    def get(self, request: Request, pk: str) -> HttpResponse:
        requested_wait(request)
        order = self.get_order(pk, shown_only=True)
        etag = order_etag(order, request)
        if etag_matches(request, etag):
            return HttpResponseNotModified(headers={"ETag": etag})
        response = order_response(order, request)
        response["ETag"] = etag
        return response

    @openapi.cancel_order_schema
    def delete(self, request: Request, pk: str) -> Response:
        """200 when canceled at once, 202 when a running order was asked to stop. A body
        is not needed, but one that is not JSON is refused, as for placing an order."""
        if has_body(request._request):
            require_json(request._request)
        order = self.get_order(pk, acting=CANCEL_PERMISSION)
        if not order.cancel():
            order.refresh_from_db(fields=["status"])
            raise OrderFinished(order.status)
        body = OrderSerializer(order, context={"request": request}).data
        stopping = order.status == OrderStatus.RUNNING
        return Response(body, status=status.HTTP_202_ACCEPTED if stopping else status.HTTP_200_OK)


class OrderResultView(OrderAPIView):
    """``GET /async/orders/<id>/result/``: replay the view's stored response."""

    @openapi.order_result_schema
    def get(self, request: Request, pk: str) -> HttpResponse:
        order = self.get_order(pk)
        if order.status != OrderStatus.COMPLETED:
            raise ResultNotReady(order.status)
        if order.response_body is None:
            raise ResultNotStored()
        return _replay(order)


class OrderPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@openapi.list_orders_schema
class OrderListView(OrderAPIView, generics.ListAPIView):
    """``GET /async/orders/``: the caller's orders, newest first; ``?status=`` and
    ``?view=``; ``?all=1`` everyone's, for holders of ``async_orders.view_order``."""

    serializer_class = OrderSerializer
    pagination_class = OrderPagination

    def get_queryset(self) -> Any:
        # A plain dict: given a QueryDict, DRF would treat "?view=" as no filter at all.
        query = ListQuerySerializer(data=self.request.query_params.dict())
        if not query.is_valid():
            raise InvalidQuery(query.errors)
        filters = {
            field: query.validated_data[name]
            for name, field in (("status", "status"), ("view", "view_name"))
            if name in query.validated_data
        }
        everyone = query.validated_data["all"]
        if everyone and not may_see_everyones(self.request.user):
            raise ListingEveryoneDenied()
        return self.listed_orders(everyone=everyone).shown().filter(**filters)

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        Order.load_rerun_ids(page or [])  # the page's reruns in one query
        return page


def placed_response(order: Order, request: Request) -> Response:
    """A placed order's answer: ``302`` to it, or ``202`` with ``Prefer: respond-async``."""
    body = represent(order, request)
    headers = {"Location": body["url"], "Vary": "Prefer"}
    if prefers_respond_async(request):
        headers["Preference-Applied"] = "respond-async"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)
    return Response(body, status=status.HTTP_302_FOUND, headers=headers)


def order_response(order: Order, request: Request) -> Response:
    """The order's representation with the status code and headers its state calls for.
    The body is :func:`represent`'s, as ``OrderSerializer`` would give it, without the
    serializer instance and its copy of the dict (some 5 % of a poll's CPU)."""
    body = represent(order, request)
    code = POLL_STATUS[OrderStatus(order.status)]
    headers = {}
    if code == status.HTTP_202_ACCEPTED:
        headers["Retry-After"] = str(_retry_after(order))
    elif code == status.HTTP_201_CREATED:
        headers["Location"] = body["resource_url"]
    return Response(body, status=code, headers=headers)


def _retry_after(order: Order) -> int:
    if order.status == OrderStatus.SCHEDULED and order.run_at:
        due_in = (order.run_at - timezone.now()).total_seconds()
        return max(conf.RETRY_AFTER, math.ceil(due_in))
    return conf.RETRY_AFTER


def _replay(order: Order) -> HttpResponse:
    return HttpResponse(
        bytes(order.response_body or b""),
        status=order.response_status or status.HTTP_200_OK,
        content_type=order.response_content_type or None,
    )


def _origin(request: Request) -> str:
    return request.build_absolute_uri("/").rstrip("/")
