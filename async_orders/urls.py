"""Routes; mount with ``path("async/", include("async_orders.urls"))``."""

from __future__ import annotations

from django.urls import path, register_converter

from async_orders import views


class OrderIdConverter:
    """Any path segment but ``order``: ``orders/order/`` is an order of the view
    named ``orders``, not the order with id "order". Ids are checked by the views,
    so that a malformed id gets the same JSON 404 as an unknown one."""

    regex = r"(?!order/)[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(OrderIdConverter, "async_order")

app_name = "async_orders"

urlpatterns = [
    path("<str:view_name>/order/", views.PlaceOrderView.as_view(), name="order-create"),
    path("tasks/<str:path>/order/", views.PlaceTaskOrderView.as_view(), name="task-order-create"),
    path("orders/", views.OrderListView.as_view(), name="order-list"),
    path("orders/<async_order:pk>/", views.order_detail_view(), name="order-detail"),
    path("orders/<async_order:pk>/result/", views.OrderResultView.as_view(), name="order-result"),
    path("orders/<async_order:pk>/events/", views.order_events_view(), name="order-events"),
    path("batches/", views.PlaceBatchView.as_view(), name="batch-create"),
    path("batches/<async_order:pk>/", views.batch_detail_view(), name="batch-detail"),
    path("batches/<async_order:pk>/events/", views.batch_events_view(), name="batch-events"),
    path(
        "orders/<async_order:pk>/attempts/",
        views.OrderAttemptsView.as_view(),
        name="order-attempts",
    ),
    path("orders/<async_order:pk>/rerun/", views.RerunOrderView.as_view(), name="order-rerun"),
    path("health/", views.health_view, name="health"),
    path("metrics/", views.metrics_view, name="metrics"),
]
