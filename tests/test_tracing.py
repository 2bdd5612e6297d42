"""The trace of the POST continues in the worker: its execution is a child span."""

from __future__ import annotations

import sys

import pytest
from django.contrib.auth.models import User
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, StatusCode
from rest_framework.test import APIClient

from async_orders.models import Order
from async_orders.worker.execution import run_order
from tests.factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def spans_exported() -> InMemorySpanExporter:
    """The process's tracer provider (set once: OpenTelemetry refuses a second one),
    keeping its spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def spans(spans_exported: InMemorySpanExporter) -> InMemorySpanExporter:
    spans_exported.clear()
    return spans_exported


def post_in_a_span(api: APIClient, view: str) -> tuple[Span, Order]:
    with trace.get_tracer("tests").start_as_current_span("POST") as span:
        response = api.post(f"/async/{view}/order/", {}, format="json")
    assert response.status_code == 302
    return span, Order.objects.get(pk=response.json()["id"])


def execution_span(spans: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [span for span in spans.get_finished_spans() if span.name.startswith("execute ")]
    return span


def test_the_workers_execution_is_a_child_of_the_posts_span(
    api: APIClient, user: User, spans: InMemorySpanExporter
) -> None:
    api.force_authenticate(user)
    post, order = post_in_a_span(api, "echo")
    run_order(order.pk)

    child = execution_span(spans)
    assert child.parent is not None
    assert child.parent.span_id == post.get_span_context().span_id
    assert child.context.trace_id == post.get_span_context().trace_id
    assert child.name == "execute echo"
    assert child.attributes["async_orders.order_id"] == str(order.pk)


def test_the_order_keeps_the_posts_traceparent(
    api: APIClient, user: User, spans: InMemorySpanExporter
) -> None:
    api.force_authenticate(user)
    post, order = post_in_a_span(api, "echo")

    context = post.get_span_context()
    ids = f"{context.trace_id:032x}-{context.span_id:016x}"
    assert order.traceparent == f"00-{ids}-{context.trace_flags:02x}"


def test_an_order_placed_outside_a_trace_runs_in_a_root_span(
    spans: InMemorySpanExporter,
) -> None:
    order = make_order("echo")
    run_order(order.pk)

    assert order.traceparent == ""
    assert execution_span(spans).parent is None


def test_a_view_that_raises_ends_its_span_in_error(spans: InMemorySpanExporter) -> None:
    run_order(make_order("raises").pk)

    assert execution_span(spans).status.status_code == StatusCode.ERROR


@pytest.fixture
def without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("opentelemetry", "opentelemetry.propagate", "opentelemetry.trace"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


@pytest.mark.usefixtures("without_opentelemetry")
def test_without_opentelemetry_orders_run_untraced(spans: InMemorySpanExporter) -> None:
    order = make_order("echo")
    run_order(order.pk)
    order.refresh_from_db()

    assert order.traceparent == ""
    assert order.status == "completed"
    assert spans.get_finished_spans() == ()


@pytest.mark.usefixtures("without_opentelemetry")
def test_without_opentelemetry_a_failed_orders_traceback_is_the_views_alone() -> None:
    order = make_order("raises")

    run_order(order.pk)

    order.refresh_from_db()
    assert order.status == "failed"
    assert "ImportError" not in order.traceback
    assert "During handling of the above exception" not in order.traceback
