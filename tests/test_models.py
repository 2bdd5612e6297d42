"""The order's state machine, stated as a table: each transition from each status
either wins (one conditional UPDATE moved the order) or changes nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from async_orders.models import (
    STARTABLE,
    FailureCode,
    Order,
    OrderStatus,
    RequesterLock,
    _shown_select,
    failure,
)
from async_orders.order_statements import (
    Limit,
    claim_row,
    claimed_fields,
    insert_row,
    update_attempt,
    upsert_row,
)
from async_orders.view_response import ViewResponse
from tests.factories import make_order

pytestmark = pytest.mark.django_db

SOURCES = list(OrderStatus)

#: The status each transition leaves an order in, by the status it started from;
#: ``-``: it lost and changed nothing. ``asked``: still running, asked to stop.
# fmt: off
TABLE = {  #        scheduled   queued      running      completed failed canceled
    "claim":          ("running",  "running",  "-",         "-",      "-",    "-"),
    "schedule_retry": ("-",        "-",        "scheduled", "-",      "-",    "-"),
    "complete":       ("-",        "-",        "completed", "-",      "-",    "-"),
    "fail":           ("-",        "-",        "failed",    "-",      "-",    "-"),
    "cancel":         ("canceled", "canceled", "asked",     "-",      "-",    "-"),
    "stop_canceled":  ("-",        "-",        "canceled",  "-",      "-",    "-"),
    "recover_lost":   ("-",        "-",        "failed",    "-",      "-",    "-"),
}
# fmt: on

TRANSITIONS: dict[str, Callable[[Order], Any]] = {
    "claim": lambda order: order.start("worker"),
    "schedule_retry": lambda order: order.schedule_retry(timezone.now() + timedelta(hours=1)),
    "complete": lambda order: order.complete(
        response=ViewResponse(200, "application/json", b"{}", None), resource_url="/done/"
    ),
    "fail": lambda order: order.fail(failure(FailureCode.EXCEPTION, "it broke")),
    "cancel": lambda order: order.cancel(),
    "stop_canceled": lambda order: order.stop_canceled(1, 2),
    # Its only attempt is spent: a lost worker's order fails as worker_lost.
    "recover_lost": lambda order: order.recover_lost(Q()) is not None,
}


def order_in(status: OrderStatus) -> Order:
    """An order of one attempt in ``status``, as far as its columns go; a scheduled
    one is due, so that only its status decides whether it can start."""
    order = make_order()
    Order.objects.filter(pk=order.pk).update(
        status=status,
        attempts=0 if status in (OrderStatus.SCHEDULED, OrderStatus.QUEUED) else 1,
        max_attempts=1,
        run_at=timezone.now() - timedelta(seconds=1) if status == OrderStatus.SCHEDULED else None,
    )
    return Order.objects.get(pk=order.pk)


@pytest.mark.parametrize("source", SOURCES, ids=str)
@pytest.mark.parametrize("transition", TABLE)
def test_a_transition_wins_exactly_from_the_statuses_of_its_row(
    transition: str, source: OrderStatus
) -> None:
    expected = TABLE[transition][SOURCES.index(source)]
    order = order_in(source)

    won = TRANSITIONS[transition](order)

    stored = Order.objects.get(pk=order.pk)
    assert bool(won) is (expected != "-")
    if expected == "-":
        assert (stored.status, stored.cancel_requested) == (source, False)
    elif expected == "asked":
        assert (stored.status, stored.cancel_requested) == (OrderStatus.RUNNING, True)
    else:
        assert stored.status == expected


def test_the_table_covers_every_status() -> None:
    assert all(len(row) == len(SOURCES) for row in TABLE.values())
    assert set(TABLE) == set(TRANSITIONS)


def test_a_lost_worker_with_attempts_left_gets_its_order_queued_again() -> None:
    order = order_in(OrderStatus.RUNNING)
    Order.objects.filter(pk=order.pk).update(max_attempts=2)
    order.refresh_from_db()

    assert order.recover_lost(Q()) == OrderStatus.QUEUED


def test_a_lost_worker_without_attempts_left_fails_its_order_as_worker_lost() -> None:
    order = order_in(OrderStatus.RUNNING)

    assert order.recover_lost(Q()) == OrderStatus.FAILED
    assert Order.objects.get(pk=order.pk).error["code"] == FailureCode.WORKER_LOST


def test_a_response_too_large_to_keep_is_stored_as_its_size_and_a_message(settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_RESULT_BYTES": 2}
    order = order_in(OrderStatus.RUNNING)

    order.complete(response=ViewResponse(200, "text/plain", b"abc", None), resource_url="/r/")

    stored = Order.objects.get(pk=order.pk)
    assert (stored.response_body, stored.response_size) == (None, 3)
    assert "MAX_RESULT_BYTES (2)" in stored.message


def test_shown_one_loads_what_the_orms_shown_one_loads() -> None:
    """The poll's precompiled SELECT: the same values, types and deferred columns as the
    ORM's own ``shown().one()``, JSON and datetimes converted; None for an unknown id."""
    order = make_order()
    Order.objects.filter(pk=order.pk).update(
        error=failure(FailureCode.HTTP_ERROR, "no", 404, {"detail": [1]}),
        progress_total=4,
        finished_at=timezone.now(),
    )

    compiled, orm = Order.objects.shown_one(order.pk), Order.objects.shown().one(order.pk)

    assert compiled is not None
    assert orm is not None
    assert compiled.get_deferred_fields() == orm.get_deferred_fields()
    deferred = orm.get_deferred_fields()
    loaded = [f.attname for f in Order._meta.concrete_fields if f.attname not in deferred]
    assert [(getattr(compiled, name), type(getattr(compiled, name))) for name in loaded] == [
        (getattr(orm, name), type(getattr(orm, name))) for name in loaded
    ]
    assert not compiled._state.adding
    assert compiled._state.db == orm._state.db
    assert Order.objects.shown_one(uuid.uuid4()) is None


def test_a_row_reader_converts_with_the_connection_it_is_given() -> None:
    """The converters are looked up once per connection, and a thread's connection gets
    its own: a row read through another thread's connection comes out the same."""
    order = make_order()
    Order.objects.filter(pk=order.pk).update(error=failure(FailureCode.EXCEPTION, "no"))
    sql, reader = _shown_select("default")
    here = connections["default"]
    with here.cursor() as cursor:
        cursor.execute(sql, [Order._meta.pk.get_db_prep_value(order.pk, here)])
        row = cursor.fetchone()
    read: dict[str, Any] = {}

    def read_in_a_thread() -> None:
        there = connections["default"]
        read["order"] = reader.instance(row, there)
        read["converters"] = reader._converters_on(there)
        there.close()

    thread = threading.Thread(target=read_in_a_thread)
    thread.start()
    thread.join()

    mine = reader.instance(row, here)
    assert reader._converters_on(here) is reader._converters_on(here)
    assert read["converters"] is not reader._converters_on(here)
    assert mine.error == read["order"].error == failure(FailureCode.EXCEPTION, "no")
    assert [getattr(mine, name) for name in reader.attnames] == [
        getattr(read["order"], name) for name in reader.attnames
    ]


def test_shown_one_refuses_a_filtered_queryset() -> None:
    """Its statement selects by primary key alone: a filter would be silently ignored."""
    with pytest.raises(TypeError):
        Order.objects.filter(status=OrderStatus.QUEUED).shown_one(uuid.uuid4())


def test_insert_row_stores_what_save_stores_and_sends_saves_signals() -> None:
    """The placing INSERT, written once: every column as ``save()`` would store it
    (defaults, JSON, nulls, the owner's key), the instance marked saved, and the
    ``pre_save``/``post_save`` signals sent, which receivers such as metrics count."""
    fields = {
        "view_name": "noop",
        "origin": "http://testserver",
        "kwargs": {"pk": 3, "nested": [1, {"a": None}]},
        "data": {"name": "x"},
        "run_at": timezone.now() + timedelta(minutes=5),
        "status": OrderStatus.SCHEDULED,
        "lock_keys": ["noop:3"],
    }
    saved, inserted = Order(**fields), Order(**fields)
    saved.save()
    sent: list[tuple[str, bool]] = []

    def pre(instance: Order, **kwargs: Any) -> None:
        sent.append(("pre_save", instance._state.adding))

    def post(instance: Order, created: bool, **kwargs: Any) -> None:
        sent.append(("post_save", created))

    pre_save.connect(pre, sender=Order)
    post_save.connect(post, sender=Order)
    try:
        insert_row(inserted)
    finally:
        pre_save.disconnect(pre, sender=Order)
        post_save.disconnect(post, sender=Order)

    assert sent == [("pre_save", True), ("post_save", True)]
    assert (inserted._state.adding, inserted._state.db) == (False, "default")
    columns = [f.attname for f in Order._meta.concrete_fields if f.attname not in ("id",)]
    stored_saved, stored_inserted = (Order.objects.get(pk=o.pk) for o in (saved, inserted))
    differing = {"created_at", "published_at"}  # each instance's own timezone.now()
    assert [getattr(stored_inserted, c) for c in columns if c not in differing] == [
        getattr(stored_saved, c) for c in columns if c not in differing
    ]
    assert stored_inserted.created_at == inserted.created_at


def typed(order: Order, names: list[str]) -> list[tuple[Any, type]]:
    return [(getattr(order, name), type(getattr(order, name))) for name in names]


#: Columns two twin orders may differ in: their own ids and the clocks read for each.
OWN = {"id", "created_at", "published_at", "started_at", "heartbeat_at"}


def test_a_claim_stores_and_loads_what_the_orms_update_and_get_do() -> None:
    """The claim's ``UPDATE ... RETURNING``, written once: its twin claimed by the ORM
    (a conditional ``update()``) stores the same row, and the instance it returns is
    the ORM's ``get()`` of it (values, types, the stored response deferred)."""
    now = timezone.now()
    written, twin = make_order(), make_order()

    claimed = claim_row(Order, written.pk, "host:1", now, OrderStatus.RUNNING, STARTABLE)
    won = Order.objects.filter(
        Q(run_at__isnull=True) | Q(run_at__lte=now), pk=twin.pk, status__in=STARTABLE
    ).update(
        status=OrderStatus.RUNNING,
        started_at=now,
        heartbeat_at=Now(),
        attempts=F("attempts") + 1,
        worker="host:1",
    )

    assert claimed is not None
    assert won == 1
    names = [field.attname for field in claimed_fields(Order)]
    reread = Order.objects.defer("response_body").get(pk=written.pk)
    assert claimed.get_deferred_fields() == reread.get_deferred_fields() == {"response_body"}
    assert typed(claimed, names) == typed(reread, names)
    assert (claimed._state.adding, claimed._state.db) == (False, reread._state.db)
    mine = [name for name in names if name not in OWN]
    assert typed(reread, mine) == typed(Order.objects.get(pk=twin.pk), mine)
    assert claim_row(Order, written.pk, "host:2", now, OrderStatus.RUNNING, STARTABLE) is None


@pytest.mark.parametrize("unless_canceled", [False, True])
def test_an_attempts_update_stores_what_the_orms_update_stores(unless_canceled: bool) -> None:
    """An outcome or progress write, written once: the same row as the ORM's
    conditional ``update()`` of a twin order, for every kind of column it writes
    (bytes, JSON, text, numbers, a timestamp, a null); neither writes to an attempt
    that is not running any more, nor (``unless_canceled``) to one asked to stop."""
    written, twin = make_order(), make_order()
    for order in (written, twin):
        assert order.start("host:1")
    changes = {
        "status": OrderStatus.COMPLETED,
        "response_status": 200,
        "response_content_type": "application/json",
        "response_body": b'{"r\\u00e9sum\\u00e9": 1}',
        "response_size": 20,
        "error": failure(FailureCode.HTTP_ERROR, "no", 404, {"detail": [1, None]}),
        "message": "déjà vu",
        "progress_total": None,
        "finished_at": timezone.now(),
    }

    def orm(pk: uuid.UUID) -> bool:
        mine = Order.objects.filter(pk=pk, status=OrderStatus.RUNNING, attempts=1)
        if unless_canceled:
            mine = mine.filter(cancel_requested=False)
        return mine.update(**changes) == 1

    def written_once(pk: uuid.UUID) -> bool:
        running = OrderStatus.RUNNING
        return update_attempt(Order, pk, 1, running, changes, unless_canceled=unless_canceled)

    assert written_once(written.pk)
    assert orm(twin.pk)
    names = [field.attname for field in Order._meta.concrete_fields if field.attname not in OWN]
    stored, twins = Order.objects.get(pk=written.pk), Order.objects.get(pk=twin.pk)
    assert typed(stored, names) == typed(twins, names)
    assert bytes(stored.response_body) == changes["response_body"]
    assert not written_once(written.pk)
    assert not orm(twin.pk)


def test_an_upsert_stores_what_the_orms_upsert_stores() -> None:
    """The requester's lock row (databases without advisory locks), written once: the
    same rows as ``bulk_create(update_conflicts=True)``, first inserted, then updated."""
    for placed_at in (timezone.now(), timezone.now() + timedelta(seconds=1)):
        upsert_row(
            RequesterLock(requester="session:a", placed_at=placed_at), "requester", "placed_at"
        )
        RequesterLock.objects.bulk_create(
            [RequesterLock(requester="session:b", placed_at=placed_at)],
            update_conflicts=True,
            unique_fields=["requester"],
            update_fields=["placed_at"],
        )
        rows = {lock.requester: lock.placed_at for lock in RequesterLock.objects.all()}
        assert rows == {"session:a": placed_at, "session:b": placed_at}


def take_row(requester: str) -> None:
    upsert_row(RequesterLock(requester=requester), unique="requester", update="placed_at")


def test_upsert_row_creates_the_row_then_updates_it() -> None:
    """A requester's lock row (databases without advisory locks): created by its first
    placement, touched by the next."""
    take_row("session:abc")
    first = RequesterLock.objects.get(pk="session:abc").placed_at
    take_row("session:abc")

    assert RequesterLock.objects.filter(pk="session:abc").count() == 1
    assert RequesterLock.objects.get(pk="session:abc").placed_at > first


def test_an_insert_below_a_limit_counts_in_the_same_statement() -> None:
    """The cap's INSERT: it inserts while fewer than ``most`` rows match, and not once
    they do (nothing stored, no ``post_save``); other requesters' and finished orders
    do not count."""
    for requester, status in [
        ("session:a", OrderStatus.QUEUED),
        ("session:a", OrderStatus.COMPLETED),
        ("session:b", OrderStatus.RUNNING),
    ]:
        Order.objects.create(view_name="noop", requester=requester, status=status)
    active = (OrderStatus.SCHEDULED, OrderStatus.QUEUED, OrderStatus.RUNNING)
    limit = Limit(equal=("requester", "session:a"), among=("status", active), most=2)
    second, third = (Order(view_name="noop", requester="session:a") for _ in range(2))

    assert insert_row(second, below=limit)
    assert not insert_row(third, below=limit)

    assert not Order.objects.filter(pk=third.pk).exists()
    assert third._state.adding
    assert Order.objects.filter(requester="session:a", status__in=active).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_requesters_lock_is_held_until_its_transaction_ends() -> None:
    """Another placement of the same requester waits; another requester does not."""
    only_on_postgresql()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with transaction.atomic():
            RequesterLock.take("session:held")
            held.set()
            release.wait(timeout=30)
        connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(timeout=30)
    try:
        assert not takes_at_once("session:held")
        assert takes_at_once("session:other")
    finally:
        release.set()
        thread.join(timeout=30)
    assert takes_at_once("session:held")


def only_on_postgresql() -> None:
    if connections["default"].vendor != "postgresql":
        pytest.skip("elsewhere the lock is a row, and SQLite's write lock holds every placement")


def takes_at_once(requester: str) -> bool:
    """Whether this connection gets ``requester``'s lock without waiting."""
    with transaction.atomic():
        with connections["default"].cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '100ms'")
        try:
            with transaction.atomic():
                RequesterLock.take(requester)
        except OperationalError:
            return False
    return True


def test_on_postgresql_a_requesters_lock_writes_no_row() -> None:
    only_on_postgresql()
    with transaction.atomic():
        RequesterLock.take("session:abc")

    assert not RequesterLock.objects.exists()
