"""Health facts, the ``orders_health`` command and the ``/async/health/`` view, on the
real database and the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders import health
from async_orders.conf import conf
from async_orders.models import Order, OrderStatus, ProcessLease
from async_orders.tasks import execute_order
from async_orders.worker import role_leases
from tests.factories import make_order

pytestmark = pytest.mark.django_db

HEALTH_URL = "/async/health/"


@pytest.fixture
def alive(broker: str, settings: Any) -> None:
    """A reconciler and a worker that have just renewed their leases, and a broker;
    no other worker (the session's Celery worker may hold a presence in this database:
    its row is hidden by this test's transaction). The leases' windows are a minute,
    not the test settings' fractions of a second: a busy machine may pause this test
    longer than those between the renewal and the check."""
    windows = {"RECONCILE_INTERVAL": 20, "WORKER_LOST_AFTER": 60, "LEASE_MARGIN": 10}
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, **windows}
    ProcessLease.objects.filter(name__startswith=role_leases.WORKER_PREFIX).delete()
    role_leases.hold(role_leases.RECONCILER, "reconciler-host", 15)
    role_leases.hold(f"{role_leases.WORKER_PREFIX}node:1", "node:1", 20)


@pytest.fixture
def broker_down() -> Iterator[None]:
    app = execute_order.app
    url = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    yield
    app.conf.broker_url = url


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)


def renewed_ago(name: str, seconds: float) -> None:
    ProcessLease.objects.filter(name=name).update(
        renewed_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_everything_running_is_healthy(alive: None) -> None:
    report = health.check()

    assert report.facts == {
        "broker": True,
        "database": True,
        "reconciler": True,
        "queue": True,
        "workers": True,
    }
    assert report.healthy


def test_an_unreachable_broker_is_unhealthy(alive: None, broker_down: None) -> None:
    assert health.check().facts["broker"] is False


def test_an_unreachable_database_is_unhealthy_and_so_is_what_it_would_tell(
    alive: None, database_down: None
) -> None:
    facts = health.check().facts

    assert [name for name, ok in facts.items() if not ok] == [
        "database",
        "reconciler",
        "queue",
        "workers",
    ]


def test_a_reconciler_silent_longer_than_its_leadership_is_unhealthy(alive: None) -> None:
    renewed_ago(role_leases.RECONCILER, role_leases.leadership_ttl() + 1)

    assert health.check().facts["reconciler"] is False


def test_a_reconciler_that_never_ran_is_unhealthy(alive: None) -> None:
    ProcessLease.objects.filter(name=role_leases.RECONCILER).delete()

    assert health.check().facts["reconciler"] is False


def test_an_order_due_for_longer_than_the_threshold_is_unhealthy(alive: None, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "HEALTH_MAX_QUEUE_AGE": 60}
    order = make_order("echo")
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(seconds=61))

    assert health.check().facts["queue"] is False


def test_an_order_scheduled_for_later_is_not_waiting(alive: None, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "HEALTH_MAX_QUEUE_AGE": 60}
    order = make_order("echo", countdown=3600)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(seconds=120))

    assert order.status == OrderStatus.SCHEDULED
    assert health.check().facts["queue"] is True


def test_no_worker_seen_within_its_lease_is_unhealthy(alive: None) -> None:
    renewed_ago(f"{role_leases.WORKER_PREFIX}node:1", conf.WORKER_LOST_AFTER + 1)

    assert health.check().facts["workers"] is False


def test_liveness_asks_neither_the_database_nor_the_broker(
    database_down: None, broker_down: None
) -> None:
    report = health.check("live")

    assert report.facts == {}
    assert report.healthy


def test_readiness_is_the_database(broker_down: None) -> None:
    assert health.check("ready").facts == {"database": True}


def test_the_command_says_healthy_in_one_line(
    alive: None, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("orders_health")

    assert capsys.readouterr().out.splitlines() == [
        "healthy: broker ok, database ok, reconciler ok, queue ok, workers ok"
    ]


def test_the_command_exits_1_naming_what_failed(
    alive: None, broker_down: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        call_command("orders_health")

    assert exit.value.code == 1
    assert capsys.readouterr().out.splitlines() == [
        "unhealthy: broker FAILED, database ok, reconciler ok, queue ok, workers ok"
    ]


def test_the_command_runs_one_probe(database_down: None, capsys) -> None:
    call_command("orders_health", "--probe", "live")

    assert capsys.readouterr().out.splitlines() == ["healthy: no facts asked"]


@pytest.fixture
def health_view(settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "HEALTH_VIEW": True}


def test_the_view_answers_200_with_one_boolean_per_fact(
    alive: None, health_view: None, api: APIClient
) -> None:
    response = api.get(HEALTH_URL)

    assert response.status_code == 200
    assert response.json() == {
        "healthy": True,
        "broker": True,
        "database": True,
        "reconciler": True,
        "queue": True,
        "workers": True,
    }
    assert "no-cache" in response["Cache-Control"]


def test_the_view_answers_503_when_a_fact_fails(
    alive: None, health_view: None, broker_down: None, api: APIClient
) -> None:
    response = api.get(HEALTH_URL)

    assert response.status_code == 503
    assert response.json()["broker"] is False


def test_the_view_runs_the_probe_asked_for(
    health_view: None, database_down: None, api: APIClient
) -> None:
    assert api.get(HEALTH_URL, {"probe": "live"}).json() == {"healthy": True}
    assert api.get(HEALTH_URL, {"probe": "ready"}).status_code == 503


def test_the_view_is_off_unless_enabled(alive: None, api: APIClient) -> None:
    assert api.get(HEALTH_URL).status_code == 404
