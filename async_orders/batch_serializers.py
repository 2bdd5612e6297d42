"""A batch's JSON representation, the same for every endpoint that shows one.

As for the order (:mod:`async_orders.serializers`), the serializers describe it for the
OpenAPI schema only, and :func:`represent_batch` builds it: their help texts speak to
clients.
"""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework import serializers

from async_orders.batches import Batch
from async_orders.models import OrderStatus
from async_orders.paths import BATCH, order_path, path_pattern


class BatchItemSerializer(serializers.Serializer):
    """One order of the batch: enough to draw its bar, and its URL for the rest."""

    id = serializers.UUIDField()
    url = serializers.URLField(help_text="The order: poll it, or DELETE it.")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    percent = serializers.FloatField(
        allow_null=True, help_text="As the order's progress.percent: null until a total is known."
    )


class BatchSerializer(serializers.Serializer):
    """Orders placed together, followed as one: 202 while any is unfinished, 200 once
    all are."""

    id = serializers.UUIDField()
    url = serializers.URLField(help_text="This batch: poll it, or DELETE it to cancel it.")
    total = serializers.IntegerField(help_text="How many orders it has.")
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="How many of them are in each status."
    )
    percent = serializers.FloatField(
        help_text="How much of the batch is behind it, 0-100: a finished order counts whole."
    )
    finished = serializers.BooleanField(help_text="Every order of it has finished.")
    orders = BatchItemSerializer(many=True, help_text="Its orders, in the order they were sent.")


def represent_batch(batch: Batch, request: Any) -> dict[str, Any]:
    """The batch's JSON, with absolute URLs. The orders' URLs are made from one
    pattern: a hundred ``reverse()`` and ``build_absolute_uri()`` calls were most of a
    poll's time."""
    order_url = request.build_absolute_uri(path_pattern().format(_ID)).replace(_ID, "{}")
    return {
        "id": str(batch.id),
        "url": request.build_absolute_uri(order_path(batch.id, BATCH)),
        "total": len(batch.items),
        "counts": batch.counts(),
        "percent": batch.percent,
        "finished": batch.is_finished,
        "orders": [
            {
                "id": item.id,
                "url": order_url.format(item.id),
                "status": item.status,
                "percent": item.percent,
            }
            for item in batch.items
        ],
    }


#: Stands for an order's id while its URL pattern is made absolute.
_ID = str(uuid.UUID(int=0))
