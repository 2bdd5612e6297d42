"""Trace context across the queue, with OpenTelemetry when it is installed.

The order keeps the W3C ``traceparent`` of the code that placed it (the POST's
span, when the web process is instrumented), so the worker's execution of the view
is a child span of that trace, however late and on whichever machine it runs, and
however often the reconciler publishes it again. OpenTelemetry's API only: the
project chooses the SDK and the exporter, or none; without ``opentelemetry-api``
(the ``otel`` extra) every function here is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from async_orders.models import Order

#: The name of the tracer and the prefix of the span attributes.
INSTRUMENTATION = "async_orders"


def current_traceparent() -> str:
    """The ``traceparent`` of the current span, ``""`` without one or without OpenTelemetry."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


@contextmanager
def execution_span(order: Order) -> Iterator[None]:
    """A span around the call of ``order``'s view, child of the trace that placed it
    (a root span when it was placed outside one). An exception leaving the block
    is recorded on the span, which ends in error."""
    opentelemetry = _opentelemetry()
    if opentelemetry is None:
        # Outside the except clause that found no OpenTelemetry: a view's own
        # exception must not carry the ImportError as its context.
        yield
        return
    propagate, trace = opentelemetry
    parent = propagate.extract({"traceparent": order.traceparent}) if order.traceparent else None
    tracer = trace.get_tracer(INSTRUMENTATION)
    attributes: dict[str, str | int] = {
        f"{INSTRUMENTATION}.order_id": str(order.pk),
        f"{INSTRUMENTATION}.view": order.view_name,
        f"{INSTRUMENTATION}.attempt": order.attempts,
    }
    name = f"execute {order.view_name}"
    kind = trace.SpanKind.CONSUMER
    with tracer.start_as_current_span(name, parent, kind, attributes):
        yield


def _opentelemetry() -> tuple[ModuleType, ModuleType] | None:
    """OpenTelemetry's ``propagate`` and ``trace`` modules, or ``None`` without it."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return None
    return propagate, trace
