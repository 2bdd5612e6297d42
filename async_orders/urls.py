"""Routes; mount with ``path("async/", include("async_orders.urls"))``."""

from __future__ import annotations

from django.urls import path

from async_orders import views

app_name = "async_orders"

# Order ids are matched as any string and checked by the views, so that a malformed
# id gets the same JSON 404 as an unknown one, not the project's HTML 404 page.
urlpatterns = [
    path("<str:view_name>/order/", views.PlaceOrderView.as_view(), name="order-create"),
    path("orders/", views.OrderListView.as_view(), name="order-list"),
    path("orders/<str:pk>/", views.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:pk>/result/", views.OrderResultView.as_view(), name="order-result"),
]
