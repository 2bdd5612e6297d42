"""Public paths keep working when modules move: what the docs, the README and the demo
show users, and the task names in messages already queued and in beat schedules."""

from __future__ import annotations

import importlib
import re

import pytest
from django.utils.module_loading import import_string

from tests import celery_app
from tests.helpers import ROOT

#: Every name users are shown how to import or to name in settings. Moving one of
#: these is a breaking change: keep the old path working (a deprecation) first.
PUBLIC_PATHS = [
    "async_orders.__version__",
    "async_orders.schedulable",
    "async_orders.fail_on_error",
    "async_orders.ProgressItems",
    "async_orders.current_order",
    "async_orders.client.Client",
    "async_orders.client.OrderCanceled",
    "async_orders.client.OrderFailed",
    "async_orders_client.Client",
    "async_orders_client.OrderCanceled",
    "async_orders_client.OrderFailed",
    "async_orders.conf.conf",
    "async_orders.conf.DEFAULTS",
    "async_orders.embedded.EmbeddedRedis",
    "async_orders.locks",
    "async_orders.log_context.OrderContextFilter",
    "async_orders.models.FailureCode",
    "async_orders.models.Order",
    "async_orders.models.OrderStatus",
    "async_orders.progress.CancelRequested",
    "async_orders.registry.ViewOptions",
    "async_orders.signals.order_status_changed",
    "async_orders.signing.verify_signature",
    "async_orders.tasks",
    "async_orders.urls",
    "async_orders.views.metrics_view",
]

#: The names of the tasks in messages a running system holds (queued orders, retried
#: webhooks) and in beat schedules: a worker on new code must still run each one.
TASK_NAMES = [
    "async_orders.execute_order",
    "async_orders.deliver_webhook",
    "async_orders.purge",
    "async_orders.reconcile",
]

SHOWN = [
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "README.md",
    ROOT / "clients" / "python" / "README.md",
    *sorted((ROOT / "demo").rglob("*.py")),
    *sorted((ROOT / "demo").rglob("*.html")),
]
SHOWN_IMPORT = re.compile(r"from (async_orders(?:_client)?(?:\.\w+)*) import \(?([\w, ]+)")
SHOWN_TASK = re.compile(r"\"task\": \"(async_orders\.\w+)\"")


def _resolve(path: str) -> object:
    try:
        return importlib.import_module(path)
    except ImportError:
        return import_string(path)


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_a_public_path_imports(path: str) -> None:
    assert _resolve(path) is not None


def test_every_import_the_docs_and_demo_show_is_a_pinned_public_path() -> None:
    shown = {
        f"{module}.{name.strip()}"
        for document in SHOWN
        for module, names in SHOWN_IMPORT.findall(document.read_text())
        for name in names.split(",")
        if name.strip()
    }

    assert shown
    assert shown - set(PUBLIC_PATHS) == set()


def test_every_task_a_beat_schedule_shows_is_a_pinned_task_name() -> None:
    shown = {name for document in SHOWN for name in SHOWN_TASK.findall(document.read_text())}

    assert shown
    assert shown - set(TASK_NAMES) == set()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_worker_registers_every_task_name_in_queued_messages(name: str) -> None:
    """The test project's Celery app is configured as the quickstart says
    (``autodiscover_tasks()``): what a worker started from it would run."""
    assert name in celery_app.app.tasks
