"""``manage.py list_schedulable_views``: every view a client may order, and only those."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from async_orders import registry, schedulable
from async_orders.management.commands.list_schedulable_views import describe
from async_orders.registry import Endpoint


def run(*args: str) -> str:
    out = StringIO()
    call_command("list_schedulable_views", *args, stdout=out)
    return out.getvalue()


def listed() -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(run("--json"))}


def test_lists_decorated_views_with_route_and_default_method() -> None:
    rows = listed()

    assert rows["echo-int"]["route"] == "/echo/<int:number>/"
    assert rows["echo-int"]["default_method"] == "POST"
    assert rows["cbv"]["default_method"] == "PUT"
    assert sorted(rows["cbv"]["methods"]) == ["GET", "PUT"]


def test_viewset_actions_are_listed_with_only_their_opted_in_methods() -> None:
    rows = listed()

    assert rows["shop:item-list"]["methods"] == {"POST": {}}
    assert rows["shop:item-detail"]["default_method"] == "PATCH"


def test_views_not_opted_in_are_not_listed() -> None:
    assert "not-opted-in" not in listed()


def test_views_listed_in_settings_are_listed_and_follow_the_setting() -> None:
    assert "listed-in-settings" in listed()
    with override_settings(ASYNC_ORDERS={"SCHEDULABLE_VIEWS": []}):
        assert "listed-in-settings" not in listed()


def test_input_serializers_are_shown_as_options() -> None:
    options = listed()["typed-inputs"]["methods"]["POST"]

    assert options == {
        "data_serializer": "tests.testapp.views.PizzaInput",
        "query_serializer": "tests.testapp.views.PageQuery",
    }


def test_text_output_has_one_line_per_view_with_its_pattern() -> None:
    text = run()

    assert "echo-int  /echo/<int:number>/  default POST  methods " in text
    assert "    POST: data_serializer=tests.testapp.views.PizzaInput" in text
    assert "not-opted-in" not in text


def test_an_app_without_schedulable_views_or_tasks_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_tasks", {})
    with override_settings(ROOT_URLCONF="tests.empty_urls"):
        assert run().strip() == "No schedulable views or tasks. Opt one in with @schedulable."


def test_retry_routing_and_lock_options_are_shown_when_set() -> None:
    def view(request: object) -> None: ...

    marked = schedulable(
        view, method="put", retries=2, retry_on=(ConnectionError,), queue="slow", locks=True
    )
    endpoint = Endpoint(name="slow", route="slow/", callback=marked, converters={})

    row = describe(endpoint)

    assert row["default_method"] == "PUT"
    assert row["methods"]["PUT"] == {
        "retries": "2",
        "retry_on": "(builtins.ConnectionError)",
        "queue": "'slow'",
        "locks": "True",
    }


def test_a_function_view_opted_in_with_a_method_offers_only_that_method() -> None:
    def view(request: object) -> None: ...

    endpoint = Endpoint(
        name="v", route="v/", callback=schedulable(view, method="POST"), converters={}
    )

    assert list(describe(endpoint)["methods"]) == ["POST"]


def test_a_function_view_opted_in_without_a_method_offers_every_method() -> None:
    assert sorted(listed()["echo-int"]["methods"]) == ["DELETE", "GET", "PATCH", "POST", "PUT"]


def test_router_routes_are_shown_as_paths_not_regexes() -> None:
    rows = listed()

    assert rows["shop:item-list"]["route"] == "/shop/items/"
    assert rows["shop:item-detail"]["route"] == "/shop/items/<pk>/"
