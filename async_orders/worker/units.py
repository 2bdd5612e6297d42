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
from typing import Any, Protocol

from django.urls import NoReverseMatch, Resolver404

from async_orders.models import Order, OrderKind
from async_orders.progress import fail_on_error
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


@dataclass(frozen=True)
class TaskCall:
    """Call the order's ``django.tasks`` task function (its dotted path is the order's
    ``view_name``), with its ``TaskContext`` when it takes one. The Tasks framework is
    imported here only, so that a project without it runs its view orders."""

    order: Order
    raised_message: str = "The task raised an error."

    def call(self) -> ViewResponse:
        from async_orders import task_results
        from async_orders.task_compat import TaskContext

        try:
            task = task_results.task_of(self.order)
        except task_results.TaskUnavailable as gone:
            raise Unavailable("The ordered task is no longer available.") from gone
        args: list[Any] = list(self.order.args)
        if task.takes_context:
            args.insert(0, TaskContext(task_result=task_results.task_result(self.order)))
        value = task.call(*args, **self.order.kwargs)
        with fail_on_error("The task's return value is not JSON."):
            body = task_results.json_text(value, "The return value").encode()
        return ViewResponse(
            status_code=200, content_type="application/json", body=body, location=None
        )

    def options(self) -> ViewOptions:
        from async_orders import task_results

        return task_results.task_options(self.order.view_name, self.order.task_backend)


def unit_of(order: Order) -> UnitOfWork:
    """The unit of work of ``order``: the only place the worker looks at its kind."""
    return TaskCall(order) if order.kind == OrderKind.TASK else ViewCall(order)
