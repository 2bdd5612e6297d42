"""Prometheus metrics: what each change of an order counts, and the scrape endpoint.

Counters are process-wide, so each test reads how much one of them moved."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Q
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from async_orders import metrics
from async_orders.models import Order, OrderStatus, WebhookDelivery
from async_orders.views.waiting import Waiter, room
from async_orders.worker import reconciler
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import ROOT, place

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests"


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of this process's registry (0 when unseen)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def moved(name: str, **labels: str) -> Callable[[], float]:
    """How much the sample moved since this call: ``delta = moved(...); ...; delta()``."""
    before = sample(name, **labels)
    return lambda: sample(name, **labels) - before


def finished(view: str, outcome: str, error_code: str = "") -> Callable[[], float]:
    labels = {"view": view, "outcome": outcome, "error_code": error_code}
    return moved("async_orders_orders_finished_total", **labels)


@pytest.fixture
def metrics_on(settings: Any) -> dict[str, Any]:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "METRICS_ENABLED": True}
    return settings.ASYNC_ORDERS


def run(order: Order) -> Order:
    run_order(order.pk)
    order.refresh_from_db()
    return order


# --- what is counted ------------------------------------------------------------------


def test_a_placed_order_counts_for_its_view(
    metrics_on: Any, api: APIClient, published: list[uuid.UUID], django_capture_on_commit_callbacks
) -> None:
    placed = moved("async_orders_orders_placed_total", view="echo")

    with django_capture_on_commit_callbacks(execute=True):
        assert place(api, "echo").status_code == 302

    assert placed() == 1


def test_nothing_is_counted_while_metrics_are_off(
    api: APIClient, published: list[uuid.UUID], django_capture_on_commit_callbacks
) -> None:
    placed = moved("async_orders_orders_placed_total", view="echo")

    with django_capture_on_commit_callbacks(execute=True):
        place(api, "echo")

    assert placed() == 0


def test_a_completed_order_counts_as_completed(metrics_on: Any) -> None:
    completed = finished("echo", "completed")

    run(make_order("echo"))

    assert completed() == 1


@pytest.mark.parametrize(("view", "code"), [("answers-404", "http_error"), ("raises", "exception")])
def test_a_failed_order_counts_by_its_error_code(metrics_on: Any, view: str, code: str) -> None:
    failed = finished(view, "failed", code)

    run(make_order(view))

    assert failed() == 1


def test_a_canceled_order_counts_as_canceled(metrics_on: Any) -> None:
    canceled = finished("echo", "canceled")

    make_order("echo").cancel()

    assert canceled() == 1


def test_the_queue_wait_histogram_observes_how_long_the_order_waited(metrics_on: Any) -> None:
    order = make_order("echo")
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    count = moved("async_orders_queue_wait_seconds_count", view="echo")
    total = moved("async_orders_queue_wait_seconds_sum", view="echo")
    over_10s = moved("async_orders_queue_wait_seconds_bucket", view="echo", le="10.0")

    run(order)

    assert count() == 1
    assert 30 <= total() < 40
    assert over_10s() == 0


def test_the_run_time_histogram_observes_a_finished_order(metrics_on: Any) -> None:
    count = moved("async_orders_run_seconds_count", view="echo")

    order = run(make_order("echo"))

    assert order.status == OrderStatus.COMPLETED
    assert count() == 1


def test_a_retry_counts_for_its_view(metrics_on: Any, published: list[uuid.UUID]) -> None:
    retries = moved("async_orders_retries_total", view="flaky")

    order = run(make_order("flaky", data={"succeed_on": 2}))

    assert order.status == OrderStatus.SCHEDULED
    assert retries() == 1


def test_a_lost_worker_counts_for_its_view(metrics_on: Any) -> None:
    lost = moved("async_orders_worker_lost_total", view="gated-retrying")
    order = make_order("gated-retrying", kwargs={"steps": 1})
    order.start()

    assert order.recover_lost(Q()) == OrderStatus.QUEUED
    assert lost() == 1


def test_a_progress_write_counts_for_its_view(metrics_on: Any) -> None:
    progress = moved("async_orders_progress_updates_total", view="echo")
    order = make_order("echo")
    order.start()

    assert order.report_progress(1, 2, None)
    assert progress() == 1


def test_the_reconciler_counts_what_it_republished(
    metrics_on: Any, published: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("async_orders.worker.reconciler.broker_lost_messages", lambda: False)
    republished = moved("async_orders_reconciler_republished_total")
    make_order().mark_unpublished()

    reconciler.reconcile()

    assert republished() == 1


@pytest.mark.parametrize(("delivered", "outcome"), [(True, "delivered"), (False, "failed")])
def test_a_webhook_delivery_counts_by_outcome(
    metrics_on: Any, delivered: bool, outcome: str
) -> None:
    deliveries = moved("async_orders_webhook_deliveries_total", outcome=outcome)

    WebhookDelivery.objects.create(order=make_order(), attempt=1, delivered=delivered)

    assert deliveries() == 1


def test_active_waiters_are_a_gauge_that_goes_back_down(metrics_on: Any) -> None:
    waiter = Waiter("user:metrics", blocking=True)
    waiting = moved("async_orders_waiters", kind="blocking")

    with room.admit(waiter) as admitted:
        assert admitted
        assert waiting() == 1
    assert waiting() == 0


# --- the scrape endpoint --------------------------------------------------------------


def scrape(**headers: str) -> Any:
    return Client().get("/async/metrics/", headers=headers)


def families(response: Any) -> dict[str, Any]:
    text = response.content.decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_the_endpoint_is_404_while_metrics_are_off() -> None:
    assert scrape().status_code == 404


def test_the_endpoint_answers_without_a_token_when_none_is_set(metrics_on: Any) -> None:
    response = scrape()

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "async_orders_orders_placed" in families(response)


def test_the_endpoint_is_401_without_the_token_it_requires(metrics_on: Any) -> None:
    metrics_on["METRICS_TOKEN"] = TOKEN

    response = scrape()

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_the_endpoint_is_401_with_a_wrong_token(metrics_on: Any) -> None:
    metrics_on["METRICS_TOKEN"] = TOKEN

    assert scrape(Authorization="Bearer not-the-token").status_code == 401


def test_the_endpoint_is_200_with_the_token(metrics_on: Any) -> None:
    metrics_on["METRICS_TOKEN"] = TOKEN

    assert scrape(Authorization=f"Bearer {TOKEN}").status_code == 200


def test_orders_by_status_come_from_one_query_cached_between_scrapes(
    metrics_on: Any, django_assert_num_queries: Any
) -> None:
    metrics.forget_status_counts()
    make_order(), make_order()
    with django_assert_num_queries(1):
        first = families(scrape())
    make_order()
    with django_assert_num_queries(0):
        second = families(scrape())

    by_status = {s.labels["status"]: s.value for s in first["async_orders_orders"].samples}
    assert by_status["queued"] == 2
    assert by_status["running"] == 0
    assert second["async_orders_orders"].samples == first["async_orders_orders"].samples


# --- multiprocess mode ----------------------------------------------------------------

#: A process of its own that counts one placed order in multiprocess mode and exits.
INCREMENT = """
import django
django.setup()
from async_orders import metrics
metrics.ORDERS_PLACED.labels(view="echo").inc()
"""


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_multiprocess_mode_adds_up_what_each_process_counted(
    metrics_on: Any, multiproc_dir: Path
) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", INCREMENT], cwd=ROOT, env=env, check=True)

    placed = families(scrape())["async_orders_orders_placed"]

    [echo] = [s for s in placed.samples if s.name.endswith("_total") and s.labels["view"] == "echo"]
    assert echo.value == 2
    assert len(list(multiproc_dir.glob("counter_*.db"))) == 2


# --- without prometheus_client --------------------------------------------------------

WITHOUT_PROMETHEUS = """
import sys
sys.modules["prometheus_client"] = None  # as if it were not installed
import django
django.setup()
from async_orders import metrics, urls
assert not metrics.AVAILABLE
from django.core.checks import run_checks
print([m.id for m in run_checks() if m.id.startswith("async_orders.")])
"""


# Not in a test transaction: the subprocess's model checks begin one on the same
# database, and on SQLite they would wait out its busy timeout (20 s) for this one's lock.
@pytest.mark.django_db(transaction=True)
def test_the_package_runs_without_prometheus_client_and_a_check_says_so() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ASYNC_ORDERS_TEST_SETTINGS": json.dumps({"METRICS_ENABLED": True}),
    }
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROMETHEUS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout.strip() == "['async_orders.E007']"


# --- the Grafana dashboard ------------------------------------------------------------


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    """The metric families the dashboard's PromQL expressions name."""
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = {name for expr in exprs for name in re.findall(r"async_orders_\w+", expr)}
    return {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in names}


def test_every_metric_the_dashboard_queries_exists(metrics_on: Any) -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exposed = set(families(scrape()))
    queried = queried_metrics(dashboard)

    assert queried
    assert queried <= exposed, queried - exposed
