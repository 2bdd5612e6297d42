"""Labels: the envelope's ``labels``, shown on the order, added by its view, and the
listing's ``?label=key:value``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from async_orders.labels import MAX_LABELS
from async_orders.models import Order
from async_orders.worker.execution import run_order
from tests.factories import make_order
from tests.helpers import place

pytestmark = pytest.mark.django_db


def test_labels_are_kept_and_shown_on_the_order(api: APIClient) -> None:
    placed = place(api, "echo", {"labels": {"tenant": "acme", "run": "7"}})

    assert placed.status_code == 302
    assert placed.json()["labels"] == {"tenant": "acme", "run": "7"}
    assert api.get(placed["Location"]).json()["labels"] == {"tenant": "acme", "run": "7"}


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"tenant": 5}, "labels.tenant"),
        ({"tenant": "x" * 257}, "labels.tenant"),
        ({"k" * 65: "v"}, f"labels.{'k' * 64}"),
        ({"": "v"}, "labels."),
        ({f"k{n}": "v" for n in range(MAX_LABELS + 1)}, "labels"),
        (["tenant", "acme"], "labels"),
    ],
)
def test_a_label_out_of_bounds_is_a_400_naming_it(api: APIClient, labels: Any, field: str) -> None:
    refused = place(api, "echo", {"labels": labels})

    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_envelope"
    assert list(refused.json()["fields"]) == [field]
    assert not Order.objects.exists()


def test_a_view_adds_its_own_labels_through_current_order() -> None:
    order = make_order("labels-itself", labels={"tenant": "acme"}, data={"pages": "3"})

    run_order(order.pk)

    order.refresh_from_db()
    assert order.status == "completed"
    assert order.labels == {"tenant": "acme", "pages": "3"}


def test_the_listing_filters_by_every_label_asked_for(api: APIClient, user: User) -> None:
    both = make_order(owner=user, labels={"tenant": "acme", "run": "7"})
    make_order(owner=user, labels={"tenant": "acme", "run": "8"})
    make_order(owner=user, labels={"tenant": "other:co", "run": "7"})
    make_order(owner=User.objects.create_user("bob"), labels={"tenant": "acme", "run": "7"})
    api.force_authenticate(user)

    def listed(*labels: str) -> list[str]:
        response = api.get("/async/orders/", {"label": list(labels)})
        assert response.status_code == 200, response.json()
        return [order["id"] for order in response.json()["results"]]

    assert listed("tenant:acme", "run:7") == [str(both.pk)]
    assert len(listed("tenant:acme")) == 2
    assert len(listed("tenant:other:co")) == 1  # a value may hold colons
    assert listed("tenant:nobody") == []


@pytest.mark.parametrize("label", ["no-colon", ":value", f"{'k' * 65}:v"])
def test_a_malformed_label_filter_is_a_400(api: APIClient, label: str) -> None:
    refused = api.get("/async/orders/", {"label": label})

    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_query"
    assert "label" in refused.json()["fields"]


def test_postgresql_indexes_labels_for_containment() -> None:
    """The listing's ``labels @> ...`` is served by migration 0012's GIN index there;
    elsewhere there is none to make (and the filter still works, as above)."""
    if connection.vendor != "postgresql":
        pytest.skip("a GIN index is PostgreSQL's; SQLite filters without it")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'async_order_labels_gin'")
        [(definition,)] = cursor.fetchall()

    assert "USING gin (labels jsonb_path_ops)" in definition


def test_postgresql_keeps_a_finer_histogram_of_labels() -> None:
    """Migration 0014: with the default 100 buckets the planner sometimes took a label
    that 1 % of a million orders carry for a rare one and sorted all its matches for a
    first page; with 300, a rare one for a common one (docs/performance.md, row 32)."""
    if connection.vendor != "postgresql":
        pytest.skip("planner statistics targets are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = 'labels'",
            [Order._meta.db_table],
        )
        [(target,)] = cursor.fetchall()

    assert target == 1000
