"""The HTTP layer: thin DRF views that parse, delegate, and shape the answer.

DESIGN.md's status table (order status -> HTTP status and headers) lives in
:func:`order_response` and nowhere else.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from async_orders import openapi
from async_orders.attempt_lease import UNREACHABLE
from async_orders.body import JSONBodyParser, has_body, json_body, require_json
from async_orders.conditional import etag_matches, order_etag, requested_wait
from async_orders.conf import conf
from async_orders.envelope import parse_envelope
from async_orders.exceptions import (
    DatabaseUnavailable,
    FieldErrors,
    InvalidIdempotencyKey,
    InvalidQuery,
    OrderConflict,
    OrderFinished,
    OrderNotFound,
    ResultNotReady,
    ResultNotStored,
    UnknownView,
)
from async_orders.locks import Locked
from async_orders.models import Order, OrderStatus, requester_key
from async_orders.placing import place_order
from async_orders.registry import find_endpoint
from async_orders.serializers import ListQuerySerializer, OrderSerializer

logger = logging.getLogger("async_orders")

#: HTTP status of ``GET /async/orders/<id>/`` for each order status (DESIGN.md).
POLL_STATUS = {
    OrderStatus.SCHEDULED: status.HTTP_202_ACCEPTED,
    OrderStatus.QUEUED: status.HTTP_202_ACCEPTED,
    OrderStatus.RUNNING: status.HTTP_202_ACCEPTED,
    OrderStatus.COMPLETED: status.HTTP_201_CREATED,
    OrderStatus.FAILED: status.HTTP_200_OK,
    OrderStatus.CANCELED: status.HTTP_200_OK,
}

#: The header's value: printable ASCII, as the IETF draft's examples (UUIDs) are.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every error of our endpoints as ``{"code", "detail"[, "fields"]}``; an
    unreachable database is a 503 the client may retry, never a 500."""
    if isinstance(exc, UNREACHABLE):
        logger.warning("The database cannot be reached: %s", exc)
        exc = DatabaseUnavailable(retry_after=conf.RETRY_AFTER)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = getattr(exc, "detail", None)
    body: dict[str, Any] = {
        "code": getattr(detail, "code", None) or getattr(exc, "default_code", "error"),
        "detail": str(detail) if detail is not None else str(response.data.get("detail")),
    }
    if isinstance(exc, FieldErrors):
        body["fields"] = exc.fields
    body.update(getattr(exc, "extra", {}))
    response.data = body
    return response


@method_decorator(never_cache, name="dispatch")
class OrderAPIView(APIView):
    """Base of the order endpoints: JSON in and out, never cached, one error format."""

    parser_classes = [JSONBodyParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self) -> Any:
        return handle_exception

    def get_authenticators(self) -> list[Any]:
        classes = conf.AUTHENTICATION_CLASSES
        return super().get_authenticators() if classes is None else [c() for c in classes]

    def get_permissions(self) -> Sequence[Any]:
        classes = conf.PERMISSION_CLASSES
        return super().get_permissions() if classes is None else [c() for c in classes]

    def get_throttles(self) -> list[Any]:
        classes = conf.THROTTLE_CLASSES
        return super().get_throttles() if classes is None else [c() for c in classes]

    def listed_orders(self) -> Any:
        return Order.objects.listed_for(self.request.user, self._session_key())

    def _session_key(self) -> str | None:
        return _session_key(self.request)

    def _blocking_url(self, order: Order | None) -> str | None:
        """The blocking order's URL, only for a caller who may see it: for an
        anonymous order the URL is the key, and must not be handed out."""
        if order is None or not order.is_visible_to(self.request.user, self._session_key()):
            return None
        path = reverse("async_orders:order-detail", args=[order.pk])
        return self.request.build_absolute_uri(path)

    def get_order(self, pk: str, *, shown_only: bool = False) -> Order:
        """The order ``pk`` if the caller may see it; a 404 otherwise, whichever the reason
        (malformed id, unknown id, somebody else's order). ``shown_only`` loads just
        what the representation shows, for reading, not for changing, the order."""
        try:
            order_id = uuid.UUID(pk)
        except ValueError:
            raise OrderNotFound() from None
        # By primary key alone, then who may see it: the cheapest query there is, and
        # the same 404 whether the order is missing or somebody else's.
        order = (Order.objects.shown() if shown_only else Order.objects).one(order_id)
        if order is None or not order.is_visible_to(self.request.user, self._session_key()):
            raise OrderNotFound()
        return order


class PlaceOrderView(OrderAPIView):
    """``POST /async/<view_name>/order/``: validate the envelope, place the order, 302."""

    schema = openapi.PlaceOrderSchema()

    @openapi.place_order
    def post(self, request: Request, view_name: str) -> Response:
        endpoint = find_endpoint(view_name)
        if endpoint is None or not endpoint.is_schedulable:
            raise UnknownView(view_name)
        envelope = parse_envelope(endpoint, json_body(request._request))
        try:
            order, _ = place_order(
                envelope,
                owner=request.user,
                origin=_origin(request),
                requester=requester_key(request.user, _session_key(request)),
                idempotency_key=_idempotency_key(request),
            )
        except Locked as locked:
            raise OrderConflict(self._blocking_url(locked.order)) from None
        body = OrderSerializer(order, context={"request": request}).data
        headers = {"Location": body["url"], "Vary": "Prefer"}
        if _prefers_respond_async(request):
            headers["Preference-Applied"] = "respond-async"
            return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)
        return Response(body, status=status.HTTP_302_FOUND, headers=headers)


class OrderDetailView(OrderAPIView):
    """``GET /async/orders/<id>/``: the order, with the HTTP status of its state and an
    ETag; ``304`` when ``If-None-Match`` has it. ``DELETE``: cancel it.
    ``?wait=`` is validated here and waited for by :mod:`async_orders.longpoll`."""

    @openapi.poll_order
    def get(self, request: Request, pk: str) -> HttpResponse:
        requested_wait(request)
        order = self.get_order(pk, shown_only=True)
        etag = order_etag(order, request)
        if etag_matches(request, etag):
            return HttpResponseNotModified(headers={"ETag": etag})
        response = order_response(order, request)
        response["ETag"] = etag
        return response

    @openapi.cancel_order
    def delete(self, request: Request, pk: str) -> Response:
        """200 when canceled at once, 202 when a running order was asked to stop. A body
        is not needed, but one that is not JSON is refused, as for placing an order."""
        if has_body(request._request):
            require_json(request._request)
        order = self.get_order(pk)
        if not order.cancel():
            order.refresh_from_db(fields=["status"])
            raise OrderFinished(order.status)
        body = OrderSerializer(order, context={"request": request}).data
        stopping = order.status == OrderStatus.RUNNING
        return Response(body, status=status.HTTP_202_ACCEPTED if stopping else status.HTTP_200_OK)


class OrderResultView(OrderAPIView):
    """``GET /async/orders/<id>/result/``: replay the view's stored response."""

    @openapi.order_result
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


@openapi.list_orders_view
class OrderListView(OrderAPIView, generics.ListAPIView):
    """``GET /async/orders/``: the caller's orders, newest first; ``?status=`` and ``?view=``."""

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
        return self.listed_orders().shown().filter(**filters)


def order_response(order: Order, request: Request) -> Response:
    """The order's representation with the status code and headers its state calls for."""
    body = OrderSerializer(order, context={"request": request}).data
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


def _prefers_respond_async(request: Request) -> bool:
    """RFC 7240: ``respond-async`` is among the ``Prefer`` header's preferences."""
    preferences = request.headers.get("Prefer", "").split(",")
    tokens = (preference.split(";")[0].split("=")[0] for preference in preferences)
    return any(token.strip().lower() == "respond-async" for token in tokens)


def _session_key(request: Request) -> str | None:
    session = getattr(request, "session", None)
    return session.session_key if session is not None else None


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidIdempotencyKey()
    return key
