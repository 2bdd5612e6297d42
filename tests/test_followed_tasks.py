"""Orders of tasks another ``TASKS`` backend runs: ``POST /async/tasks/<path>/order/``
enqueues with that backend, and the order follows its ``TaskResult``.

django-tasks-db (the ``db`` alias) runs them in its real ``db_worker`` process;
Django's ImmediateBackend and DummyBackend stand for a backend that runs at once and
one that cannot drop a task. Django >= 6.0's ``django.tasks`` or, on 5.2, the backport.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from async_orders.models import FOLLOWED_LIMITATIONS, Order, OrderStatus
from async_orders.task_compat import TaskResultStatus, task_backends, task_finished
from async_orders.worker import reconciler
from tests.helpers import ROOT

pytestmark = pytest.mark.django_db

IN_DB = "tests.testapp.jobs.add_in_db"


@pytest.fixture
def client(api: APIClient, user: User) -> APIClient:
    api.force_authenticate(user)
    return api


def order_task(api: APIClient, path: str = IN_DB, body: Any = None) -> Any:
    body = {"args": [2, 3]} if body is None else body
    return api.post(f"/async/tasks/{path}/order/", body, format="json")


def test_the_task_is_enqueued_with_its_backend_and_never_published(
    client: APIClient, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        placed = order_task(client)

    assert placed.status_code == 302
    order = Order.objects.get()
    stored = DBTaskResult.objects.get()
    assert order.external_id == str(stored.id)
    assert (order.task_backend, stored.backend_name, stored.status) == ("db", "db", "READY")
    assert stored.args_kwargs == {"args": [2, 3], "kwargs": {}}
    assert published == []  # our worker never gets it
    assert placed.json()["limitations"] == list(FOLLOWED_LIMITATIONS)
    assert client.get(placed["Location"]).status_code == 202


def test_orders_our_worker_runs_have_no_limitations(client: APIClient) -> None:
    placed = order_task(client, "tests.testapp.jobs.add")

    assert placed.json()["limitations"] == []


@pytest.mark.django_db(transaction=True)
def test_db_worker_runs_the_tasks_and_the_orders_follow_its_signals(client: APIClient) -> None:
    added = order_task(client)
    failed = order_task(client, "tests.testapp.jobs.fail_in_db", {"args": ["no luck"]})

    run_db_worker()

    done = client.get(added["Location"])
    assert done.status_code == 201, Order.objects.get(pk=added.json()["id"]).traceback
    assert client.get(done["Location"]).json() == 5
    order = Order.objects.get(pk=added.json()["id"])
    assert (order.attempts, order.worker) == (1, "db-worker-under-test")
    assert order.started_at <= order.finished_at
    broken = Order.objects.get(pk=failed.json()["id"])
    assert broken.status == OrderStatus.FAILED
    assert broken.error["code"] == "exception"
    assert broken.error_class == "builtins.ValueError"
    assert "no luck" in broken.traceback
    assert "no luck" not in str(client.get(failed["Location"]).json())


@pytest.mark.django_db(transaction=True)
def test_progress_items_and_fail_on_error_work_in_db_worker(client: APIClient) -> None:
    counted = order_task(client, "tests.testapp.jobs.count_in_db", {"args": [7]})
    refused = order_task(client, "tests.testapp.jobs.count_in_db", {"args": [101]})

    run_db_worker()

    order = Order.objects.get(pk=counted.json()["id"])
    assert order.status == OrderStatus.COMPLETED
    assert (order.progress_current, order.progress_total) == (7, 7)
    assert order.message == "counting elsewhere"
    failure = client.get(refused["Location"]).json()["error"]
    assert failure["message"] == "Too many to count."


def run_db_worker() -> None:
    """django-tasks-db's ``db_worker``, on the test database, until no task is left."""
    env = {
        **os.environ,
        "ASYNC_ORDERS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "ASYNC_ORDERS_TEST_ROLE": "worker",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    command = [sys.executable, "-m", "django", "db_worker", "--backend", "db", "--batch"]
    options = ["--no-startup-delay", "--interval", "0.05", "--worker-id", "db-worker-under-test"]
    finished = subprocess.run(
        [*command, *options], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr.decode()


def test_a_poll_follows_get_result_when_no_signal_came(client: APIClient) -> None:
    placed = order_task(client)
    DBTaskResult.objects.update(
        status=TaskResultStatus.SUCCESSFUL,
        return_value=5,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        worker_ids=["elsewhere"],
    )

    polled = client.get(placed["Location"])

    assert polled.status_code == 201
    assert client.get(polled["Location"]).json() == 5


def test_cancel_while_ready_drops_the_task_from_its_backend(client: APIClient) -> None:
    placed = order_task(client)

    canceled = client.delete(placed["Location"])

    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    assert not DBTaskResult.objects.exists()


def test_a_started_task_of_another_backend_cannot_be_canceled(client: APIClient) -> None:
    placed = order_task(client)
    DBTaskResult.objects.get().claim("elsewhere")

    refused = client.delete(placed["Location"])

    assert (refused.status_code, refused.json()["code"]) == (409, "cancel_unsupported")
    assert "has started" in refused.json()["detail"]
    assert Order.objects.get().status == OrderStatus.RUNNING
    assert DBTaskResult.objects.get().status == TaskResultStatus.RUNNING


def test_a_backend_that_cannot_drop_a_task_refuses_cancel(client: APIClient) -> None:
    placed = order_task(client, "tests.testapp.jobs.add_never")

    refused = client.delete(placed["Location"])

    assert (refused.status_code, refused.json()["code"]) == (409, "cancel_unsupported")
    assert "cannot cancel" in refused.json()["detail"]
    assert Order.objects.get().status == OrderStatus.QUEUED


def test_a_backend_that_fails_to_enqueue_answers_503_and_stores_nothing(
    client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(task_backends["dummy"], "enqueue", broker_down)

    refused = order_task(client, "tests.testapp.jobs.add_never")

    assert (refused.status_code, refused.json()["code"]) == (503, "task_backend_unavailable")
    assert "'dummy'" in refused.json()["detail"]
    assert refused["Retry-After"]
    assert not Order.objects.exists()


def test_a_rerun_goes_back_to_the_backend_that_ran_the_task(
    client: APIClient, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    placed = order_task(client)
    Order.objects.update(status=OrderStatus.FAILED, finished_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(placed["Location"] + "rerun/")

    assert again.status_code == 302
    rerun = Order.objects.get(rerun_of__isnull=False)
    assert rerun.task_backend == "db"
    assert DBTaskResult.objects.count() == 2
    assert DBTaskResult.objects.filter(id=rerun.external_id).exists()
    assert published == []  # never sent to our worker


def test_the_admins_cancel_drops_a_ready_task_from_its_backend_too(
    client: APIClient, admin_client: Any
) -> None:
    placed = order_task(client)

    response = admin_client.post(
        "/admin/async_orders/order/",
        {"action": "cancel_orders", "_selected_action": [placed.json()["id"]]},
        follow=True,
    )

    assert "1 canceled" in response.content.decode()
    assert Order.objects.get().status == OrderStatus.CANCELED
    assert not DBTaskResult.objects.exists()  # it will never run there


def test_a_poll_shows_the_stored_state_while_the_other_backend_cannot_answer(
    client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = order_task(client)

    def store_down(result_id: str) -> None:
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(task_backends["db"], "get_result", store_down)
    polled = client.get(placed["Location"])

    assert (polled.status_code, polled.json()["status"]) == (202, OrderStatus.QUEUED)


def test_the_framework_signals_of_a_followed_task_are_its_backends_alone(
    client: APIClient,
) -> None:
    finished: list[Any] = []

    def record(sender: Any, task_result: Any, **kwargs: Any) -> None:
        finished.append(task_result.id)

    task_finished.connect(record)
    try:
        order_task(client, "tests.testapp.jobs.add_at_once")
    finally:
        task_finished.disconnect(record)

    assert finished == [Order.objects.get().external_id]  # not also under our order's id


def test_a_task_its_backend_ran_at_once_is_completed_at_once(client: APIClient) -> None:
    placed = order_task(client, "tests.testapp.jobs.add_at_once")

    assert placed.json()["status"] == OrderStatus.COMPLETED
    assert client.get(placed["Location"] + "result/").json() == 5


def test_the_reconciler_never_publishes_an_order_another_backend_runs(
    client: APIClient, published: list[Any]
) -> None:
    order_task(client)
    Order.objects.update(published_at=None)  # as an order whose message was lost looks

    assert reconciler.reconcile().republished == []
    assert published == []
