"""OpenAPI description of the order endpoints (drf-spectacular).

The views stay thin: every response each endpoint can give is declared here, next
to the error catalogue, and applied to the views as decorators.

The schema is also read by client generators (openapi-python-client, tested), with
whatever SPECTACULAR_SETTINGS the project has, drf-spectacular's defaults included:
the operations carry their own tag and operation ids (else both follow where the
URLs are mounted, and so would the generated modules), and the enums carry names.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
import uuid
from collections.abc import Iterable
from typing import Any

from django.urls import converters
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import permissions, serializers

from async_orders.envelope import EnvelopeSerializer, TaskEnvelopeSerializer
from async_orders.registry import Endpoint, iter_endpoints, iter_tasks
from async_orders.serializers import AttemptSerializer, ListQuerySerializer, OrderSerializer


class ErrorSerializer(serializers.Serializer):
    """Every 4xx of our endpoints."""

    code = serializers.CharField(help_text="Stable, machine-readable; see the error catalogue.")
    detail = serializers.CharField(help_text="For humans: names the field or the reason.")
    # DRF's metaclass takes declared fields off the class, so this key of the error
    # body does not replace Serializer.fields; mypy sees only the assignment.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="invalid_envelope, invalid_query: messages per field (kwargs.pk, data.name).",
    )
    blocking_order = serializers.URLField(
        required=False,
        allow_null=True,
        help_text="order_conflict only: the order holding the lock.",
    )


def error_response(description: str) -> OpenApiResponse:
    """An error answer in the schema: the error body, described."""
    return OpenApiResponse(ErrorSerializer, description=description)


def _header(name: str, description: str, responses: list[int]) -> OpenApiParameter:
    return OpenApiParameter(
        name, str, OpenApiParameter.HEADER, description=description, response=responses
    )


def _idempotency_key(description: str) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotency-Key", str, OpenApiParameter.HEADER, description=description
    )


def _replayed(status: int | str, description: str) -> dict[tuple[int | str, str], Any]:
    """A response of ``/result/``: the view's body in its own content type, as bytes.
    ``*/*`` says any content type; ``application/octet-stream``, one of them, comes
    first for generators that do not read ``*/*`` (openapi-python-client drops such a
    response, and the status with it): they give the body as bytes, whatever it is."""
    return {
        (status, media_type): OpenApiResponse(OpenApiTypes.BINARY, description=description)
        for media_type in ("application/octet-stream", "*/*")
    }


NOT_FOUND = error_response("order_not_found: no such order, a malformed id, or not yours.")
#: The order id in the path: a UUID (anything else is the same 404 as an unknown one).
ORDER_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The order's id."
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER, description="A previous ETag."
)
LAST_EVENT_ID = OpenApiParameter(
    "Last-Event-ID", str, OpenApiParameter.HEADER, description="Resume after this event."
)
#: The tag of every order endpoint: a generated client's module (``api.async_orders``).
TAG = "async-orders"
AUTH_ERRORS = {
    401: error_response("not_authenticated / authentication_failed"),
    403: error_response("permission_denied (CSRF failures included)"),
    429: error_response("throttled"),
}

#: What placing an order answers, a view's or a task's.
PLACED_RESPONSES = {
    302: OpenApiResponse(OrderSerializer, description="Placed; Location is the order."),
    202: OpenApiResponse(
        OrderSerializer, description="Placed, with Prefer: respond-async; Location too."
    ),
    409: error_response("order_conflict: an active order holds a lock key; see blocking_order"),
    411: error_response("length_required: a chunked body this server cannot read"),
    413: error_response("request_too_large"),
    415: error_response("unsupported_media_type: not Content-Type: application/json"),
    422: error_response("idempotency_key_reused"),
    **AUTH_ERRORS,
    429: error_response("too_many_active_orders (MAX_ACTIVE_ORDERS) or throttled"),
}
#: The headers of placing an order.
PLACING_HEADERS = [
    _idempotency_key("Retrying with the same key and body returns the same order."),
    OpenApiParameter(
        "Prefer",
        str,
        OpenApiParameter.HEADER,
        description="respond-async: answer 202 instead of the 302 (RFC 7240).",
    ),
    _header("Location", "The order's URL.", [302, 202]),
    _header("Preference-Applied", "respond-async when it was honoured.", [202]),
]

place_order_schema = extend_schema(
    operation_id="place_async_order",
    tags=[TAG],
    summary="Place an order: call the view later, in a worker, as you",
    description="Validates the order request against the view, places the order and "
    "answers 302 to it: follow the Location, then poll until 201.",
    request=EnvelopeSerializer,
    responses={
        **PLACED_RESPONSES,
        400: error_response(
            "invalid_envelope (see fields), parse_error, invalid_idempotency_key, "
            "view_shadowed, or the view's input serializer rejected data/query"
        ),
        404: error_response("unknown_view: no such URL name, or not schedulable"),
    },
    parameters=PLACING_HEADERS,
)

poll_order_schema = extend_schema(
    operation_id="poll_async_order",
    tags=[TAG],
    summary="The order, with the HTTP status of its state",
    description="202 while it waits or runs, 201 once completed, 200 once failed or "
    "canceled; with ?wait=, answers once the order changes.",
    responses={
        202: OpenApiResponse(OrderSerializer, description="scheduled, queued or running"),
        201: OpenApiResponse(OrderSerializer, description="completed; Location: resource_url"),
        200: OpenApiResponse(OrderSerializer, description="failed or canceled; see error"),
        304: OpenApiResponse(description="If-None-Match holds the current ETag."),
        400: error_response("invalid_wait"),
        404: NOT_FOUND,
        **AUTH_ERRORS,
    },
    parameters=[
        ORDER_ID,
        OpenApiParameter(
            "wait",
            float,
            description="Long-poll: answer once the order changes, or after this many "
            "seconds (capped by LONG_POLL_MAX_WAIT).",
        ),
        IF_NONE_MATCH,
        _header("Retry-After", "Seconds to wait before polling again.", [202]),
        _header("Location", "The resource_url of a completed order.", [201]),
        _header("ETag", "Changes whenever the order does.", [200, 201, 202, 304]),
    ],
)

order_events_schema = extend_schema(
    operation_id="async_order_events",
    tags=[TAG],
    summary="The order's changes as server-sent events",
    description="One event per change, until the order is finished; visible to whoever "
    "may see the order.",
    responses={
        (200, "text/event-stream"): OpenApiResponse(
            str, description="progress events, then completed, failed or canceled"
        ),
        204: OpenApiResponse(description="Last-Event-ID is the final state already."),
        404: NOT_FOUND,
        **AUTH_ERRORS,
    },
    parameters=[
        ORDER_ID,
        LAST_EVENT_ID,
    ],
)

cancel_order_schema = extend_schema(
    operation_id="cancel_async_order",
    tags=[TAG],
    summary="Cancel the order",
    description="A waiting order is canceled at once (200); a running one is asked to "
    "stop (202). A body is not needed; one that is not JSON is refused.",
    parameters=[ORDER_ID],
    responses={
        200: OpenApiResponse(OrderSerializer, description="Canceled at once."),
        202: OpenApiResponse(OrderSerializer, description="Running: asked to stop."),
        404: NOT_FOUND,
        409: error_response("order_finished"),
        415: error_response("unsupported_media_type: a body that is not application/json"),
        **AUTH_ERRORS,
    },
)

order_result_schema = extend_schema(
    operation_id="async_order_result",
    tags=[TAG],
    summary="Replay the response of the completed order's view",
    description="Answers with the status, content type and body the view answered with: "
    "any 2xx (a create answers 201).",
    parameters=[ORDER_ID],
    responses={
        **_replayed(200, "The view answered 200."),
        **_replayed(201, "The view answered 201."),
        **_replayed("2XX", "The view's own 2xx status."),
        404: NOT_FOUND,
        409: error_response("result_not_ready: the order has not completed"),
        410: error_response("result_not_stored: larger than MAX_RESULT_BYTES"),
        **AUTH_ERRORS,
    },
)

list_orders_schema = extend_schema_view(
    get=extend_schema(
        operation_id="list_async_orders",
        tags=[TAG],
        summary="Your orders, newest first",
        description=(
            "Filter them by status and by view; paginated. `all=true` lists everyone's "
            "orders, for holders of the async_orders.view_order permission (403 otherwise)."
        ),
        parameters=[ListQuerySerializer],
        responses={
            200: OrderSerializer(many=True),
            400: error_response("invalid_query (see fields)"),
            404: error_response("not_found: no such page"),
            **AUTH_ERRORS,
            403: error_response("permission_denied, or listing_everyone_denied for all=true"),
        },
    )
)


place_task_order_schema = extend_schema(
    operation_id="place_async_task_order",
    tags=[TAG],
    summary="Place an order of a django.tasks task: run it in a worker, for you",
    description="Binds args/kwargs to the task's signature, places the order (enqueued "
    "with the task's backend) and answers 302 to it: follow the Location, then poll "
    "until 201; the result endpoint answers 200 with the task's JSON return value. "
    "x-task-parameters gives each task's parameters, typed from its annotations.",
    request=TaskEnvelopeSerializer,
    responses={
        **PLACED_RESPONSES,
        400: error_response("invalid_envelope (see fields), parse_error, invalid_idempotency_key"),
        404: error_response("unknown_view: no such task, or not schedulable"),
    },
    parameters=PLACING_HEADERS,
)


class OrderSchema(AutoSchema):
    """The schema of every order endpoint."""

    def get_auth(self) -> list[dict[str, list[str]]]:
        """drf-spectacular's security requirements, plus the empty one (anonymous
        access) wherever the configured permission classes let anonymous users in
        and drf-spectacular did not see it: it looks for ``AllowAny`` itself only, not
        for its subclasses nor for an empty list of permission classes (which DRF
        reads as everyone allowed), so a generator would insist on credentials."""
        auths: list[dict[str, list[str]]] = super().get_auth()
        if {} not in auths and all(
            isinstance(permission, permissions.AllowAny)
            for permission in self.view.get_permissions()
        ):
            auths.append({})
        return auths


class PlaceOrderSchema(OrderSchema):
    """Documents, when the schema is generated, which views can be ordered: their URL
    names as the enum of ``view_name``, and in ``x-view-inputs`` the serializers that
    validate each view's ``data``/``query`` (components of the schema)."""

    def get_override_parameters(self) -> list[Any]:
        names = sorted(endpoint.name for endpoint in _schedulable())
        examples = [endpoint.name for endpoint in _examples()]
        view_name = OpenApiParameter(
            "view_name",
            {"type": "string", "enum": names, "x-enum-varnames": enum_member_names(names)},
            OpenApiParameter.PATH,
            required=True,
            description="URL name of a schedulable view, with its namespace.",
            examples=[OpenApiExample(name, value=name) for name in examples],
        )
        return [*super().get_override_parameters(), view_name]

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        """The envelope as the server reads it: an unknown key is a 400, and ``kwargs``
        and ``query`` are JSON objects of any keys, which a generator should let a
        client pass as plain dicts (``type: object`` makes openapi-python-client wrap
        them in a model class of their own that a dict cannot stand in for)."""
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, EnvelopeSerializer):
            schema["additionalProperties"] = False
            schema["properties"].update(PLAIN_OBJECTS)
        return schema

    def get_examples(self) -> list[OpenApiExample]:
        """An order request for each of the first schedulable views, with URL kwargs
        of the types its route takes, so that "Try it out" places a real order."""
        return [*super().get_examples(), *map(_example, _examples())]

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        inputs = self._view_inputs()
        if operation is not None and inputs:
            operation["x-view-inputs"] = inputs
        return operation

    def _view_inputs(self) -> dict[str, dict[str, dict[str, Any]]]:
        documented: dict[str, dict[str, dict[str, Any]]] = {}
        for endpoint in _schedulable():
            for method, options in endpoint.options_by_method().items():
                typed = {
                    key: self.resolve_serializer(serializer, "request").ref
                    for key, serializer in (
                        ("data", options.data_serializer),
                        ("query", options.query_serializer),
                    )
                    if serializer is not None
                }
                if typed:
                    documented.setdefault(endpoint.name, {})[method] = typed
        return documented


class PlaceTaskOrderSchema(PlaceOrderSchema):
    """Which tasks can be ordered: their dotted paths as the enum of ``path``, and in
    ``x-task-parameters`` each one's parameters as a JSON schema, typed from the
    task function's annotations where they are JSON types."""

    def get_override_parameters(self) -> list[Any]:
        paths = [opted_in.path for opted_in in iter_tasks()]
        schema: dict[str, Any] = {"type": "string"}
        if paths:  # an enum may not be empty
            schema.update(enum=paths, **{"x-enum-varnames": enum_member_names(paths)})
        path = OpenApiParameter(
            "path",
            schema,
            OpenApiParameter.PATH,
            required=True,
            description="Dotted path of a schedulable django.tasks task.",
        )
        return [*OrderSchema.get_override_parameters(self), path]

    def get_examples(self) -> list[OpenApiExample]:
        return OrderSchema.get_examples(self)

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = OrderSchema.get_operation(self, *args, **kwargs)
        if operation is not None:
            operation["x-task-parameters"] = {
                opted_in.path: task_parameters(opted_in.task.func, opted_in.task.takes_context)
                for opted_in in iter_tasks()
            }
        return operation


#: JSON schema types of the annotations that are JSON types.
JSON_TYPES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    list: {"type": "array"},
    tuple: {"type": "array"},
    dict: {"type": "object"},
    type(None): {"type": "null"},
}


def task_parameters(function: Any, takes_context: bool) -> dict[str, Any]:
    """The parameters of a task function as a JSON schema object: each typed when its
    annotation is a JSON type (``int``, ``list[str]``, ``str | None``), else any value;
    required unless it has a default. ``*args``/``**kwargs`` are left out."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve here: leave them untyped
        hints = {}
    parameters = list(inspect.signature(function).parameters.values())[int(takes_context) :]
    named = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return {
        "type": "object",
        "properties": {p.name: _json_schema(hints.get(p.name)) for p in named},
        "required": [p.name for p in named if p.default is p.empty],
    }


def _json_schema(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [_json_schema(member) for member in typing.get_args(annotation)]
        return {} if {} in options else {"anyOf": options}
    return dict(JSON_TYPES.get(origin or annotation, {}))


#: The envelope's keys that hold a JSON object of any keys, described without
#: ``type: object`` so that generated clients take plain dicts; the server answers
#: anything else with a 400 invalid_envelope.
PLAIN_OBJECTS: dict[str, dict[str, Any]] = {
    "kwargs": {
        "description": "A JSON object: the URL kwargs, each checked against its route converter.",
    },
    "query": {
        "description": "A JSON object: query-string parameters, each a string, a "
        "number or a list of them.",
    },
    "labels": {
        "description": "A JSON object of at most 16 string labels (keys of 1-64 "
        "characters, values of at most 256), to find the order by (?label=key:value).",
    },
}

#: How many schedulable views the schema gives as examples.
EXAMPLES = 5

#: A value of each of Django's path converters, for the examples' kwargs.
SAMPLES: dict[type, Any] = {
    converters.IntConverter: 1,
    converters.SlugConverter: "a-slug",
    converters.UUIDConverter: str(uuid.UUID(int=1)),
    converters.PathConverter: "a/path",
}


def _examples() -> list[Endpoint]:
    """The views the examples order: those taking URL kwargs first, they show more."""
    ordered = sorted(_schedulable(), key=lambda endpoint: (not endpoint.converters, endpoint.name))
    return ordered[:EXAMPLES]


def _example(endpoint: Endpoint) -> OpenApiExample:
    kwargs = {
        name: SAMPLES.get(type(converter), "value")
        for name, converter in endpoint.converters.items()
    }
    return OpenApiExample(
        endpoint.name,
        summary=f"Order {endpoint.name}",
        value={"kwargs": kwargs} if kwargs else {},
        request_only=True,
    )


def _schedulable() -> list[Endpoint]:
    return [endpoint for endpoint in iter_endpoints() if endpoint.is_schedulable]


def enum_member_names(names: Iterable[str]) -> list[str]:
    """Names for the members of a generated enum of URL names (``x-enum-varnames``),
    one per name, in order: ``shop:pizza-list`` -> ``SHOP_PIZZA_LIST``. Without them a
    generator drops what is not a letter or a digit (``SHOPPIZZA_LIST``). Each name is
    already as openapi-python-client would sanitise it (upper case, single
    underscores, not starting with a digit), and they are made unique here, since the
    generator lets a later member silently replace an earlier one of the same name
    (``shop:pizza-list`` and ``shop-pizza-list``)."""
    members: list[str] = []
    for name in names:
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # camelCase -> camel_Case
        member = re.sub(r"[^0-9A-Za-z]+", "_", words).strip("_").upper() or "VIEW"
        if member[0].isdigit():
            member = f"VIEW_{member}"
        unique, count = member, 1
        while unique in members:
            count += 1
            unique = f"{member}_{count}"
        members.append(unique)
    return members


order_attempts_schema = extend_schema(
    operation_id="list_async_order_attempts",
    tags=[TAG],
    summary="The order's attempts, oldest first",
    description="Each attempt's number, start, end, worker, outcome and error; the one "
    "running now comes last, without an end. Visible to whoever may see the order.",
    parameters=[ORDER_ID],
    responses={200: AttemptSerializer(many=True), 404: NOT_FOUND, **AUTH_ERRORS},
)

rerun_order_schema = extend_schema(
    operation_id="rerun_async_order",
    tags=[TAG],
    summary="Place a failed or canceled order again",
    description="A new order with the same envelope, linked both ways (rerun_of, reruns); "
    "its owner's, or any with the async_orders.rerun_order permission. No body needed.",
    request=None,
    parameters=[
        ORDER_ID,
        _idempotency_key("Retrying with the same key returns the same re-run."),
        _header("Location", "The new order's URL.", [302, 202]),
    ],
    responses={
        302: OpenApiResponse(OrderSerializer, description="Placed; Location is the new order."),
        202: OpenApiResponse(OrderSerializer, description="Placed, with Prefer: respond-async."),
        404: error_response("order_not_found: no such order, or not yours to re-run"),
        409: error_response("order_not_rerunnable (still active, or completed), or order_conflict"),
        415: error_response("unsupported_media_type: a body that is not application/json"),
        422: error_response("idempotency_key_reused"),
        **AUTH_ERRORS,
        429: error_response("too_many_active_orders (MAX_ACTIVE_ORDERS) or throttled"),
    },
)
