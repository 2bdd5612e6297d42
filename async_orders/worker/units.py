"""What an order's attempt calls: its unit of work, a view or a task function.

The worker claims, leases, retries, cancels and records every order the same way
(:mod:`async_orders.worker.execution`); only the call differs, and :func:`unit_of` is
the one place that tells the kinds apart. Each unit answers with a
:class:`~async_orders.view_response.ViewResponse`, so the outcome is judged and
stored by one code path: a task's JSON return value is a 200 ``application/json``
response, replayed by the order's result endpoint like a view's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.urls import NoReverseMatch, Resolver404

from async_orders.models import Order
from async_orders.registry import ViewOptions, options_for
from async_orders.view_response import ViewResponse
from async_orders.worker.dispatch import call_view


class Unavailable(Exception):
    """What the order names can no longer be called; nothing was called."""


class UnitOfWork(Protocol):
    @property
    def raised_message(self) -> str:
        """The order's error message when the call raised outside any ``fail_on_error``."""
        ...

    def call(self) -> ViewResponse:
        """Call it, in this process; :class:`Unavailable` when it is gone."""
        ...

    def options(self) -> ViewOptions:
        """The options its retries follow."""
        ...


@dataclass(frozen=True)
class ViewCall:
    """Call the order's view through the service-level reverse, as its owner."""

    order: Order
    raised_message: str = "The view raised an error."

    def call(self) -> ViewResponse:
        try:
            return call_view(self.order)
        except (NoReverseMatch, Resolver404) as gone:
            raise Unavailable("The ordered view is no longer available.") from gone

    def options(self) -> ViewOptions:
        return options_for(self.order.view_name, self.order.method)


def unit_of(order: Order) -> UnitOfWork:
    """The unit of work of ``order``: the only place the worker looks at its kind
    (views only, until task functions come)."""
    return ViewCall(order)
