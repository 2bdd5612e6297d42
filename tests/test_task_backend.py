"""``OrderBackend``: ``django.tasks`` tasks run as orders, by our worker.

In-process with ``run_order`` as the other worker tests, and once through a real
Celery worker. They run with Django >= 6.0's ``django.tasks`` or, on Django 5.2, the
``django-tasks`` backport (:mod:`async_orders.task_compat` picks).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders import task_compat
from async_orders.broker import publishing
from async_orders.models import Order, OrderKind, OrderStatus
from async_orders.task_backend import NotJSON, OrderBackend
from async_orders.task_compat import (
    InvalidTask,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    default_task_backend,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from async_orders.worker.execution import run_order
from async_orders.worker.run import CancelRequested
from tests.factories import make_order
from tests.helpers import wait_until
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def run(result: TaskResult[Any]) -> TaskResult[Any]:
    """Run the result's order in this process, and read the result again."""
    run_order(result.id)
    return default_task_backend.get_result(result.id)


def order_of(result: TaskResult[Any]) -> Order:
    return Order.objects.get(pk=result.id)


def test_without_the_tasks_framework_the_error_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "django.tasks", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "django_tasks", None)

    with pytest.raises(ImproperlyConfigured, match="pip install django-tasks"):
        task_compat._names()


def test_the_backend_supports_what_django_tasks_asks_of_a_full_backend() -> None:
    assert isinstance(task_backends["default"], OrderBackend)
    assert default_task_backend.supports_defer
    assert default_task_backend.supports_get_result
    assert default_task_backend.supports_priority
    assert default_task_backend.supports_async_task


def test_enqueue_places_a_task_order_whose_id_is_the_result_id(
    django_capture_on_commit_callbacks: Any, published: list[uuid.UUID]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = jobs.add.enqueue(2, b=3)

    order = order_of(result)
    assert published == [order.pk]
    assert result.id == str(order.pk)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at == order.created_at
    assert result.started_at is result.finished_at is None
    assert (result.args, result.kwargs) == ([2], {"b": 3})
    assert result.backend == "default"
    assert (order.kind, order.view_name, order.method) == (
        OrderKind.TASK,
        "tests.testapp.jobs.add",
        "",
    )
    assert order.status == OrderStatus.QUEUED


def test_a_run_task_is_successful_with_its_return_value_and_its_times() -> None:
    result = run(jobs.add.enqueue(2, b=3))

    order = order_of(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.started_at == result.last_attempted_at == order.started_at
    assert result.finished_at == order.finished_at
    assert result.started_at <= result.finished_at
    assert result.worker_ids == [order.worker]
    assert order.worker
    assert result.errors == []
    assert order.resource_url == f"/async/orders/{order.pk}/result/"


def test_the_order_endpoints_serve_a_task_order_at_once(api: APIClient, viewer: Any) -> None:
    api.force_authenticate(viewer)  # a task enqueued in code has no owner
    result = jobs.echo.enqueue("a", n=[1, 2])
    assert api.get(f"/async/orders/{result.id}/").status_code == 202

    run(result)

    done = api.get(f"/async/orders/{result.id}/")
    assert done.status_code == 201
    assert done.json()["view"] == "tests.testapp.jobs.echo"
    answer = api.get(f"/async/orders/{result.id}/result/")
    assert answer.status_code == 200
    assert answer.json() == {"args": ["a"], "kwargs": {"n": [1, 2]}}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((object(),), {}),
        ((), {"when": timezone.now()}),
        ((float("nan"),), {}),
        ((), {"text": "nul\x00"}),
    ],
    ids=["object", "datetime", "nan", "nul"],
)
def test_arguments_that_are_not_json_are_refused_and_nothing_is_stored(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(NotJSON, match="arguments"):
        jobs.echo.enqueue(*args, **kwargs)

    assert not Order.objects.exists()


def test_arguments_are_normalized_as_django_tasks_does() -> None:
    result = jobs.echo.enqueue((1, 2), b"bytes")

    assert order_of(result).args == [[1, 2], "bytes"]


def test_a_return_value_that_is_not_json_fails_the_task() -> None:
    result = run(jobs.returns_a_set.enqueue())

    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == "async_orders.task_results.NotJSON"
    assert order_of(result).error["message"] == "The task's return value is not JSON."


def test_fail_on_error_names_the_failure_and_the_error_keeps_the_traceback() -> None:
    result = run(jobs.broken.enqueue("Could not broke."))

    order = order_of(result)
    assert result.status == TaskResultStatus.FAILED
    assert order.error["code"] == "exception"
    assert order.error["message"] == "Could not broke."
    (error,) = result.errors
    assert error.exception_class is ValueError
    assert "the task's own words" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


def test_a_task_that_takes_context_gets_it_and_sees_its_order() -> None:
    result = run(jobs.introspect.enqueue("x"))

    assert result.return_value == {
        "label": "x",
        "id": result.id,
        "attempt": 1,
        "status": TaskResultStatus.RUNNING,
        "order": result.id,
        "fencing": 1,
    }


def test_an_async_task_runs() -> None:
    assert run(jobs.async_double.enqueue(21)).return_value == 42


def test_progress_items_report_on_the_task_order() -> None:
    result = run(jobs.count.enqueue(5))

    order = order_of(result)
    assert result.return_value == 5
    assert (order.progress_current, order.progress_total) == (5, 5)
    assert order.message == "counting"


def test_a_canceled_task_fails_with_an_error_that_names_the_cancel() -> None:
    result = jobs.add.enqueue(1, 2)
    assert order_of(result).cancel()

    result = default_task_backend.get_result(result.id)

    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class is CancelRequested


def test_a_running_task_stops_at_its_next_checkpoint_when_canceled() -> None:
    result = run(jobs.cancels_itself.enqueue(3))

    assert order_of(result).status == OrderStatus.CANCELED
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is CancelRequested


def test_a_task_of_a_backend_with_retries_is_tried_again() -> None:
    key = uuid.uuid4().hex
    result = jobs.flaky.enqueue(key)
    run_order(result.id)
    order = order_of(result)
    assert (order.status, order.max_attempts) == (OrderStatus.SCHEDULED, 2)

    time.sleep(0.05)  # RETRY_BACKOFF 0.01 s
    result = jobs.flaky.get_result(result.id)
    assert result.status == TaskResultStatus.READY
    result = run(result)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "second time lucky"
    assert result.backend == "retrying"
    assert len(result.worker_ids) == 2


def test_a_task_result_has_one_error_per_failed_attempt_and_each_attempts_worker() -> None:
    key = uuid.uuid4().hex
    result = jobs.flaky.enqueue(key)
    run_order(result.id, worker="first@host:1")
    Order.objects.filter(pk=result.id).update(run_at=None)  # the retry is due now
    run_order(result.id, worker="second@host:2")

    result = jobs.flaky.get_result(result.id)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.worker_ids == ["first@host:1", "second@host:2"]
    (error,) = result.errors  # the first attempt's, though the task then succeeded
    assert error.exception_class is ConnectionError
    assert "first call fails" in error.traceback
    assert "Traceback" in error.traceback


def test_a_lost_worker_fails_the_task_with_celerys_worker_lost_error() -> None:
    result = jobs.add.enqueue(1, 2)
    order = Order.claim(result.id, "gone:1")
    assert order is not None
    assert order.recover_lost(order._this_attempt()) == OrderStatus.FAILED

    (error,) = default_task_backend.get_result(result.id).errors

    assert error.exception_class_path == "billiard.exceptions.WorkerLostError"


def test_run_after_schedules_the_order(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        publishing.order_task(), "apply_async", lambda args, **sending: sent.append(sending)
    )
    later = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        result = jobs.add.using(run_after=later).enqueue(1, 2)

    order = order_of(result)
    assert (order.status, order.run_at) == (OrderStatus.SCHEDULED, later)
    assert result.status == TaskResultStatus.READY
    assert sent[0]["eta"] == later
    assert run_order(result.id).status == OrderStatus.SCHEDULED  # not due: not started


def test_run_after_in_the_past_runs_now_and_too_far_ahead_is_refused() -> None:
    past = jobs.add.using(run_after=timezone.now() - timedelta(seconds=5)).enqueue(1, 2)
    assert order_of(past).status == OrderStatus.QUEUED

    with pytest.raises(InvalidTask, match="MAX_SCHEDULE_SECONDS"):
        jobs.add.using(run_after=timezone.now() + timedelta(days=30)).enqueue(1, 2)
    assert Order.objects.count() == 1


def test_queue_name_and_priority_route_the_message(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        publishing.order_task(), "apply_async", lambda args, **sending: sent.append(sending)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = jobs.report.enqueue()

    order = order_of(result)
    assert (order.queue, order.priority) == ("reports", 2)  # Redis: 0 runs first
    assert sent[0]["queue"] == "reports"
    assert sent[0]["priority"] == 2


def test_a_task_of_the_default_queue_goes_where_every_order_goes() -> None:
    order = order_of(jobs.add.enqueue(1, 2))

    assert order.queue == ""
    assert order.priority is None
    assert publishing._routing(order)["queue"] is None  # conf.QUEUE: Celery's default


@pytest.mark.parametrize(
    ("priority", "redis", "amqp"),
    [(0, None, None), (100, 0, 9), (-100, 9, 0), (1, 4, 5), (50, 2, 7)],
)
def test_priorities_spread_over_celerys_and_follow_the_brokers_order(
    priority: int, redis: int | None, amqp: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert publishing.celery_priority(priority) == redis  # the tests' broker is Redis
    with monkeypatch.context() as patched:
        patched.setattr(publishing.current_app.conf, "broker_url", "amqp://guest@localhost//")
        publishing._lower_runs_first.cache_clear()
        assert publishing.celery_priority(priority) == amqp
    publishing._lower_runs_first.cache_clear()


def test_a_queue_the_backend_does_not_list_is_refused() -> None:
    with pytest.raises(InvalidTask, match="Queue"):
        jobs.add.using(queue_name="elsewhere").enqueue(1, 2)


@pytest.fixture
def signalled() -> Iterator[list[tuple[str, type, TaskResultStatus]]]:
    seen: list[tuple[str, type, TaskResultStatus]] = []
    receivers = {}
    for name, signal in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):

        def record(sender: type, task_result: TaskResult[Any], name: str = name, **_: Any) -> None:
            seen.append((name, sender, task_result.status))

        receivers[name] = record
        signal.connect(record)
    yield seen
    task_enqueued.disconnect(receivers["enqueued"])
    task_started.disconnect(receivers["started"])
    task_finished.disconnect(receivers["finished"])


def test_the_three_django_tasks_signals_are_sent(signalled: list[Any]) -> None:
    run(jobs.add.enqueue(1, 2))
    canceled = jobs.add.enqueue(1, 2)
    order_of(canceled).cancel()

    assert signalled == [
        ("enqueued", OrderBackend, TaskResultStatus.READY),
        ("started", OrderBackend, TaskResultStatus.RUNNING),
        ("finished", OrderBackend, TaskResultStatus.SUCCESSFUL),
        ("enqueued", OrderBackend, TaskResultStatus.READY),
        ("finished", OrderBackend, TaskResultStatus.FAILED),
    ]


def test_get_result_knows_only_task_orders() -> None:
    view_order = make_order("echo")

    for unknown in (str(view_order.pk), str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(unknown)


@pytest.mark.django_db(transaction=True)
def test_aenqueue_and_aget_result(published: list[uuid.UUID]) -> None:
    """Its message is recorded, not sent: the session's live worker, when an earlier
    test started it, would take the committed order and could still be running it
    when the result is read here."""
    result = async_to_sync(jobs.add.aenqueue)(4, 5)
    assert published == [uuid.UUID(result.id)]
    run_order(result.id)

    again = async_to_sync(default_task_backend.aget_result)(result.id)

    assert again.return_value == 9
    async_to_sync(result.arefresh)()
    assert result.status == TaskResultStatus.SUCCESSFUL


def test_a_task_path_that_no_longer_names_a_task_fails_the_order_unavailable() -> None:
    result = jobs.add.enqueue(1, 2)
    Order.objects.filter(pk=result.id).update(view_name="tests.testapp.jobs.CALLS")

    order = run_order(result.id)

    assert order is not None
    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "view_unavailable"
    assert order.error["message"] == "The ordered task is no longer available."


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_task_enqueued_in_a_transaction_runs_on_the_celery_worker() -> None:
    result = jobs.introspect.enqueue("live")

    def finished() -> TaskResult[Any] | None:
        result.refresh()
        return result if result.is_finished else None

    wait_until(finished, timeout=60, what="the task to run on the worker")
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["order"] == result.id
    assert result.worker_ids[0].startswith("worker@")
    assert json.loads(bytes(Order.objects.get(pk=result.id).response_body))["label"] == "live"
