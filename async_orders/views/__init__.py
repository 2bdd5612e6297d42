"""The HTTP layer: every endpoint of the app, each a thin view that parses, delegates
and shapes the answer. ``async_orders.urls`` routes to these names only.

- :mod:`.base`: what the order endpoints share (authentication, errors, finding an order);
- :mod:`.orders`: place, poll and cancel, replay the result, list;
- :mod:`.lifecycle`: an order's attempts, and re-running it;
- :mod:`.longpoll`: the poll that waits for a change (``?wait=``), under WSGI or ASGI;
- :mod:`.events`: the order as server-sent events;
- :mod:`.batches`: place, poll (and wait for), cancel a batch of orders, its events;
- :mod:`.health` and :mod:`.metrics`: for operators' probes and scrapers.
"""

from __future__ import annotations

from async_orders.views.batches import PlaceBatchView, batch_detail_view, batch_events_view
from async_orders.views.events import order_events_view
from async_orders.views.health import health_view
from async_orders.views.lifecycle import OrderAttemptsView, RerunOrderView
from async_orders.views.longpoll import order_detail_view
from async_orders.views.metrics import view as metrics_view
from async_orders.views.orders import (
    OrderListView,
    OrderResultView,
    PlaceOrderView,
    PlaceTaskOrderView,
)

__all__ = [
    "OrderAttemptsView",
    "OrderListView",
    "OrderResultView",
    "PlaceBatchView",
    "PlaceOrderView",
    "PlaceTaskOrderView",
    "RerunOrderView",
    "batch_detail_view",
    "batch_events_view",
    "health_view",
    "metrics_view",
    "order_detail_view",
    "order_events_view",
]
