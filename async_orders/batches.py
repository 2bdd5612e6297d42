"""Batches: many orders placed in one request, all or none, and followed as one.

A batch has no row of its own: its orders carry its id (``Order.batch_id``), its owner
is theirs (they are placed by one requester), and it is gone once retention has
deleted its last order. So placing a batch writes nothing an order does not, and
reading one is one indexed SELECT of its orders' few shown columns, however many
there are (celery#10530: a group's progress read item by item is N reads).
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.utils.translation import gettext

from async_orders.conf import conf
from async_orders.envelope import Envelope, parse_envelope
from async_orders.exceptions import InvalidBatch, InvalidEnvelope, UnknownView, ViewShadowed
from async_orders.models import ACTIVE, FINISHED, Order, OrderStatus
from async_orders.placing import place_order
from async_orders.registry import find_endpoint

#: The columns a batch's read loads, of each of its orders.
ITEM_FIELDS = ("id", "status", "progress_current", "progress_total", "requester")


@dataclass(frozen=True)
class BatchItem:
    """One order of a batch, as the batch shows it."""

    #: The order's id, as text: what the representation and the ETag show.
    id: str
    status: str
    current: int
    total: int | None

    @functools.cached_property
    def percent(self) -> float | None:
        """As the order's own ``progress.percent``: 100 once completed, null until a
        total is known."""
        if self.status == OrderStatus.COMPLETED:
            return 100.0
        if not self.total:
            return None
        return round(min(self.current / self.total, 1.0) * 100, 1)

    @property
    def done(self) -> float:
        """How much of this item is behind it, 0 to 1: a finished item, whatever its
        outcome, is all behind it, so the batch's bar ends full when the batch ends."""
        if self.status in FINISHED:
            return 1.0
        return (self.percent or 0.0) / 100


@dataclass(frozen=True)
class Batch:
    """A batch as one read of its orders found it."""

    id: uuid.UUID
    requester: str
    items: tuple[BatchItem, ...]

    @classmethod
    def read(cls, batch_id: uuid.UUID) -> Batch | None:
        """The batch, in one query; ``None`` when no order of it exists (never placed,
        or purged). The statement is compiled once per database, as a poll's is
        (:meth:`~async_orders.models.OrderQuerySet.shown_one`): the ORM took three
        times as long to build it and read 100 rows as the database took to run it."""
        alias = Order.objects.db
        connection = connections[alias]
        batch = Order._meta.get_field("batch_id").get_db_prep_value(batch_id, connection)
        with connection.cursor() as cursor:
            cursor.execute(_select(alias), [batch])
            rows = cursor.fetchall()
        return cls.of(batch_id, ((_as_uuid(pk), *rest) for pk, *rest in rows))

    @classmethod
    def of(cls, batch_id: uuid.UUID, rows: Iterable[tuple[Any, ...]]) -> Batch | None:
        """The batch of these rows (the values of :data:`ITEM_FIELDS`, oldest first)."""
        rows = list(rows)
        if not rows:
            return None
        items = tuple(BatchItem(str(pk), *row[:3]) for pk, *row in rows)
        return cls(batch_id, rows[0][4], items)

    @property
    def is_finished(self) -> bool:
        return all(item.status in FINISHED for item in self.items)

    def counts(self) -> dict[str, int]:
        """How many of its orders are in each status, every status named."""
        seen = Counter(item.status for item in self.items)
        return {status: seen[status] for status in OrderStatus.values}

    @property
    def percent(self) -> float:
        """How much of the whole batch is behind it, 0 to 100."""
        return round(sum(item.done for item in self.items) / len(self.items) * 100, 1)


@functools.cache
def _select(alias: str) -> str:
    """The read of a batch's orders, as the ORM writes it for the database ``alias``."""
    orders = Order.objects.using(alias).filter(batch_id=uuid.UUID(int=0))
    query = orders.order_by("created_at", "id").values_list(*ITEM_FIELDS).query
    sql, params = query.sql_with_params()
    assert len(params) == 1, "the batch's id is the statement's only parameter"
    return sql


def _as_uuid(value: Any) -> uuid.UUID:
    """An id as the database driver gave it: a UUID (PostgreSQL), or its hex (SQLite)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def parse_batch(body: Any) -> list[Envelope]:
    """Validate every order of ``{"orders": [...]}``; :class:`InvalidBatch` naming each
    bad field of each item (``orders.<index>.<field>``) if any is wrong."""
    orders = body.get("orders") if isinstance(body, dict) else None
    if not isinstance(orders, list) or not 1 <= len(orders) <= conf.MAX_BATCH:
        message = gettext("A list of 1 to %(most)d orders (MAX_BATCH), each with its view.")
        raise InvalidBatch({"orders": [message % {"most": conf.MAX_BATCH}]})
    if unknown := sorted(set(body) - {"orders"}):
        message = gettext("Unknown key; a batch has orders only.")
        raise InvalidBatch({key: [message] for key in unknown})
    envelopes, errors = [], {}
    for index, item in enumerate(orders):
        try:
            envelopes.append(_parse_item(item))
        except InvalidEnvelope as invalid:
            errors.update({f"orders.{index}.{k}": v for k, v in invalid.fields.items()})
        except (UnknownView, ViewShadowed) as refused:
            errors[f"orders.{index}.view"] = [str(refused.detail)]
    if errors:
        raise InvalidBatch(errors)
    return envelopes


def _parse_item(item: Any) -> Envelope:
    if not isinstance(item, dict):
        raise InvalidEnvelope({"body": [gettext("Each order is a JSON object.")]})
    envelope = dict(item)
    view_name = envelope.pop("view", None)
    if not isinstance(view_name, str):
        raise InvalidEnvelope({"view": [gettext("The URL name of the view to order.")]})
    endpoint = find_endpoint(view_name)
    if endpoint is None or not endpoint.is_schedulable:
        raise UnknownView(view_name)
    return parse_envelope(endpoint, envelope)


def place_batch(envelopes: list[Envelope], owner: Any, origin: str, *, requester: str) -> Batch:
    """Place every order in one transaction: all are placed or none (a held lock, the
    active-orders cap reached by one item). Each is placed as alone
    (:func:`~async_orders.placing.place_order`), so the cap counts them one by one,
    and each is published once the batch is committed."""
    batch_id = uuid.uuid4()
    with transaction.atomic():
        orders = [
            place_order(envelope, owner, origin, requester=requester, batch_id=batch_id)[0]
            for envelope in envelopes
        ]
    batch = Batch.of(batch_id, (tuple(getattr(o, f) for f in ITEM_FIELDS) for o in orders))
    assert batch is not None  # a batch has at least one order
    return batch


def cancel_batch(batch_id: uuid.UUID) -> bool:
    """Cancel every unfinished order of the batch, as ``DELETE`` cancels one; ``False``
    when none was unfinished."""
    active = list(Order.objects.filter(batch_id=batch_id, status__in=ACTIVE))
    return sum(order.cancel() for order in active) > 0
