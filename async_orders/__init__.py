"""async_orders: run any opted-in Django view as a long-running, pollable order.

The public API: :func:`schedulable` opts a view in; inside a view running as an
order, :func:`fail_on_error`, :class:`ProgressItems` and :func:`current_order`.
"""

from async_orders.progress import ProgressItems, current_order, fail_on_error
from async_orders.registry import schedulable

__all__ = ["ProgressItems", "current_order", "fail_on_error", "schedulable"]
__version__ = "0.1.0.dev0"
