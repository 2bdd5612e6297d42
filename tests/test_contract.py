"""The OpenAPI schema is the contract: generated clean, complete, and fuzzed by
schemathesis against the running app (any 5xx or off-schema response fails)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
import schemathesis
import yaml
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from packaging.version import Version
from rest_framework.permissions import AllowAny
from schemathesis.specs.openapi.checks import positive_data_acceptance

import async_orders
from async_orders.models import FailureCode
from async_orders.registry import iter_endpoints
from async_orders.views.openapi import TAG, enum_member_names

pytestmark = pytest.mark.django_db

#: Cases per operation: 100 in the main run. The matrix's sessions (noxfile.py) ask for
#: fewer: they are there to run every test on each Python x Django, and at 100 the
#: fuzz was a third of each session's CPU (22 of 64 s), seven times over in `make test`.
FUZZ_EXAMPLES = int(os.environ.get("ASYNC_ORDERS_FUZZ_EXAMPLES", "100"))


def generate_schema() -> dict:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


@pytest.fixture(scope="module")
def openapi() -> dict:
    return generate_schema()


def test_every_order_endpoint_declares_every_response_it_gives(openapi: dict) -> None:
    paths = openapi["paths"]
    declared = {
        ("post", "/async/{view_name}/order/"): {
            *("202", "302", "400", "404", "409", "413", "415", "422", "429"),
        },
        ("get", "/async/orders/{id}/"): {"200", "201", "202", "304", "400", "404"},
        ("get", "/async/orders/{id}/events/"): {"200", "204", "404"},
        ("delete", "/async/orders/{id}/"): {"200", "202", "404", "409"},
        ("get", "/async/orders/{id}/result/"): {"200", "404", "409", "410"},
        ("get", "/async/orders/"): {"200"},
    }
    for (method, path), codes in declared.items():
        assert codes <= set(paths[path][method]["responses"]), (method, path)


def test_the_view_name_enum_is_the_schedulable_views(openapi: dict) -> None:
    parameters = openapi["paths"]["/async/{view_name}/order/"]["post"]["parameters"]
    enum = next(p for p in parameters if p["name"] == "view_name")["schema"]["enum"]

    assert enum == sorted(e.name for e in iter_endpoints() if e.is_schedulable)
    assert "not-opted-in" not in enum


def test_each_views_typed_inputs_are_documented(openapi: dict) -> None:
    operation = openapi["paths"]["/async/{view_name}/order/"]["post"]
    typed = operation["x-view-inputs"]["typed-inputs"]["POST"]

    assert typed["data"] == {"$ref": "#/components/schemas/PizzaInput"}
    assert typed["query"] == {"$ref": "#/components/schemas/PageQuery"}
    assert set(openapi["components"]["schemas"]["PizzaInput"]["properties"]) == {"name", "size"}


def test_the_order_and_envelope_schemas_are_components(openapi: dict) -> None:
    schemas = openapi["components"]["schemas"]

    assert {"id", "status", "progress", "resource_url", "error"} <= set(
        schemas["Order"]["properties"]
    )
    assert set(schemas["Envelope"]["properties"]) == {
        "args",
        "kwargs",
        "method",
        "query",
        "data",
        "countdown",
        "eta",
        "callback_url",
        "labels",
        "timeout",
        "start_deadline",
    }


schema = schemathesis.pytest.from_fixture("live_schema")


@pytest.fixture
def live_schema(db: None) -> Iterator[schemathesis.BaseSchema]:
    """The app's own schema, served by the app, called in-process through WSGI.

    As Django's test client does, keep each request from closing the test's
    database connection (and with it the test's transaction)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/schema/?format=json", get_wsgi_application())
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases every run: CI stays deterministic
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_never_get_a_5xx_or_an_off_schema_answer(case, fuzz_counter) -> None:
    fuzz_counter.append(case.operation.label)
    # Every check but "schema-valid data is accepted": a valid-looking envelope can
    # still name kwargs that don't fit the view's route, which only a 400 can say.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


# --- what a generated client needs (issue 13 item 5) -------------------------------


def test_every_field_the_order_always_has_is_required(openapi: dict) -> None:
    order = openapi["components"]["schemas"]["Order"]

    assert set(order["required"]) == set(order["properties"])


def test_the_orders_error_is_typed_with_the_failure_codes(openapi: dict) -> None:
    schemas = openapi["components"]["schemas"]
    error = schemas["Order"]["properties"]["error"]
    order_error = schemas["OrderError"]
    code_ref = order_error["properties"]["code"]["allOf"][0]["$ref"]
    code = schemas[code_ref.rsplit("/", 1)[1]]

    assert error["allOf"] == [{"$ref": "#/components/schemas/OrderError"}]
    assert error["nullable"] is True
    assert set(order_error["required"]) == {"code", "message", "status_code", "body"}
    assert order_error["properties"]["status_code"]["nullable"] is True
    assert code["enum"] == [value for value, _ in FailureCode.choices]


def test_the_result_declares_every_status_a_view_may_answer(openapi: dict) -> None:
    responses = openapi["paths"]["/async/orders/{id}/result/"]["get"]["responses"]

    assert {"200", "201", "2XX"} <= set(responses)
    for status in ("200", "201", "2XX"):
        # Any content type; octet-stream first, for generators that do not read */*.
        assert list(responses[status]["content"]) == ["application/octet-stream", "*/*"]


# --- what a generated client needs (issue 24 item 3) --------------------------------

OPERATIONS = {
    ("post", "/async/{view_name}/order/"): "place_async_order",
    ("post", "/async/tasks/{path}/order/"): "place_async_task_order",
    ("get", "/async/orders/"): "list_async_orders",
    ("get", "/async/orders/{id}/"): "poll_async_order",
    ("delete", "/async/orders/{id}/"): "cancel_async_order",
    ("get", "/async/orders/{id}/events/"): "async_order_events",
    ("get", "/async/orders/{id}/result/"): "async_order_result",
    ("get", "/async/orders/{id}/attempts/"): "list_async_order_attempts",
    ("post", "/async/orders/{id}/rerun/"): "rerun_async_order",
}


def test_operations_are_named_and_tagged_wherever_they_are_mounted(openapi: dict) -> None:
    """drf-spectacular would derive both from the path after the schema's common
    prefix: they, and a generated client's modules, would change with the project's
    other URLs."""
    for (method, path), operation_id in OPERATIONS.items():
        operation = openapi["paths"][path][method]
        assert (operation["operationId"], operation["tags"]) == (operation_id, [TAG])


def test_the_304_of_a_poll_is_declared_without_a_body(openapi: dict) -> None:
    not_modified = openapi["paths"]["/async/orders/{id}/"]["get"]["responses"]["304"]

    assert "content" not in not_modified
    assert set(not_modified["headers"]) == {"ETag"}


def test_the_envelope_refuses_unknown_keys_and_takes_plain_objects(openapi: dict) -> None:
    envelope = openapi["components"]["schemas"]["Envelope"]

    assert envelope["additionalProperties"] is False
    # No type: a generator gives them as dicts, not as model classes of their own.
    assert "type" not in envelope["properties"]["kwargs"]
    assert "type" not in envelope["properties"]["query"]


def test_the_failure_codes_are_a_component_named_after_their_enum(openapi: dict) -> None:
    """Whatever the project's ENUM_NAME_OVERRIDES (the test project has none)."""
    code = openapi["components"]["schemas"]["FailureCode"]

    assert code["enum"] == FailureCode.values


def test_view_names_have_enum_member_names(openapi: dict) -> None:
    parameters = openapi["paths"]["/async/{view_name}/order/"]["post"]["parameters"]
    schema = next(p for p in parameters if p["name"] == "view_name")["schema"]

    assert schema["x-enum-varnames"] == enum_member_names(schema["enum"])
    assert dict(zip(schema["enum"], schema["x-enum-varnames"], strict=True))["shop:item-list"] == (
        "SHOP_ITEM_LIST"
    )


@pytest.mark.parametrize(
    ("names", "members"),
    [
        (["shop:pizza-list", "echo-int"], ["SHOP_PIZZA_LIST", "ECHO_INT"]),
        (["pizzaList", "v2:item.detail"], ["PIZZA_LIST", "V2_ITEM_DETAIL"]),
        (["404", "-"], ["VIEW_404", "VIEW"]),
        (["shop:pizza-list", "shop-pizza-list"], ["SHOP_PIZZA_LIST", "SHOP_PIZZA_LIST_2"]),
    ],
)
def test_enum_member_names_are_identifiers_unique_and_readable(
    names: list[str], members: list[str]
) -> None:
    assert enum_member_names(names) == members


@pytest.mark.parametrize(
    ("permission_classes", "anonymous"),
    [
        (None, True),  # DRF's default: AllowAny
        ([], True),  # DRF lets everyone in; drf-spectacular alone would not say so
        (["tests.test_contract.Anybody"], True),
        (["rest_framework.permissions.IsAuthenticated"], False),
    ],
)
def test_anonymous_access_is_a_security_alternative_where_allowed(
    settings, permission_classes: list[str] | None, anonymous: bool
) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "PERMISSION_CLASSES": permission_classes}
    paths = generate_schema()["paths"]

    for method, path in OPERATIONS:
        assert ({} in paths[path][method]["security"]) is anonymous, (method, path)


class Anybody(AllowAny):
    """A project's own AllowAny."""


def test_descriptions_are_for_clients_not_about_the_implementation(openapi: dict) -> None:
    operations = [op for path in openapi["paths"].values() for op in path.values()]
    text = yaml.safe_dump([openapi["components"]["schemas"], operations])

    for internal in (":func:", "``", "DRF", "ModelSerializer", "WSGI", "thread"):
        assert internal not in text


def test_the_examples_order_a_real_view(openapi: dict) -> None:
    operation = openapi["paths"]["/async/{view_name}/order/"]["post"]
    view_name = next(p for p in operation["parameters"] if p["name"] == "view_name")
    examples = operation["requestBody"]["content"]["application/json"]["examples"]

    named = {example["value"] for example in view_name["examples"].values()}
    assert named <= set(view_name["schema"]["enum"])
    assert all(
        set(example["value"]) <= {"kwargs", "data", "query"} for example in examples.values()
    )
    assert any(example["value"].get("kwargs") for example in examples.values())


def test_the_demo_schemas_version_is_the_packages() -> None:
    """A generated client takes the schema's version as its own: it must be valid."""
    from demo import settings as demo

    assert Version(demo.SPECTACULAR_SETTINGS["VERSION"]) == Version(async_orders.__version__)
