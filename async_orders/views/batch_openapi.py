"""OpenAPI description of the batch endpoints, in the style and with the parts of
:mod:`async_orders.views.openapi`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from async_orders.batch_serializers import BatchSerializer
from async_orders.envelope import EnvelopeSerializer
from async_orders.views.openapi import (
    AUTH_ERRORS,
    IF_NONE_MATCH,
    LAST_EVENT_ID,
    PLAIN_OBJECTS,
    TAG,
    OrderSchema,
    error_response,
)


class BatchOrderSerializer(EnvelopeSerializer):
    """One order of a batch: an order request, and the view it orders."""

    view = serializers.CharField(help_text="URL name of a schedulable view, with its namespace.")


class BatchRequestSerializer(serializers.Serializer):
    """The orders to place together: all of them, or none if any is invalid."""

    orders = BatchOrderSerializer(many=True, help_text="1 to MAX_BATCH (default 100) orders.")


class BatchSchema(OrderSchema):
    """The order's envelope, in a batch as alone: its JSON objects stay plain dicts for
    generated clients (see :data:`~async_orders.views.openapi.PLAIN_OBJECTS`)."""

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, BatchOrderSerializer):
            schema["additionalProperties"] = False
            schema["properties"].update(PLAIN_OBJECTS)
        return schema


BATCH_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The batch's id."
)
NOT_FOUND = error_response("batch_not_found: no such batch, a malformed id, or not yours.")

place_batch_schema = extend_schema(
    operation_id="place_async_batch",
    tags=[TAG],
    summary="Place several orders at once, all or none",
    description="Validates every order; any invalid one refuses the batch with a 400 "
    "naming orders.<index>.<field>, and nothing is placed. Else places them all and "
    "answers 302 to the batch.",
    request=BatchRequestSerializer,
    responses={
        302: OpenApiResponse(BatchSerializer, description="Placed; Location is the batch."),
        202: OpenApiResponse(
            BatchSerializer, description="Placed, with Prefer: respond-async; Location too."
        ),
        400: error_response("invalid_batch (see fields), parse_error"),
        409: error_response("order_conflict: an active order holds a lock key of one of them"),
        411: error_response("length_required: a chunked body this server cannot read"),
        413: error_response("request_too_large"),
        415: error_response("unsupported_media_type: not Content-Type: application/json"),
        **AUTH_ERRORS,
        429: error_response("too_many_active_orders: the batch would pass MAX_ACTIVE_ORDERS"),
    },
)

poll_batch_schema = extend_schema(
    operation_id="poll_async_batch",
    tags=[TAG],
    summary="The batch: how many of its orders are in each status, and each order",
    description="202 while any order is unfinished, 200 once all are; with ?wait=, "
    "answers once any of its orders changes. One query, however many orders.",
    responses={
        202: OpenApiResponse(BatchSerializer, description="Some orders are unfinished."),
        200: OpenApiResponse(BatchSerializer, description="Every order has finished."),
        304: OpenApiResponse(description="If-None-Match holds the current ETag."),
        400: error_response("invalid_wait"),
        404: NOT_FOUND,
        **AUTH_ERRORS,
    },
    parameters=[
        BATCH_ID,
        OpenApiParameter(
            "wait",
            float,
            description="Long-poll: answer once any order of it changes, or after this "
            "many seconds (capped by LONG_POLL_MAX_WAIT).",
        ),
        IF_NONE_MATCH,
    ],
)

cancel_batch_schema = extend_schema(
    operation_id="cancel_async_batch",
    tags=[TAG],
    summary="Cancel every unfinished order of the batch",
    parameters=[BATCH_ID],
    responses={
        200: OpenApiResponse(BatchSerializer, description="Every order is now finished."),
        202: OpenApiResponse(BatchSerializer, description="Running orders were asked to stop."),
        404: NOT_FOUND,
        409: error_response("batch_finished: every order had finished already"),
        415: error_response("unsupported_media_type: a body that is not application/json"),
        **AUTH_ERRORS,
    },
)

batch_events_schema = extend_schema(
    operation_id="async_batch_events",
    tags=[TAG],
    summary="The batch's changes as server-sent events",
    description="One event per change of any of its orders (progress), then finished.",
    responses={
        (200, "text/event-stream"): OpenApiResponse(str, description="progress, then finished"),
        204: OpenApiResponse(description="Last-Event-ID is the final state already."),
        404: NOT_FOUND,
        **AUTH_ERRORS,
    },
    parameters=[
        BATCH_ID,
        LAST_EVENT_ID,
    ],
)
