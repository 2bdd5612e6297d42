"""The Order admin: a read-only dashboard with cancel and re-run actions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from async_orders.admin import NOT_PLACED
from async_orders.models import FailureCode, Order, OrderStatus, failure
from async_orders.worker.execution import run_order
from tests.factories import make_order

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/async_orders/order/"


def finished(view_name: str, **kwargs) -> Order:
    order = make_order(view_name, **kwargs)
    run_order(order.pk)
    order.refresh_from_db()
    return order


def running(current: int, total: int) -> Order:
    order = make_order("echo")
    order.start()
    order.report_progress(current, total, "halfway")
    return order


def listed(admin_client: Client, query: str = "") -> set[Order]:
    response = admin_client.get(CHANGELIST + query)
    assert response.status_code == 200
    return set(response.context["cl"].result_list)


def act(admin_client: Client, action: str, *orders: Order):
    return admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(order.pk) for order in orders]},
        follow=True,
    )


def test_changelist_shows_status_view_owner_and_progress_bar(
    admin_client: Client, user: User
) -> None:
    make_order("echo-int", owner=user, kwargs={"number": 1})
    running(3, 12)

    page = admin_client.get(CHANGELIST).content.decode()

    assert "echo-int" in page
    assert "alice" in page
    assert '<progress value="3" max="12" title="25%">25%</progress> 3/12' in page
    for column in ("column-status", "column-created_at", "column-started_at", "column-finished_at"):
        assert column in page


def test_changelist_query_count_does_not_grow_with_orders(admin_client: Client, user: User) -> None:
    make_order("echo", owner=user)
    with CaptureQueriesContext(connection) as one:
        admin_client.get(CHANGELIST)
    for _ in range(5):
        make_order("echo", owner=User.objects.create_user(f"u{Order.objects.count()}"))
    with CaptureQueriesContext(connection) as six:
        admin_client.get(CHANGELIST)

    assert len(six) == len(one)


def test_filter_by_status(admin_client: Client) -> None:
    failed = finished("answers-404")
    completed = finished("echo")

    assert listed(admin_client, "?status__exact=failed") == {failed}
    assert listed(admin_client, "?status__exact=completed") == {completed}


def test_filter_by_view(admin_client: Client) -> None:
    echo = make_order("echo")
    make_order("echo-int", kwargs={"number": 2})

    assert listed(admin_client, "?view_name__exact=echo") == {echo}


def test_filter_by_creation_date(admin_client: Client) -> None:
    old = make_order("echo")
    Order.objects.filter(pk=old.pk).update(created_at=datetime(2020, 5, 1, tzinfo=UTC))
    make_order("echo")

    assert listed(admin_client, "?created_at__year=2020") == {old}


def test_search_by_id_and_by_owner(admin_client: Client, user: User) -> None:
    mine = make_order("echo", owner=user)
    other = make_order("echo", owner=User.objects.create_user("bob"))

    assert listed(admin_client, f"?q={mine.pk}") == {mine}
    assert listed(admin_client, "?q=bob") == {other}


def test_order_page_shows_envelope_and_stored_response_read_only(admin_client: Client) -> None:
    order = finished("echo-int", kwargs={"number": 7}, query={"q": "x"})

    response = admin_client.get(f"{CHANGELIST}{order.pk}/change/")
    page = response.content.decode()

    assert response.status_code == 200
    assert "&quot;number&quot;: 7" in page  # the envelope, as JSON
    assert "200 application/json" in page  # the stored response's status and type
    assert 'name="kwargs"' not in page
    assert 'name="status"' not in page
    assert response.context["adminform"].form.fields == {}


def test_the_read_only_order_page_offers_no_save_buttons(admin_client: Client) -> None:
    order = finished("echo-int", kwargs={"number": 7})

    page = admin_client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()

    for button in ('name="_save"', 'name="_continue"', 'name="_addanother"'):
        assert button not in page
    assert "/delete/" in page  # deleting an order stays possible


def test_the_changelist_keeps_each_order_id_on_one_line(admin_client: Client) -> None:
    order = make_order("echo")

    page = admin_client.get(CHANGELIST).content.decode()

    assert f'<span style="white-space: nowrap">{order.pk}</span>' in page


def test_orders_cannot_be_added_in_the_admin(admin_client: Client) -> None:
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_cancel_action_cancels_waiting_stops_running_and_skips_finished(
    admin_client: Client,
) -> None:
    waiting = make_order("echo")
    busy = running(1, 4)
    done = finished("echo")

    response = act(admin_client, "cancel_orders", waiting, busy, done)

    for order in (waiting, busy, done):
        order.refresh_from_db()
    assert waiting.status == OrderStatus.CANCELED
    assert (busy.status, busy.cancel_requested) == (OrderStatus.RUNNING, True)
    assert done.status == OrderStatus.COMPLETED
    assert "1 canceled; 1 asked to stop; 1 already finished" in response.content.decode()


def test_rerun_action_places_new_orders_for_failed_and_canceled_ones_only(
    admin_client: Client, user: User
) -> None:
    failed = finished("answers-404", owner=user)
    canceled = make_order("echo")
    canceled.cancel()
    completed = finished("echo")

    response = act(admin_client, "rerun_failed_orders", failed, canceled, completed)

    again = Order.objects.get(rerun_of=failed)  # linked, as POST .../rerun/ links it
    assert (again.view_name, again.owner, again.status) == ("answers-404", user, OrderStatus.QUEUED)
    assert Order.objects.filter(rerun_of=canceled).exists()
    assert "2 re-run; 1 skipped, not failed or canceled" in response.content.decode()


@pytest.mark.parametrize(
    ("action", "needed"),
    [("cancel_orders", "cancel_order"), ("rerun_failed_orders", "rerun_order")],
)
def test_each_action_needs_its_own_permission(client: Client, action: str, needed: str) -> None:
    operator = User.objects.create_user("operator", password="pw", is_staff=True)
    operator.user_permissions.add(*_permissions("view_order", "change_order"))
    client.force_login(operator)
    order = make_order("echo")
    order.cancel()  # a canceled order: both actions would act on a fresh order like it
    fresh = make_order("echo")

    act(client, action, fresh if action == "cancel_orders" else order)
    acted_without = _acted(action, order, fresh)
    operator.user_permissions.add(*_permissions(needed))
    act(client, action, fresh if action == "cancel_orders" else order)

    assert (acted_without, _acted(action, order, fresh)) == (False, True)


def _acted(action: str, canceled: Order, fresh: Order) -> bool:
    if action == "cancel_orders":
        fresh.refresh_from_db()
        return fresh.status == OrderStatus.CANCELED
    return Order.objects.filter(rerun_of=canceled).exists()


def _permissions(*codenames: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename__in=codenames)


def test_rerun_of_an_order_whose_objects_are_locked_is_counted_not_placed(
    admin_client: Client,
) -> None:
    failed = make_order("bake-pizza", kwargs={"pk": 1})
    failed.start()
    failed.fail(failure(FailureCode.EXCEPTION, "burnt"))
    holder = make_order("bake-pizza", kwargs={"pk": 1})  # active: holds pizza:1

    response = act(admin_client, "rerun_failed_orders", failed)

    assert set(Order.objects.values_list("pk", flat=True)) == {failed.pk, holder.pk}
    assert f"1 {NOT_PLACED}" in response.content.decode()


def test_an_order_page_shows_its_labels_and_links_its_batchs_orders(admin_client: Client) -> None:
    from async_orders.batches import parse_batch, place_batch

    items = [{"view": "echo", "labels": {"tenant": "acme"}}, {"view": "echo"}]
    batch = place_batch(parse_batch({"orders": items}), None, "http://testserver", requester="x")
    make_order("echo")  # not in the batch
    first = Order.objects.get(pk=batch.items[0].id)

    page = admin_client.get(f"{CHANGELIST}{first.pk}/change/").content.decode()

    assert "&quot;tenant&quot;: &quot;acme&quot;" in page
    assert f'?batch_id={batch.id}"' in page
    assert listed(admin_client, f"?batch_id={batch.id}") == set(
        Order.objects.filter(batch_id=batch.id)
    )
