"""The worker runs exactly the opted-in view: ``resolve(reverse(name))`` must land on
it when the order is placed and again when it runs (issue 11, item 2)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus
from async_orders.worker.execution import run_order
from tests.helpers import place

pytestmark = pytest.mark.django_db


@pytest.fixture
def shadowing(settings) -> None:
    settings.ROOT_URLCONF = "tests.shadowing_urls"


def ran(view_name: str) -> Order:
    """An order placed before the URLconf changed under it, then executed."""
    order = Order.objects.create(view_name=view_name, method="POST", origin="http://testserver")
    run_order(order.pk)
    order.refresh_from_db()
    return order


@pytest.mark.usefixtures("shadowing")
def test_a_url_name_given_to_two_views_is_a_system_check_error() -> None:
    errors = [message for message in run_checks() if message.id == "async_orders.E004"]

    assert len(errors) == 1
    assert "'twin'" in errors[0].msg
    assert "unique" in errors[0].hint


def test_the_test_urlconf_has_no_colliding_names() -> None:
    assert "async_orders.E004" not in [message.id for message in run_checks()]


@pytest.mark.usefixtures("shadowing")
@pytest.mark.parametrize("view", ["twin", "special"])
def test_ordering_a_name_that_leads_to_another_view_is_refused(api: APIClient, view: str) -> None:
    response = place(api, view)

    assert response.status_code == 400
    assert response.json()["code"] == "view_shadowed"
    assert "another view" in response.json()["detail"]
    assert not Order.objects.exists()


@pytest.mark.usefixtures("shadowing")
def test_an_order_of_an_unshadowed_view_is_placed(api: APIClient) -> None:
    assert place(api, "echo").status_code == 302


@pytest.mark.usefixtures("shadowing")
@pytest.mark.parametrize("view", ["twin", "special"])
def test_an_order_whose_path_now_leads_to_another_view_fails_without_running_it(
    view: str,
) -> None:
    order = ran(view)

    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "view_unavailable"
    assert order.response_body is None


def test_an_order_of_a_view_no_longer_opted_in_fails_without_running_it() -> None:
    order = ran("not-opted-in")

    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "view_unavailable"
