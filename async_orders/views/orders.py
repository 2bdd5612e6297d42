"""The order endpoints: place, poll (and cancel), replay the result, list.

The status table of docs/http-api.md (order status -> HTTP status and headers) lives in
:func:`order_response` and nowhere else.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.translation import gettext
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param

import async_orders.views.openapi as openapi
from async_orders.conf import conf
from async_orders.deprecation import deprecated_form
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
from async_orders.labels import having, parse_filters
from async_orders.locks import Locked
from async_orders.models import Order, OrderStatus
from async_orders.ownership import (
    CANCEL_PERMISSION,
    may_see_everyones,
    remember_session_requester,
    requester_key,
)
from async_orders.placing import place_order
from async_orders.registry import find_endpoint, find_task
from async_orders.serializers import ListQuerySerializer, OrderSerializer, represent
from async_orders.views.base import OrderAPIView, session_key
from async_orders.views.body import json_body, require_json_if_body
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
                origin=origin(request),
                requester=requester,
                idempotency_key=idempotency_key(request),
            )
        except Locked as locked:
            raise OrderConflict(self._blocking_url(locked.order)) from None
        return self.placed(order, requester)

    def placed(self, order: Order, requester: str) -> Response:
        """The answer to a placed order: 302 to it (202 with ``Prefer: respond-async``)."""
        request = self.request
        remember_session_requester(request, requester)
        return placed_answer(request, represent(order, request))


class PlaceTaskOrderView(PlaceOrderView):
    """``POST /async/tasks/<dotted.path>/order/``: the same for an opted-in ``django.tasks``
    task (:mod:`async_orders.task_orders`); the Tasks framework is imported only here,
    so a project without it serves its views' orders."""

    schema = openapi.PlaceTaskOrderSchema()

    @openapi.place_task_order_schema
    def post(self, request: Request, path: str) -> Response:
        opted_in = find_task(path)
        if opted_in is None:
            raise UnknownView(path)
        from async_orders import task_orders

        envelope = task_orders.parse_task_envelope(opted_in, json_body(request._request))
        requester = requester_key(request.user, session_key(request))
        try:
            order = task_orders.place_task_order(
                opted_in,
                envelope,
                request.user,
                origin(request),
                requester=requester,
                idempotency_key=idempotency_key(request),
            )
        except Locked as locked:
            raise OrderConflict(self._blocking_url(locked.order)) from None
        return self.placed(order, requester)


class OrderDetailView(OrderAPIView):
    """``GET /async/orders/<id>/``: the order, with the HTTP status of its state and an
    ETag; ``304`` when ``If-None-Match`` has it. ``DELETE``: cancel it.
    ``?wait=`` is checked here, so a malformed one is a 400 wherever the view is
    mounted; :mod:`async_orders.views.longpoll` does the waiting."""

    @openapi.poll_order_schema
    def get(self, request: Request, pk: str) -> HttpResponse:
        requested_wait(request)
        order = self.get_order(pk, shown_only=True)
        if order.is_followed:
            _follow(order)
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
        require_json_if_body(request._request)
        order = self.get_order(pk, acting=CANCEL_PERMISSION)
        if not cancel(order):
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
    """The page-number form (``?page=``) of the listing, deprecated: it COUNTs every
    matching order on each page, and a page shifts as orders are placed. Kept for
    one release, answering with a ``Deprecation`` header."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_paginated_response(self, data: Any) -> Response:
        response = super().get_paginated_response(data)
        assert self.request is not None  # set by paginate_queryset, which DRF calls first
        successor = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
        return deprecated_form(response, PAGE_FORM_DEPRECATED, successor)


#: When ``?page=`` was deprecated (2026-12-06), for the ``Deprecation`` header.
PAGE_FORM_DEPRECATED = 1796515200


class OrderCursorPagination(CursorPagination):
    """The listing's pages: newest first, each page the orders older than the last one
    seen, so no page COUNTs and none shifts when orders are placed meanwhile. The
    cursor is opaque; follow ``next``. Ties of ``created_at`` are told apart by DRF's
    offset in the cursor."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request: Request) -> Any:
        """A cursor this server did not write is a bad value (400), not a missing page."""
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                Order._meta.get_field("created_at").to_python(cursor.position)
        except (NotFound, ValidationError):
            raise InvalidQuery({"cursor": [gettext("Not a cursor of this listing.")]}) from None
        return cursor


@openapi.list_orders_schema
class OrderListView(OrderAPIView, generics.ListAPIView):
    """``GET /async/orders/``: the caller's orders, newest first, a page at a time
    (``?cursor=``); ``?status=``, ``?view=``, ``?label=key:value`` (repeatable: all of
    them), ``?created_after=``/``?created_before=``; ``?all=1`` everyone's, for
    holders of ``async_orders.view_order``."""

    serializer_class = OrderSerializer
    pagination_class = OrderCursorPagination

    @property
    def paginator(self) -> Any:
        """The cursor form, unless the client asked for a page number (deprecated)."""
        if not hasattr(self, "_paginator"):
            old = "page" in self.request.query_params
            self._paginator = OrderPagination() if old else self.pagination_class()
        return self._paginator

    def get_queryset(self) -> Any:
        # A plain dict: given a QueryDict, DRF would treat "?view=" as no filter at all.
        query = ListQuerySerializer(data=self.request.query_params.dict())
        wanted, label_errors = parse_filters(self.request.query_params.getlist("label"))
        if not query.is_valid() or label_errors:
            raise InvalidQuery({**query.errors, **label_errors})
        filters = {
            field: query.validated_data[name]
            for name, field in LIST_FILTERS
            if name in query.validated_data
        }
        everyone = query.validated_data["all"]
        if everyone and not may_see_everyones(self.request.user):
            raise ListingEveryoneDenied()
        listed = self.listed_orders(everyone=everyone).shown().filter(**filters)
        return having(listed, wanted)

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        Order.load_rerun_ids(page or [])  # the page's reruns in one query
        return page


#: The listing's filters: query parameter -> the lookup it is.
LIST_FILTERS = (
    ("status", "status"),
    ("view", "view_name"),
    ("created_after", "created_at__gt"),
    ("created_before", "created_at__lt"),
)


def placed_answer(request: Request, body: dict[str, Any]) -> Response:
    """``302`` to what was placed (an order, a batch), whose representation is ``body``;
    ``202`` with the same ``Location`` when the client prefers ``respond-async``."""
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


def _follow(order: Order) -> None:
    """An order of a task another backend runs, brought up to date with its result."""
    from async_orders.followed_tasks import follow

    follow(order)


def cancel(order: Order) -> bool:
    """Cancel ``order`` as ``DELETE`` does (and the admin's action): ``False`` when it
    had finished. An order following another backend's task is canceled through that
    backend (the Tasks framework, there, is imported only then)."""
    if not order.is_followed:
        return order.cancel()
    from async_orders.followed_tasks import cancel_followed

    return cancel_followed(order)


def _replay(order: Order) -> HttpResponse:
    return HttpResponse(
        bytes(order.response_body or b""),
        status=order.response_status or status.HTTP_200_OK,
        content_type=order.response_content_type or None,
    )


def origin(request: Request) -> str:
    """The scheme and host the client placed an order on (for its URLs)."""
    return request.build_absolute_uri("/").rstrip("/")
