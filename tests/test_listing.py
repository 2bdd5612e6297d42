"""GET /async/orders/ at scale: cursor pages (no COUNT, stable under inserts), the
created_after/created_before filters, each order's expires_at, and the deprecated
page-number form."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order
from tests.factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine(api: APIClient, user: User) -> list[Order]:
    """Five orders of the signed-in user, placed a minute apart, oldest first."""
    api.force_authenticate(user)
    start = timezone.now() - timedelta(hours=1)
    orders = [make_order(owner=user) for _ in range(5)]
    for minutes, order in enumerate(orders):
        Order.objects.filter(pk=order.pk).update(created_at=start + timedelta(minutes=minutes))
        order.refresh_from_db()
    return orders


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [order["id"] for order in response.json()["results"]]


def test_cursor_pages_never_count_and_do_not_shift_when_orders_are_placed(
    api: APIClient, user: User, mine: list[Order]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        first = api.get("/async/orders/", {"page_size": 2})
    make_order(owner=user)  # placed between two pages: newer than all, on no later page
    second = api.get(first.json()["next"])

    assert ids(first) == [str(order.pk) for order in mine[:2:-1]][:2]
    assert ids(second) == [str(mine[2].pk), str(mine[1].pk)]
    assert "count" not in first.json()
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]


def test_created_after_and_before_bound_the_listing(api: APIClient, mine: list[Order]) -> None:
    listed = api.get(
        "/async/orders/",
        {
            "created_after": mine[0].created_at.isoformat(),
            "created_before": mine[4].created_at.isoformat(),
        },
    )

    assert ids(listed) == [str(mine[3].pk), str(mine[2].pk), str(mine[1].pk)]


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("created_after", "yesterday"),
        ("created_before", "2026-13-01"),
        ("status", "baking"),
        ("page_size", "0"),
        ("cursor", "not-a-cursor"),
        # Well-formed, as DRF writes one, with a position that is no time: was a 500.
        ("cursor", base64.b64encode(b"p=garbage").decode()),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_it(
    api: APIClient, mine: list[Order], parameter: str, value: str
) -> None:
    refused = api.get("/async/orders/", {parameter: value})

    assert refused.status_code == 400
    assert parameter in refused.json()["fields"]


def test_status_and_view_filter_the_cursor_listing(api: APIClient, mine: list[Order]) -> None:
    run_order(mine[1].pk)

    assert ids(api.get("/async/orders/", {"status": "completed"})) == [str(mine[1].pk)]
    assert len(ids(api.get("/async/orders/", {"view": "echo"}))) == 5
    assert ids(api.get("/async/orders/", {"view": "cbv"})) == []


def test_a_finished_order_says_when_retention_deletes_it(
    api: APIClient, mine: list[Order], settings: Any
) -> None:
    settings.ASYNC_ORDERS = {"RETENTION_SECONDS": 3600}
    run_order(mine[0].pk)
    finished = Order.objects.get(pk=mine[0].pk)

    shown = {order["id"]: order for order in api.get("/async/orders/").json()["results"]}

    assert finished.status == OrderStatus.COMPLETED
    expected = finished.finished_at + timedelta(seconds=3600)
    assert datetime.fromisoformat(shown[str(finished.pk)]["expires_at"]) == expected
    assert shown[str(mine[1].pk)]["expires_at"] is None


def test_the_page_number_form_still_answers_with_a_deprecation_header(
    api: APIClient, mine: list[Order]
) -> None:
    old = api.get("/async/orders/", {"page": 1, "page_size": 2})

    assert old.json()["count"] == 5
    assert len(ids(old)) == 2
    assert old["Deprecation"].startswith("@")
    assert 'rel="successor-version"' in old["Link"]
