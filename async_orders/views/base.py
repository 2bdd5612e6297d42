"""What every order endpoint shares: JSON in and out, never cached, the configured
authentication, permissions and throttles, one error format, and finding an order
the caller may see."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from async_orders.conf import conf
from async_orders.exceptions import DatabaseUnavailable, FieldErrors, OrderNotFound
from async_orders.models import Order
from async_orders.outage import UNREACHABLE
from async_orders.ownership import may_act_on
from async_orders.views.body import JSONBodyParser
from async_orders.views.openapi import OrderSchema

logger = logging.getLogger("async_orders")


def render_error(exc: Exception, context: dict[str, Any]) -> Response | None:
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


class OrderAPIView(APIView):
    """Base of the order endpoints: JSON in and out, never cached, one error format."""

    parser_classes = [JSONBodyParser]
    renderer_classes = [JSONRenderer]
    schema = OrderSchema()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """DRF's dispatch, then what ``never_cache`` adds, to every answer, errors too.
        Not ``method_decorator(never_cache)``: that decorates the method again on
        every request, a cost each poll paid."""
        response = super().dispatch(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    def get_exception_handler(self) -> Any:
        return render_error

    def get_authenticators(self) -> list[Any]:
        classes = conf.AUTHENTICATION_CLASSES
        return super().get_authenticators() if classes is None else [c() for c in classes]

    def get_permissions(self) -> Sequence[Any]:
        classes = conf.PERMISSION_CLASSES
        return super().get_permissions() if classes is None else [c() for c in classes]

    def get_throttles(self) -> list[Any]:
        classes = conf.THROTTLE_CLASSES
        return super().get_throttles() if classes is None else [c() for c in classes]

    def listed_orders(self, *, everyone: bool = False) -> Any:
        return Order.objects.listed_for(self.request.user, self._session_key(), everyone=everyone)

    def _session_key(self) -> str | None:
        return session_key(self.request)

    def _blocking_url(self, order: Order | None) -> str | None:
        """The blocking order's URL, only for a caller who may see it: for an
        anonymous order the URL is the key, and must not be handed out."""
        if order is None or not order.is_visible_to(self.request.user, self._session_key()):
            return None
        path = reverse("async_orders:order-detail", args=[order.pk])
        return self.request.build_absolute_uri(path)

    def get_order(self, pk: str, *, shown_only: bool = False, acting: str | None = None) -> Order:
        """The order ``pk`` if the caller may see it; a 404 otherwise, whichever the reason
        (malformed id, unknown id, somebody else's order). ``shown_only`` loads just
        what the representation shows, for reading, not for changing, the order.
        ``acting`` (a permission: cancel, re-run) asks more than seeing it: the caller
        must own it or hold that permission, else the same 404."""
        try:
            order_id = uuid.UUID(pk)
        except ValueError:
            raise OrderNotFound() from None
        # By primary key alone, then who may see it: the cheapest query there is, and
        # the same 404 whether the order is missing or somebody else's.
        order = Order.objects.shown_one(order_id) if shown_only else Order.objects.one(order_id)
        if order is None or not order.is_visible_to(self.request.user, self._session_key()):
            raise OrderNotFound()
        if acting and not may_act_on(
            order.requester, self.request.user, self._session_key(), acting
        ):
            raise OrderNotFound()
        return order


def session_key(request: Request) -> str | None:
    """The caller's session key, if it has a session: who an anonymous caller is."""
    session = getattr(request, "session", None)
    return session.session_key if session is not None else None
