"""``POST /async/tasks/<dotted.path>/order/``: an opted-in ``django.tasks`` task ordered
over HTTP, with everything a view's order has (ownership, the cap, idempotency,
cancel, events, webhooks, the schema), run in-process by ``run_order`` as the other
worker tests are. Django >= 6.0's ``django.tasks`` or, on 5.2, the backport.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from async_orders import schedulable
from async_orders.models import Order, OrderKind, OrderStatus
from async_orders.ownership import ENQUEUED
from async_orders.task_compat import task, task_enqueued
from async_orders.worker.execution import run_order
from tests.helpers import wait_until
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

ADD = "tests.testapp.jobs.add"


def order_task(
    api: APIClient, path: str = ADD, body: Any = None, headers: dict[str, str] | None = None
) -> Any:
    body = {"args": [2, 3]} if body is None else body
    return api.post(f"/async/tasks/{path}/order/", body, format="json", headers=headers)


def test_an_ordered_task_answers_302_then_202_then_201_with_its_json_result(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)

    placed = order_task(api, body={"kwargs": {"a": 2, "b": 40}})
    assert placed.status_code == 302
    assert placed.json()["kind"] == "task"
    assert placed.json()["view"] == ADD
    poll = api.get(placed["Location"])
    assert poll.status_code == 202
    assert "progress" in poll.json()

    run_order(placed.json()["id"])

    done = api.get(placed["Location"])
    assert done.status_code == 201
    assert done.json()["resource_url"].endswith(f"/async/orders/{placed.json()['id']}/result/")
    result = api.get(done["Location"])
    assert (result.status_code, result["Content-Type"], result.json()) == (
        200,
        "application/json",
        42,
    )
    order = Order.objects.get()
    assert (order.kind, order.owner, order.requester) == (OrderKind.TASK, user, f"user:{user.pk}")


def test_positional_and_named_arguments_both_reach_the_task_with_its_context(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)

    placed = order_task(api, "tests.testapp.jobs.greet", {"args": ["Ada"], "kwargs": {}})
    run_order(placed.json()["id"])

    assert api.get(placed["Location"] + "result/").json() == {
        "greeting": "Hello, Ada!",
        "attempt": 1,
    }


def test_a_task_not_opted_in_is_404_exactly_like_an_unknown_one(api: APIClient) -> None:
    hidden = order_task(api, "tests.testapp.jobs.subtract")
    unknown = order_task(api, "tests.testapp.jobs.nothing_here")
    not_a_task = order_task(api, "os.system")

    assert hidden.status_code == unknown.status_code == not_a_task.status_code == 404
    assert hidden.json()["code"] == unknown.json()["code"] == "unknown_view"
    assert hidden.json()["detail"].replace("subtract", "X") == unknown.json()["detail"].replace(
        "nothing_here", "X"
    )
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"args": [1]}, "args"),
        ({"kwargs": {"a": 1, "c": 2}}, "kwargs"),
        ({"args": [1, 2], "method": "GET"}, "method"),
        ({"args": [1, 2], "data": {}}, "data"),
        ({"args": "1, 2"}, "args"),
        ([1, 2], "body"),
    ],
)
def test_arguments_that_do_not_fit_the_task_are_400_naming_the_field(
    api: APIClient, body: Any, field: str
) -> None:
    response = order_task(api, body=body)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_envelope"
    assert field in response.json()["fields"]
    assert not Order.objects.exists()


def test_countdown_schedules_the_task_order(api: APIClient, published: list[Any]) -> None:
    response = order_task(api, body={"args": [1, 2], "countdown": 60})

    assert response.json()["status"] == OrderStatus.SCHEDULED
    assert response.json()["run_at"] is not None


def test_the_task_order_is_the_requesters_only(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)
    placed = order_task(api)
    api.force_authenticate(User.objects.create_user("bob"))

    assert api.get(placed["Location"]).status_code == 404
    assert api.delete(placed["Location"]).status_code == 404


def test_the_permission_classes_apply(api: APIClient, settings: Any) -> None:
    settings.ASYNC_ORDERS = {
        **settings.ASYNC_ORDERS,
        "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }

    assert order_task(api).status_code in (401, 403)
    assert not Order.objects.exists()


def test_the_cap_counts_task_orders(
    api: APIClient, user: User, settings: Any, published: list[Any]
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "MAX_ACTIVE_ORDERS": 1}
    api.force_authenticate(user)

    assert order_task(api).status_code == 302
    assert order_task(api).status_code == 429


def test_an_idempotency_key_returns_the_same_task_order(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)

    first = order_task(api, headers={"Idempotency-Key": "k-1"})
    again = order_task(api, headers={"Idempotency-Key": "k-1"})
    other = order_task(api, body={"args": [9, 9]}, headers={"Idempotency-Key": "k-1"})

    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 422
    assert Order.objects.count() == 1


def test_the_tasks_locks_conflict_with_409(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)
    path = "tests.testapp.jobs.greet"

    assert order_task(api, path, {"kwargs": {"name": "Ada"}}).status_code == 302
    assert order_task(api, path, {"kwargs": {"name": "Ada"}}).status_code == 409
    assert order_task(api, path, {"kwargs": {"name": "Bob"}}).status_code == 302


def test_a_task_order_is_canceled_with_delete(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)
    placed = order_task(api)

    assert api.delete(placed["Location"]).status_code == 200
    assert run_order(placed.json()["id"]).status == OrderStatus.CANCELED


def test_the_events_of_a_task_order_end_with_completed(
    api: APIClient, user: User, published: list[Any]
) -> None:
    api.force_authenticate(user)
    placed = order_task(api)
    run_order(placed.json()["id"])

    stream = api.get(placed["Location"] + "events/", HTTP_ACCEPT="text/event-stream")

    text = b"".join(stream.streaming_content).decode()
    assert "event: completed" in text


def test_a_callback_url_is_kept_and_posted_to_when_the_task_finishes(
    api: APIClient,
    user: User,
    published: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    delivered: list[str] = []
    monkeypatch.setattr(
        "async_orders.webhooks.deliver_webhook.apply_async",
        lambda args, **_: delivered.append(args[0]),
    )
    api.force_authenticate(user)
    placed = order_task(api, body={"args": [1, 1], "callback_url": "http://127.0.0.1:9/hook"})

    with django_capture_on_commit_callbacks(execute=True):
        run_order(placed.json()["id"])

    assert placed.json()["callback"]["url"] == "http://127.0.0.1:9/hook"
    assert delivered == [placed.json()["id"]]


def test_task_enqueued_is_sent_for_an_order_placed_over_http(
    api: APIClient, published: list[Any]
) -> None:
    sent: list[Any] = []

    def record(sender: type, task_result: Any, **_: Any) -> None:
        sent.append(task_result)

    task_enqueued.connect(record)
    try:
        placed = order_task(api)
    finally:
        task_enqueued.disconnect(record)

    assert [result.id for result in sent] == [placed.json()["id"]]


def test_a_task_enqueued_in_code_is_seen_only_by_view_order_holders(
    api: APIClient, user: User, viewer: User, published: list[Any]
) -> None:
    result = jobs.add.enqueue(1, 2)
    url = f"/async/orders/{result.id}/"

    assert Order.objects.get().requester == ENQUEUED
    assert api.get(url).status_code == 404  # anonymous, holding the URL
    api.force_authenticate(user)
    assert api.get(url).status_code == 404
    assert api.get("/async/orders/").json()["results"] == []
    api.force_authenticate(viewer)
    assert api.get(url).status_code == 202
    assert [o["id"] for o in api.get("/async/orders/?all=1").json()["results"]] == [str(result.id)]


def test_tasks_enqueued_in_code_are_not_capped(settings: Any, published: list[Any]) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "MAX_ACTIVE_ORDERS": 1}

    jobs.add.enqueue(1, 2)
    jobs.add.enqueue(3, 4)

    assert Order.objects.count() == 2


def test_schedulable_refuses_options_a_task_cannot_use() -> None:
    with pytest.raises(TypeError, match="method do not apply to a task"):
        schedulable(method="GET")(task(jobs.subtract.func))


def test_retries_given_to_schedulable_are_the_tasks_own(published: list[Any]) -> None:
    opted_in = schedulable(retries=2)(task(jobs.subtract.func))

    try:
        assert opted_in.enqueue(5, 3).id
        assert Order.objects.get().max_attempts == 3
    finally:
        schedulable(task(jobs.subtract.func))  # as jobs.py left it: its retries again
        from async_orders import registry

        registry._tasks.pop("tests.testapp.jobs.subtract")


def test_list_schedulable_views_lists_the_opted_in_tasks() -> None:
    out = StringIO()
    call_command("list_schedulable_views", "--json", stdout=out)

    rows = {row["name"]: row for row in json.loads(out.getvalue())}
    assert rows[ADD]["kind"] == "task"
    assert rows[ADD]["route"] == f"/async/tasks/{ADD}/order/"
    assert rows["tests.testapp.jobs.add_in_db"]["backend"] == "db"
    assert "tests.testapp.jobs.subtract" not in rows
    assert rows["echo"]["kind"] == "view"


def test_the_schema_names_the_tasks_and_types_their_parameters(api: APIClient) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)

    operation = schema["paths"]["/async/tasks/{path}/order/"]["post"]
    path = next(p for p in operation["parameters"] if p["name"] == "path")
    assert ADD in path["schema"]["enum"]
    assert "tests.testapp.jobs.subtract" not in path["schema"]["enum"]
    assert operation["x-task-parameters"][ADD] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    greet = operation["x-task-parameters"]["tests.testapp.jobs.greet"]
    assert greet["properties"]["punctuation"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert greet["required"] == ["name"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_task_ordered_over_http_runs_on_the_celery_worker(api: APIClient, user: User) -> None:
    api.force_authenticate(user)
    placed = order_task(api, "tests.testapp.jobs.greet", {"kwargs": {"name": "Live"}})

    done = wait_until(
        lambda: (poll := api.get(placed["Location"])).status_code == 201 and poll,
        timeout=60,
        what="the task order to complete on the worker",
    )

    assert api.get(done["Location"]).json() == {"greeting": "Hello, Live!", "attempt": 1}
    assert Order.objects.get().worker.startswith("worker@")


def test_a_task_order_keeps_its_labels_and_refuses_time_limits(api: APIClient) -> None:
    url = "/async/tasks/tests.testapp.jobs.add/order/"

    placed = api.post(url, {"args": [1, 2], "labels": {"run": "r1"}}, format="json")
    refused = api.post(url, {"args": [1, 2], "timeout": 5}, format="json")
    bad_label = api.post(url, {"args": [1, 2], "labels": {"run": 7}}, format="json")

    assert placed.status_code == 302
    assert placed.json()["labels"] == {"run": "r1"}
    assert refused.status_code == 400
    assert "timeout" in refused.json()["fields"]
    assert bad_label.status_code == 400
    assert "labels.run" in bad_label.json()["fields"]
