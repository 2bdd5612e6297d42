"""Hand-written hostile inputs: each gets a clear 4xx with a code, never a 5xx, and
never creates, changes or loses an order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from async_orders.models import Order
from tests.factories import make_order

pytestmark = pytest.mark.django_db

DEEP = '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}"
BAD_ENVELOPES: list[Any] = [
    None,
    0,
    3.5,
    True,
    "envelope",
    [],
    [{"kwargs": {}}],
    {"kwargs": None},
    {"kwargs": "pk=1"},
    {"kwargs": 5},
    {"args": {"a": 1}},
    {"args": "1"},
    {"method": 7},
    {"method": ""},
    {"method": "BREW"},
    {"method": "G\u0000T"},
    {"method": "x" * 11},
    {"query": []},
    {"query": "a=1"},
    {"query": {"a": {"b": 1}}},
    {"query": {"a": [[1]]}},
    {"countdown": "soon"},
    {"countdown": -5},
    {"countdown": 1e308},
    {"countdown": None},
    {"countdown": False},
    {"countdown": 1e13},
    {"countdown": 1e308},
    {"args": [1], "kwargs": {"number": 1}},
    {"countdown": True},
    {"eta": 12},
    {"eta": "yesterday"},
    {"eta": "2026-13-45T99:99:99Z"},
    {"countdown": 1, "eta": "2030-01-01T00:00:00Z"},
    {"kwargs": {"number": "1; DROP TABLE async_orders_order"}},
    {"kwargs": {"number": "\u0000"}},
    {"kwargs": {"number": "x" * 100_000}},
    {"kwargs": {"number": [1]}},
    {"kwargs": {"number": {"$gt": 1}}},
    {"kwargs": {"number": True}},
    {"kwargs": {"number": None}},
    {"kwargs": {"number": 1.5}},
    {"kwargs": {"number": "\u0661"}},  # an Arabic-Indic digit: \d would take it
    {"kwargs": {"../number": 1}},
    {"kwargs": {"number": 1}, "unknown": 1},
    {"kwargs": {"number": 1}, "__proto__": {}},
]
BAD_VIEW_NAMES = [
    "..%5C..%5Cetc%5Cpasswd",
    "%2e%2e",
    "admin:index",
    "not-opted-in",
    "echo-int%00",
    "%00",
    "echo\u200bint",
    "%F0%9F%8D%95",
    "x" * 5000,
    "shop:",
    ":echo",
    "shop:item-list:extra",
    "%252e%252e",
]


def snapshot() -> list[dict[str, Any]]:
    return list(Order.objects.order_by("pk").values())


@pytest.fixture
def existing() -> list[dict[str, Any]]:
    make_order("echo-int", kwargs={"number": 1})
    return snapshot()


def assert_refused_cleanly(response: Any, existing: list[dict[str, Any]]) -> None:
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"]
    assert snapshot() == existing


@pytest.mark.parametrize("envelope", BAD_ENVELOPES, ids=range(len(BAD_ENVELOPES)))
def test_a_bad_envelope_is_refused_with_a_code(api: APIClient, existing, envelope: Any) -> None:
    body = json.dumps(envelope)
    response = api.post("/async/echo-int/order/", body, content_type="application/json")

    assert_refused_cleanly(response, existing)


def test_deeply_nested_json_is_refused(api: APIClient, existing) -> None:
    response = api.post("/async/echo-int/order/", DEEP, content_type="application/json")

    assert_refused_cleanly(response, existing)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b"nul\x00l", b'{"kwargs": {"number": 1}}' * 2, b"\x00" * 10],
    ids=range(6),
)
def test_malformed_json_bytes_are_refused(api: APIClient, existing, raw: bytes) -> None:
    response = api.generic("POST", "/async/echo/order/", raw, content_type="application/json")

    if raw == b"":  # an empty body is the empty envelope, which is valid
        assert response.status_code == 302
        return
    assert_refused_cleanly(response, existing)


@pytest.mark.parametrize("view_name", BAD_VIEW_NAMES, ids=range(len(BAD_VIEW_NAMES)))
def test_a_hostile_view_name_is_404(api: APIClient, existing, view_name: str) -> None:
    response = api.post(f"/async/{view_name}/order/", {}, format="json")

    assert_refused_cleanly(response, existing)
    assert response.status_code == 404


def test_path_traversal_in_a_view_name_never_reaches_a_view(api: APIClient, existing) -> None:
    response = api.post("/async/..%2F..%2Fetc%2Fpasswd/order/", {}, format="json")

    assert response.status_code == 404
    assert snapshot() == existing


@pytest.mark.parametrize(
    "order_id",
    ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g", "%00", "..", "x" * 3000],
    ids=range(6),
)
@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_malformed_order_id_is_404(api: APIClient, existing, order_id: str, method: str) -> None:
    response = getattr(api, method)(f"/async/orders/{order_id}/")

    assert_refused_cleanly(response, existing)
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH", "GET", "DELETE"])
def test_an_unsupported_http_method_on_the_order_endpoint_is_405(
    api: APIClient, existing, method: str
) -> None:
    response = api.generic(method, "/async/echo/order/")

    assert_refused_cleanly(response, existing)
    assert response.status_code == 405
