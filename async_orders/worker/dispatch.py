"""The service-level reverse: call an order's view as its owner, in this process.

``reverse()`` the URL name with the order's arguments, ``resolve()`` the path, build a
real request (method, query, JSON body, the owner as user) and call the view. Nothing
here knows about Celery, so it runs the same in a worker, a test or a shell.
"""

from __future__ import annotations

import io
import json
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.contrib.auth.models import AnonymousUser
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponseBase
from django.urls import Resolver404, ResolverMatch

from async_orders.registry import find_endpoint, route_to
from async_orders.view_response import ViewResponse

if TYPE_CHECKING:
    from async_orders.models import Order


class NotOptedIn(Resolver404):
    """The order's view is no longer schedulable with the order's method."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"{order.view_name!r} cannot be ordered with {order.method} any more.")


def call_view(order: Order) -> ViewResponse:
    """Call the order's view and return its rendered response. Exceptions propagate:
    ``NoReverseMatch`` or ``Resolver404`` when the name no longer leads to the view
    that was opted in (the URLconf changed since the order was placed)."""
    path, match = _route(order)
    request = build_request(order, path)
    request.resolver_match = match
    view = async_to_sync(match.func) if iscoroutinefunction(match.func) else match.func
    response = view(request, *match.args, **match.kwargs)
    return _capture(response)


def _route(order: Order) -> tuple[str, ResolverMatch]:
    """The path and match of the order's view, checked again now: only the opted-in
    view may run, never whatever else the URLconf serves under its name or path."""
    endpoint = find_endpoint(order.view_name)
    if endpoint is None or order.method not in endpoint.options_by_method():
        raise NotOptedIn(order)
    return route_to(endpoint, order.args, order.kwargs)


def build_request(order: Order, path: str) -> WSGIRequest:
    """A request like the one a client would send for this call, made by the owner."""
    origin = urlsplit(order.origin)
    body = b"" if order.data is None else json.dumps(order.data).encode()
    request = WSGIRequest(
        {
            "REQUEST_METHOD": order.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": urlencode(order.query, doseq=True),
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_ACCEPT": "application/json",
            "HTTP_HOST": origin.netloc,
            "SERVER_NAME": origin.hostname or "localhost",
            "SERVER_PORT": str(origin.port or (443 if origin.scheme == "https" else 80)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": origin.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
        }
    )
    _act_as_owner(request, order)
    request.async_order = order  # type: ignore[attr-defined]
    return request


def _act_as_owner(request: WSGIRequest, order: Order) -> None:
    owner = order.owner if order.owner and order.owner.is_active else None
    request.user = owner or AnonymousUser()
    # DRF views authenticate with their own classes (session, token...), none of
    # which can see this request's credentials: DRF's forced-authentication hook
    # makes the owner the authenticated user, so the view's permission checks
    # run against that user. An anonymous owner authenticates as nobody.
    request._force_auth_user = owner  # type: ignore[attr-defined]
    # The order's POST passed CSRF protection; this request has no cookie to check.
    request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]


def _capture(response: HttpResponseBase) -> ViewResponse:
    render = getattr(response, "render", None)
    if callable(render):  # TemplateResponse, DRF Response
        render()
    # Not response.close(): it sends request_finished, whose receivers close the
    # worker's database connections in the middle of recording the outcome.
    body = (
        b"".join(response.streaming_content)  # type: ignore[attr-defined]
        if response.streaming
        else response.content  # type: ignore[attr-defined]
    )
    return ViewResponse(
        status_code=response.status_code,
        content_type=response.get("Content-Type", ""),
        body=body,
        location=response.get("Location"),
    )
