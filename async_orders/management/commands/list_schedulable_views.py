"""``manage.py list_schedulable_views``: what the order endpoints expose.

There is no registry of views to read: views are opted in where they are written, so
this command walks the URLconf the same way ``POST /async/<view_name>/order/`` does
and shows developers (and reviewers) every view a client may order; then every
``django.tasks`` task opted in (``POST /async/tasks/<path>/order/``) among the
modules this process imported (the URLconf's, and the apps' ``ready()``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.urls import NoReverseMatch, reverse

from async_orders.registry import (
    Endpoint,
    SchedulableTask,
    ViewOptions,
    iter_endpoints,
    iter_tasks,
)


class Command(BaseCommand):
    help = (
        "List every schedulable view (URL name, URL pattern, default method and options) "
        "and every schedulable task (dotted path, backend and options)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON document, for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [describe(endpoint) for endpoint in iter_endpoints() if endpoint.is_schedulable]
        rows += [describe_task(opted_in) for opted_in in iter_tasks()]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
        elif not rows:
            self.stdout.write("No schedulable views or tasks. Opt one in with @schedulable.")
        else:
            self.stdout.write("\n".join(_as_text(row) for row in rows))


def describe(endpoint: Endpoint) -> dict[str, Any]:
    """One schedulable view as plain data: what a client needs to order it."""
    by_method = endpoint.options_by_method()
    return {
        "kind": "view",
        "name": endpoint.name,
        "route": readable_route(endpoint.route),
        # The method an order gets when its envelope names none, as envelope.py picks it.
        "default_method": next(iter(by_method.values())).default_method,
        "methods": {method: _options(by_method[method]) for method in sorted(by_method)},
    }


def describe_task(opted_in: SchedulableTask) -> dict[str, Any]:
    """One schedulable task as plain data: where to order it and how it runs."""
    task = opted_in.task
    return {
        "kind": "task",
        "name": opted_in.path,
        "route": _order_path(opted_in.path),
        "backend": task.backend,
        "queue": task.queue_name,
        "options": _options(opted_in.options),
    }


def _order_path(path: str) -> str | None:
    """Where the task is ordered; ``None`` when the order endpoints are not mounted."""
    try:
        return reverse("async_orders:task-order-create", kwargs={"path": path})
    except NoReverseMatch:
        return None


#: A named regex group, ``(?P<pk>[^/.]+)``, as DRF's routers write them.
NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def readable_route(route: str) -> str:
    """The route as a path a reader recognises: a router's ``^items/(?P<pk>[^/.]+)/$``
    inside ``shop/`` reads ``/shop/items/<pk>/``; ``path()`` routes are unchanged."""
    return "/" + NAMED_GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "")


def _options(options: ViewOptions) -> dict[str, str]:
    """The options set on the view, shown as text; defaults (and the method, shown
    as ``default_method``) are left out."""
    return {
        option.name: _shown(getattr(options, option.name))
        for option in dataclasses.fields(options)
        if option.name != "method" and getattr(options, option.name) != option.default
    }


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_shown(item) for item in value) + ")"
    if callable(value):  # a class or a function: where to find it
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def _as_text(row: dict[str, Any]) -> str:
    if row["kind"] == "task":
        options = "".join(f"  {name}={value}" for name, value in row["options"].items())
        return f"{row['name']}  {row['route']}  task of backend {row['backend']!r}{options}"
    methods = ", ".join(row["methods"])
    lines = [f"{row['name']}  {row['route']}  default {row['default_method']}  methods {methods}"]
    for method, options in row["methods"].items():
        if options:
            details = "  ".join(f"{name}={value}" for name, value in options.items())
            lines.append(f"    {method}: {details}")
    return "\n".join(lines)
