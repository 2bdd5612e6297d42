"""Log records that carry the order they were emitted for; one line per failure."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from async_orders import tasks
from async_orders.log_context import OrderContextFilter
from async_orders.worker.execution import run_order
from async_orders.worker.reconciler import reconcile
from tests.factories import make_order
from tests.helpers import ROOT

pytestmark = pytest.mark.django_db


class Collected(logging.Handler):
    """A handler that keeps its records, with the order filter installed as documented."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.addFilter(OrderContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every record at INFO or above, from any logger."""
    root, handler = logging.getLogger(), Collected()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def broker_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(tasks.execute_order, "apply_async", refuse)


def fields(record: logging.LogRecord) -> tuple[object, object, object]:
    return record.order_id, record.view, record.attempt  # type: ignore[attr-defined]


def said(records: list[logging.LogRecord], text: str) -> logging.LogRecord:
    return next(record for record in records if text in record.getMessage())


def test_the_views_own_log_lines_carry_the_order(records: list[logging.LogRecord]) -> None:
    order = make_order("logs-a-line")
    run_order(order.pk)

    assert fields(said(records, "the view says hello")) == (str(order.pk), "logs-a-line", 1)


def test_log_lines_outside_an_order_carry_empty_fields(records: list[logging.LogRecord]) -> None:
    logging.getLogger("testapp").info("no order here")

    assert fields(said(records, "no order here")) == (None, None, None)


def test_placing_log_lines_carry_the_order(
    records: list[logging.LogRecord], broker_refuses: None, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        order = make_order("echo")

    assert fields(said(records, "could not be published")) == (str(order.pk), "echo", 0)


def test_reconciler_log_lines_carry_each_recovered_order(
    records: list[logging.LogRecord], broker_refuses: None
) -> None:
    order = make_order("echo")
    order.mark_unpublished()
    records.clear()

    reconcile("test-holder")

    assert fields(said(records, "could not be published")) == (str(order.pk), "echo", 0)


def test_a_failed_order_logs_one_line_with_one_traceback(
    records: list[logging.LogRecord],
) -> None:
    order = make_order("fails-on-error")
    run_order(order.pk)

    with_traceback = [record for record in records if record.exc_info]
    assert len(with_traceback) == 1
    assert str(order.pk) in with_traceback[0].getMessage()
    assert "Could not reach the frobnicator." in with_traceback[0].getMessage()


def test_a_failed_order_keeps_its_traceback_for_operators() -> None:
    order = make_order("fails-on-error")
    run_order(order.pk)
    order.refresh_from_db()

    assert "ConnectionError: 10.0.0.7 refused the connection" in order.traceback
    assert "Traceback (most recent call last)" in order.traceback


def test_the_api_never_shows_the_traceback(api: APIClient, user: User) -> None:
    order = make_order("fails-on-error", owner=user)
    run_order(order.pk)
    api.force_authenticate(user)

    body = api.get(f"/async/orders/{order.pk}/").content.decode()

    assert "traceback" not in body.lower()
    assert "10.0.0.7" not in body


def test_the_admin_shows_the_traceback(admin_client: Client) -> None:
    order = make_order("fails-on-error")
    run_order(order.pk)

    page = admin_client.get(f"/admin/async_orders/order/{order.pk}/change/").content.decode()

    assert "ConnectionError: 10.0.0.7 refused the connection" in page


def documented_logging_config() -> dict:
    """The ``LOGGING`` example of docs/logs-health-tracing.md, as a project would paste it."""
    page = (ROOT / "docs" / "logs-health-tracing.md").read_text()
    code = re.search(r"```python\n(LOGGING = .*?)```", page, re.DOTALL)
    assert code is not None
    namespace: dict = {}
    exec(code.group(1), namespace)
    return namespace["LOGGING"]


@pytest.fixture
def documented_logging() -> Iterator[io.StringIO]:
    """The documented configuration, its handler writing to a buffer instead of stdout."""
    logging.config.dictConfig(documented_logging_config())
    handler = next(h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler)
    out = io.StringIO()
    handler.setStream(out)  # type: ignore[attr-defined]
    yield out
    logging.config.dictConfig(settings.LOGGING)


def test_the_documented_json_config_writes_the_order_fields(
    documented_logging: io.StringIO,
) -> None:
    order = make_order("logs-a-line")
    run_order(order.pk)

    lines = [json.loads(line) for line in documented_logging.getvalue().splitlines()]
    hello = next(line for line in lines if line["message"] == "the view says hello")
    assert (hello["order_id"], hello["view"], hello["attempt"]) == (str(order.pk), "logs-a-line", 1)
