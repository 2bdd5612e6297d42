"""An unreachable database, in-process: endpoints answer 503 with Retry-After (never
500), a running attempt keeps its lease through the outage and stores its outcome
once the database is back. The connection is pointed at a closed port (PostgreSQL)
or an unopenable file (SQLite): the driver really fails to connect."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.worker.run import running
from tests.factories import make_order

# Committed orders are published: to a queue of this test's own, which no worker
# consumes, so that no worker of the session claims them first.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("spare_queue")]


@contextlib.contextmanager
def database_unreachable() -> Iterator[Callable[[], None]]:
    """Make every new connection of this thread fail, as when the server is down;
    yields what brings it back (from any thread), which leaving the block does too."""
    settings = connection.settings_dict
    saved = {key: settings[key] for key in ("NAME", "PORT")}
    if connection.vendor == "sqlite":
        settings["NAME"] = "/nonexistent-directory/db.sqlite3"
    else:
        settings["PORT"] = 1
    connection.close()
    try:
        yield lambda: settings.update(saved)
    finally:
        connection.close()
        settings.update(saved)


def test_placing_an_order_while_the_database_is_down_is_503_with_retry_after(
    api: APIClient,
) -> None:
    with database_unreachable():
        response = api.post("/async/echo/order/", {}, format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "database_unavailable"


def test_polling_while_the_database_is_down_is_503(api: APIClient) -> None:
    order = make_order()

    with database_unreachable():
        response = api.get(f"/async/orders/{order.pk}/")

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"


def test_the_web_answers_again_once_the_database_is_back(api: APIClient) -> None:
    with database_unreachable():
        api.post("/async/echo/order/", {}, format="json")

    response = api.post("/async/echo/order/", {}, format="json")

    assert response.status_code == 302
    assert Order.objects.count() == 1


def test_a_renewal_while_the_database_is_down_answers_neither_yes_nor_no() -> None:
    order = make_order()
    assert order.start()

    with running(order) as run, database_unreachable():
        assert run.lease.renew() is None

    assert run.lease.lost is False


def test_a_checkpoint_past_the_lease_waits_for_the_database_and_keeps_the_order() -> None:
    order = make_order()
    assert order.start()
    outage = 0.3

    with running(order) as run, database_unreachable() as bring_back:
        run.lease.valid_until = 0  # it ran out while nobody could renew it
        threading.Timer(outage, bring_back).start()
        started = time.monotonic()
        run.lease.check()  # returns once renewed: the attempt goes on
        waited = time.monotonic() - started

    assert waited >= outage
    assert run.lease.lost is False
    assert run.lease.valid_until > time.monotonic()
    order.refresh_from_db()
    assert order.status == OrderStatus.RUNNING


def test_a_checkpoint_of_an_attempt_whose_order_was_recovered_raises_lease_lost() -> None:
    from async_orders.worker.order_lease import LeaseLost

    order = make_order()
    assert order.start()
    Order.objects.filter(pk=order.pk).update(attempts=2)  # recovered and claimed again

    with running(order) as run, pytest.raises(LeaseLost):
        run.lease.valid_until = 0  # its lease ran out
        run.lease.check()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="drops a PostgreSQL backend")
def test_a_kept_connection_the_database_dropped_is_replaced_at_the_claim() -> None:
    """Unpinged (no ``CONN_HEALTH_CHECKS``, or ``run_order`` called alone), a kept
    connection the database dropped (here terminated, as a restart would) is found
    dropped by the claim, which is made again on a new one."""
    from async_orders.worker.execution import run_order

    order = make_order()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    with psycopg.connect(**connection.get_connection_params()) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])

    executed = run_order(order.pk)

    assert executed is not None
    assert executed.status == OrderStatus.COMPLETED
    assert executed.attempts == 1
