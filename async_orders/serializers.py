"""The order's JSON representation, the same for every endpoint that shows an order."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from async_orders.models import Order, Status


class ProgressSerializer(serializers.Serializer):
    current = serializers.IntegerField(source="progress_current")
    total = serializers.IntegerField(source="progress_total", allow_null=True)
    percent = serializers.SerializerMethodField()

    def get_percent(self, order: Order) -> float | None:
        if not order.progress_total:
            return None
        return round(min(order.progress_current / order.progress_total, 1.0) * 100, 1)


class OrderSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    view = serializers.CharField(source="view_name")
    progress = ProgressSerializer(source="*")
    resource_url = serializers.SerializerMethodField()
    callback = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "url",
            "view",
            "status",
            "progress",
            "message",
            "resource_url",
            "error",
            "callback",
            "attempts",
            "cancel_requested",
            "created_at",
            "run_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, order: Order) -> str:
        return self._absolute(reverse("async_orders:order-detail", kwargs={"pk": order.pk}))

    def get_resource_url(self, order: Order) -> str | None:
        return self._absolute(order.resource_url) if order.resource_url else None

    def get_callback(self, order: Order) -> dict[str, Any] | None:
        """The webhook and its delivery attempts; queried only for orders that have one."""
        if not order.callback_url:
            return None
        deliveries = order.webhook_deliveries.values(
            "attempt", "attempted_at", "response_status", "delivered", "error"
        )
        return {"url": order.callback_url, "deliveries": list(deliveries)}

    def _absolute(self, url: str) -> str:
        request: Any = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class ListQuerySerializer(serializers.Serializer):
    """The query string of ``GET /async/orders/``; anything else there is refused."""

    status = serializers.ChoiceField(choices=Status.choices, required=False)
    view = serializers.CharField(required=False, max_length=200)
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)
