"""Routes; mount with ``path("async/", include("async_orders.urls"))``."""

from __future__ import annotations

from django.urls import path

from async_orders import events, longpoll, views

app_name = "async_orders"

urlpatterns = [
    path("orders/", views.OrderListView.as_view(), name="order-list"),
    path("orders/<uuid:pk>/", longpoll.order_detail, name="order-detail"),
    path("orders/<uuid:pk>/result/", views.OrderResultView.as_view(), name="order-result"),
    path("orders/<uuid:pk>/events/", events.OrderEventsView.as_view(), name="order-events"),
    path("<str:view_name>/order/", views.PlaceOrderView.as_view(), name="order-create"),
]
