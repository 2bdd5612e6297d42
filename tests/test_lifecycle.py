"""An order's lifecycle through the endpoints, the worker run in-process: time limits
in the envelope, the attempt history, re-running, and who may cancel or re-run.
(tests/test_lifecycle_live.py drives the same through a live server and real workers.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from async_orders import schedulable
from async_orders.attempts import OrderAttempt
from async_orders.models import Order, OrderStatus
from async_orders.retention import purge_finished
from async_orders.worker.execution import run_order
from async_orders.worker.reconciler import reconcile
from tests.factories import make_order
from tests.helpers import order_of, place

pytestmark = pytest.mark.django_db


def user_with(name: str, *permissions: str) -> User:
    user = User.objects.create_user(name)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def rerun(api: APIClient, order: Order, **headers: str) -> Any:
    return api.post(f"/async/orders/{order.pk}/rerun/", headers=headers)


def failed_order(owner: User | None = None) -> Order:
    order = make_order("fails-on-error", owner)
    run_order(order.pk)
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    return order


# Time limits in the envelope


def test_an_order_takes_the_views_time_limits_unless_it_asks_for_shorter(api: APIClient) -> None:
    default = order_of(place(api, "ledgered-timed", {"kwargs": {"steps": 1}}))
    shorter = order_of(
        place(api, "ledgered-timed", {"kwargs": {"steps": 2}, "timeout": 2, "start_deadline": 3})
    )

    assert (default.timeout, default.start_deadline) == (60, 60)
    assert (shorter.timeout, shorter.start_deadline) == (2, 3)
    shown = api.get(f"/async/orders/{shorter.pk}/").json()
    assert (shown["timeout"], shown["start_deadline"]) == (2, 3)


@pytest.mark.parametrize("field", ["timeout", "start_deadline"])
def test_a_time_limit_above_the_views_is_a_400_naming_it(api: APIClient, field: str) -> None:
    response = place(api, "ledgered-timed", {"kwargs": {"steps": 1}, field: 61})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_envelope"
    assert list(response.json()["fields"]) == [field]
    assert "60" in response.json()["fields"][field][0]
    assert not Order.objects.exists()


@pytest.mark.parametrize("value", [0, -1, True, "soon"])
def test_a_time_limit_that_is_not_a_positive_number_is_a_400(api: APIClient, value: Any) -> None:
    response = place(api, "echo", {"timeout": value})

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["timeout"]


def test_a_view_without_limits_takes_an_orders_own(api: APIClient) -> None:
    order = order_of(place(api, "echo", {"timeout": 3600}))

    assert (order.timeout, order.start_deadline) == (3600, None)


def test_an_order_started_after_its_start_deadline_fails_without_running() -> None:
    order = make_order("counted", start_deadline=0.5)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(seconds=2))

    run_order(order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert order.error["code"] == "start_deadline_exceeded"
    assert order.response_status is None  # the view was never called
    (attempt,) = OrderAttempt.objects.filter(order=order)
    assert attempt.error["code"] == "start_deadline_exceeded"


def test_a_start_deadline_counts_from_when_a_scheduled_order_is_due() -> None:
    order = make_order("counted", start_deadline=0.5, countdown=1)
    due = timezone.now() - timedelta(seconds=0.1)
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - timedelta(seconds=5), run_at=due
    )

    run_order(order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED


# The attempt history


def test_each_attempt_is_listed_oldest_first_with_its_error(api: APIClient) -> None:
    order = make_order("flaky", data={"succeed_on": 2})
    run_order(order.pk)
    Order.objects.filter(pk=order.pk).update(run_at=None)  # the retry is due now
    run_order(order.pk)

    response = api.get(f"/async/orders/{order.pk}/attempts/")

    assert response.status_code == 200
    first, second = response.json()
    assert (first["number"], first["outcome"], first["error"]["code"]) == (1, "failed", "exception")
    assert "traceback" not in first
    assert "ConnectionError" not in str(first)
    assert (second["number"], second["outcome"], second["error"]) == (2, "completed", None)
    assert first["finished_at"] <= second["started_at"]
    shown = api.get(f"/async/orders/{order.pk}/").json()
    assert shown["attempts"] == 2
    assert shown["attempts_url"].endswith(f"/async/orders/{order.pk}/attempts/")
    assert "ConnectionError" in OrderAttempt.objects.get(order=order, number=1).traceback


def test_the_attempt_running_now_is_listed_last_without_an_end(api: APIClient) -> None:
    order = make_order()
    order.start("node@host:42")

    (attempt,) = api.get(f"/async/orders/{order.pk}/attempts/").json()

    assert (attempt["number"], attempt["outcome"], attempt["worker"]) == (
        1,
        "running",
        "node@host:42",
    )
    assert attempt["finished_at"] is None
    assert attempt["started_at"] is not None


def test_a_lost_attempt_is_listed_as_failed_with_worker_lost() -> None:
    order = make_order("ledgered-retrying", kwargs={"steps": 1}, data={})
    order.start("node@host:1")

    assert order.recover_lost(order._this_attempt()) == OrderStatus.QUEUED

    (attempt,) = OrderAttempt.objects.filter(order=order)
    assert (attempt.number, attempt.worker, attempt.error["code"]) == (
        1,
        "node@host:1",
        "worker_lost",
    )


def test_attempts_are_seen_only_by_those_who_see_the_order(api: APIClient, user: User) -> None:
    order = make_order(owner=User.objects.create_user("bob"))

    api.force_authenticate(user)
    assert api.get(f"/async/orders/{order.pk}/attempts/").status_code == 404
    api.force_authenticate(user_with("auditor", "view_order"))
    assert api.get(f"/async/orders/{order.pk}/attempts/").status_code == 200


def test_attempts_are_purged_with_their_order() -> None:
    order = failed_order()
    Order.objects.filter(pk=order.pk).update(finished_at=timezone.now() - timedelta(days=365))

    assert purge_finished() == 1
    assert not OrderAttempt.objects.exists()


# Re-running


def test_the_owner_reruns_a_failed_order_linked_both_ways(api: APIClient, user: User) -> None:
    failed = failed_order(user)
    api.force_authenticate(user)

    response = rerun(api, failed)

    assert response.status_code == 302
    again = Order.objects.get(rerun_of=failed)
    assert response.headers["Location"].endswith(f"/async/orders/{again.pk}/")
    assert response.json()["rerun_of"].endswith(f"/async/orders/{failed.pk}/")
    assert (again.view_name, again.status, again.owner) == ("fails-on-error", "queued", user)
    old = api.get(f"/async/orders/{failed.pk}/")
    assert [url.rsplit("/", 2)[-2] for url in old.json()["reruns"]] == [str(again.pk)]


def test_a_rerun_changes_the_etag_of_the_order_it_reruns(api: APIClient, user: User) -> None:
    failed = failed_order(user)
    api.force_authenticate(user)
    etag = api.get(f"/async/orders/{failed.pk}/").headers["ETag"]

    rerun(api, failed)

    assert (
        api.get(f"/async/orders/{failed.pk}/", headers={"If-None-Match": etag}).status_code == 200
    )


def test_a_rerun_with_an_idempotency_key_is_placed_once(api: APIClient, user: User) -> None:
    failed = failed_order(user)
    api.force_authenticate(user)

    first = rerun(api, failed, **{"Idempotency-Key": "again-1"})
    second = rerun(api, failed, **{"Idempotency-Key": "again-1"})

    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert Order.objects.filter(rerun_of=failed).count() == 1


def test_a_canceled_order_can_be_rerun(api: APIClient) -> None:
    order = make_order()
    order.cancel()

    assert rerun(api, order).status_code == 302


@pytest.mark.parametrize("status", [OrderStatus.QUEUED, OrderStatus.RUNNING, OrderStatus.COMPLETED])
def test_an_order_that_did_not_fail_is_a_409(api: APIClient, status: OrderStatus) -> None:
    order = make_order()
    Order.objects.filter(pk=order.pk).update(status=status)

    response = rerun(api, order)

    assert response.status_code == 409
    assert response.json()["code"] == "order_not_rerunnable"
    assert Order.objects.count() == 1


def test_seeing_others_orders_lets_nobody_cancel_or_rerun_them(api: APIClient) -> None:
    bobs = make_order(owner=User.objects.create_user("bob"))
    bobs_failed = failed_order(User.objects.get(username="bob"))
    api.force_authenticate(user_with("auditor", "view_order"))

    assert api.get(f"/async/orders/{bobs.pk}/").status_code == 202
    assert api.delete(f"/async/orders/{bobs.pk}/").status_code == 404
    assert rerun(api, bobs_failed).status_code == 404
    assert Order.objects.get(pk=bobs.pk).status == OrderStatus.QUEUED
    assert not Order.objects.filter(rerun_of=bobs_failed).exists()


def test_a_stranger_gets_a_404_from_rerun(api: APIClient, user: User) -> None:
    failed = failed_order(User.objects.create_user("bob"))
    api.force_authenticate(user)

    assert rerun(api, failed).status_code == 404


def test_permission_holders_cancel_and_rerun_others_orders(api: APIClient) -> None:
    bob = User.objects.create_user("bob")
    bobs, bobs_failed = make_order(owner=bob), failed_order(bob)
    api.force_authenticate(user_with("operator", "view_order", "cancel_order", "rerun_order"))

    assert api.delete(f"/async/orders/{bobs.pk}/").status_code == 200
    assert rerun(api, bobs_failed).status_code == 302
    assert Order.objects.get(rerun_of=bobs_failed).owner == bob  # it runs as its owner


@pytest.mark.parametrize("seconds", [0, -5, True])
def test_a_view_opted_in_with_a_time_limit_that_is_not_positive_is_refused(seconds: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        schedulable(timeout=seconds)


def test_an_attempt_recovered_past_its_timeout_is_timed_out_not_worker_lost() -> None:
    order = make_order("ledgered-timed", kwargs={"steps": 3}, data={}, timeout=1)
    order.start("node@host:1")
    order.max_attempts = 1
    Order.objects.filter(pk=order.pk).update(max_attempts=1)
    order.started_at = timezone.now() - timedelta(seconds=5)

    assert order.recover_lost(order._this_attempt()) == OrderStatus.FAILED

    order.refresh_from_db()
    assert order.error["code"] == "timed_out"
    assert not order.locks.exists()


def test_listing_failed_orders_costs_one_query_for_all_their_reruns(
    api: APIClient, user: User
) -> None:
    failed = [failed_order(user) for _ in range(3)]
    api.force_authenticate(user)
    rerun(api, failed[0])
    with CaptureQueriesContext(connection) as few:
        api.get("/async/orders/")
    failed += [failed_order(user) for _ in range(3)]

    with CaptureQueriesContext(connection) as more:
        listed = api.get("/async/orders/").json()["results"]

    assert len(more.captured_queries) == len(few.captured_queries)
    reruns = {order["id"]: order["reruns"] for order in listed}
    assert len(reruns[str(failed[0].pk)]) == 1
    assert reruns[str(failed[1].pk)] == []


def test_the_reconciler_fails_a_waiting_order_no_worker_started_in_time() -> None:
    late = make_order("ledgered-timed", kwargs={"steps": 4}, data={}, start_deadline=1)
    on_time = make_order("ledgered-timed", kwargs={"steps": 5}, data={}, start_deadline=30)
    Order.objects.filter(pk__in=[late.pk, on_time.pk]).update(
        created_at=timezone.now() - timedelta(seconds=5)
    )

    report = reconcile()

    late.refresh_from_db()
    assert report.expired == [late.pk]
    assert (late.status, late.error["code"]) == (OrderStatus.FAILED, "start_deadline_exceeded")
    assert not late.locks.exists()
    assert Order.objects.get(pk=on_time.pk).status == OrderStatus.QUEUED


def test_an_expired_order_behind_a_batch_of_unexpired_ones_is_failed_in_the_same_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reconciler reads a batch of waiting orders at a time: the expired ones must
    be that batch, not whichever came first."""
    monkeypatch.setattr("async_orders.worker.reconciler.BATCH", 2)
    created = timezone.now() - timedelta(seconds=5)
    waiting = [make_order("counted", start_deadline=30) for _ in range(2)]
    late = make_order("counted", start_deadline=1)
    for age, order in enumerate([*waiting, late]):
        Order.objects.filter(pk=order.pk).update(created_at=created + timedelta(seconds=age / 10))

    report = reconcile()

    assert report.expired == [late.pk]
    assert all(Order.objects.get(pk=order.pk).status == OrderStatus.QUEUED for order in waiting)
