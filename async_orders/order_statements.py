"""The statements every order runs through, written once per database instead of
built by the ORM on every call: placing (the requester's lock, the INSERT that
counts the requester's active orders itself), a worker's claim, progress writes and
outcome here, and the poll's SELECT (``OrderQuerySet.shown_one``), which reads its
row with :class:`RowReader`.

What they cost is paid once or more per order: built through the ORM (filters,
expressions, compilation) the claim took about 0.7 ms of Python and the outcome
0.2 ms, against 0.09 ms for the database to run either (``python -m
benchmarks.profile execute`` shows their share). Here each statement's text is
worked out once from the model's metadata by Django's own parts (quoting, the
database's clock, the upsert's syntax, the converters of the returned columns);
each call then only prepares its parameters as the fields would.

Those parts are Django's internals (``get_converters``, ``_state``,
``on_conflict_suffix_sql``), kept because they pay where users look: against the ORM
built on each call, drained orders/s +19 % and poll req/s +10-17 % (docs/performance.md,
"Framework internals kept, and why"; ``python -m benchmarks.internals``). A Django
release may change them, so ``tests/test_models.py`` compares every statement here
with the ORM's own (rows stored, instances loaded, types) on each Django the test
matrix runs.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from django.db import NotSupportedError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.constants import OnConflict
from django.db.models.expressions import Col
from django.db.models.functions import Now
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import Query

if TYPE_CHECKING:
    from async_orders.models import Order

#: A column's position in the row, its converters and the column, as
#: ``SQLCompiler.get_converters`` gives them.
Positioned = tuple[int, tuple[list[Any], Col]]


@dataclass(frozen=True)
class RowReader:
    """How the columns a statement returns become an order: Django's converters for
    them (JSON, and on SQLite datetimes and UUIDs), then ``from_db``. Threads share it;
    the converters it looks up are kept per connection, since a backend's converters
    may belong to the connection that asked for them."""

    model: type[Order]
    query: Query
    columns: list[Col]
    _converters: WeakKeyDictionary[BaseDatabaseWrapper, list[Positioned]] = dataclasses.field(
        default_factory=WeakKeyDictionary, compare=False, repr=False
    )

    @classmethod
    def of(cls, model: type[Order], fields: Sequence[Field]) -> RowReader:
        columns = [field.get_col(model._meta.db_table) for field in fields]
        return cls(model, model._default_manager.all().query, columns)

    @cached_property
    def attnames(self) -> list[str]:
        return [column.target.attname for column in self.columns]

    def one(self, connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> Order | None:
        """Run ``sql`` and read the row it returns, if any."""
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else self.instance(row, connection)

    def instance(self, row: Sequence[Any], connection: BaseDatabaseWrapper) -> Order:
        """The order ``row`` holds, its columns converted as a queryset would convert them."""
        values = list(row)
        for position, (converters, column) in self._converters_on(connection):
            for converter in converters:
                values[position] = converter(values[position], column, connection)
        return self.model.from_db(connection.alias, self.attnames, values)

    def _converters_on(self, connection: BaseDatabaseWrapper) -> list[Positioned]:
        """The compiler's converters of the columns, asked once per connection: asking
        them costs more than the rest of reading a row."""
        converters = self._converters.get(connection)
        if converters is None:
            compiler = self.query.get_compiler(connection=connection)
            converters = list(compiler.get_converters(self.columns).items())
            self._converters[connection] = converters
        return converters


@dataclass(frozen=True)
class Limit:
    """A condition an INSERT checks in the same statement: fewer than ``most`` rows
    whose field ``equal[0]`` is ``equal[1]`` and whose field ``among[0]`` is one of
    ``among[1]`` (``filter(a=x, b__in=ys).count() < most``)."""

    equal: tuple[str, Any]
    among: tuple[str, Sequence[Any]]
    most: int

    @property
    def shape(self) -> tuple[str, str, int]:
        """What its SQL depends on: the two fields, and how many values ``among`` lists."""
        return self.equal[0], self.among[0], len(self.among[1])

    def params(self, model: type[Model], connection: BaseDatabaseWrapper) -> list[Any]:
        fields = _fields_by_name(model)
        (name, value), (listed, values) = self.equal, self.among
        return [
            fields[name].get_db_prep_value(value, connection),
            *(fields[listed].get_db_prep_value(item, connection) for item in values),
            self.most,
        ]


def insert_row(instance: Model, below: Limit | None = None) -> bool:
    """INSERT the new ``instance`` as ``save()`` would: each field's ``pre_save`` and
    preparation, the ``pre_save`` and ``post_save`` signals (metrics count placed
    orders by the latter), the instance marked as saved. Its primary key must have a
    default (a UUID): nothing is read back. With a ``below`` limit, the row is inserted
    only if the limit holds, counted by the INSERT itself; whether it was inserted."""
    model = type(instance)
    connection = connections[router.db_for_write(model, instance=instance)]
    using = connection.alias
    pre_save.send(sender=model, instance=instance, raw=False, using=using, update_fields=None)
    fields = model._meta.local_concrete_fields
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    pairs = zip(fields, values, strict=True)
    placeholders = tuple(_placeholder(field, value, connection) for field, value in pairs)
    if below is not None:
        values += below.params(model, connection)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, using, placeholders, below and below.shape), values)
        if cursor.rowcount != 1:
            return False
    instance._state.adding, instance._state.db = False, using
    post_save.send(
        sender=model, instance=instance, created=True, update_fields=None, raw=False, using=using
    )
    return True


@lru_cache(maxsize=16)
def _insert_sql(
    model: type[Model],
    alias: str,
    placeholders: tuple[str, ...],
    limit: tuple[str, str, int] | None,
) -> str:
    """``INSERT INTO table (columns) SELECT values [WHERE (SELECT COUNT(*) ...) < most]``:
    a SELECT without FROM, which PostgreSQL and SQLite take, typed by the columns."""
    connection = connections[alias]
    quote, table = connection.ops.quote_name, connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(quote(field.column) for field in model._meta.local_concrete_fields)
    sql = f"INSERT INTO {table} ({columns}) SELECT {', '.join(placeholders)}"
    if limit is None:
        return sql
    equal, among, count = limit
    column = _quoted_columns(model, connection)
    return (
        f"{sql} WHERE (SELECT COUNT(*) FROM {table} WHERE {column[equal]} = %s "
        f"AND {column[among]} IN ({', '.join(['%s'] * count)})) < %s"
    )


def upsert_row(instance: Model, unique: str, update: str) -> None:
    """INSERT ``instance``'s fields ``unique`` and ``update`` (one each), or, when a row
    with its ``unique`` value exists, set that row's ``update``: either way the row is
    then locked until the transaction ends. ``bulk_create(update_conflicts=True)``'s
    statement, written once."""
    model = type(instance)
    connection = connections[router.db_for_write(model, instance=instance)]
    fields = _fields_by_name(model)
    params = [
        fields[name].get_db_prep_save(getattr(instance, fields[name].attname), connection)
        for name in (unique, update)
    ]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(model, connection.alias, unique, update), params)


#: The first of the two keys of async_orders' PostgreSQL advisory locks: a key space
#: of their own, apart from any single-key advisory locks of the project.
ADVISORY_LOCK_SPACE = 0x4153_4F52


def advisory_lock(connection: BaseDatabaseWrapper, name: str) -> None:
    """Take PostgreSQL's advisory lock on ``name`` (its 32-bit hash, in
    :data:`ADVISORY_LOCK_SPACE`), held until the transaction ends. Two names that
    share a hash wait for each other; that only delays, as both then hold briefly."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [ADVISORY_LOCK_SPACE, name]
        )


@lru_cache(maxsize=16)
def _upsert_sql(model: type[Model], alias: str, unique: str, update: str) -> str:
    connection = connections[alias]
    if not connection.features.supports_update_conflicts:
        raise NotSupportedError(f"{connection.vendor} cannot update a row on conflict.")
    fields = _fields_by_name(model)
    columns = [fields[unique].column, fields[update].column]
    on_conflict = connection.ops.on_conflict_suffix_sql(
        [fields[unique], fields[update]], OnConflict.UPDATE, columns[1:], columns[:1]
    )
    quote = connection.ops.quote_name
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, columns))}) "
        f"VALUES (%s, %s) {on_conflict}"
    )


def claim_row(
    model: type[Order],
    pk: uuid.UUID | str,
    worker: str,
    now: datetime,
    running: str,
    startable: tuple[str, str],
) -> Order | None:
    """Move the order ``pk`` from one of the ``startable`` statuses to ``running`` if it
    is due at ``now``: one attempt more, its lease stamped by the database's clock,
    ``worker`` named; return it as it is then, or ``None`` if no row qualified."""
    connection = connections[router.db_for_write(model)]
    sql, reader = _claim_statement(model, connection.alias)
    at = _fields_by_name(model)["started_at"].get_db_prep_value(now, connection)
    pk_value = model._meta.pk.get_db_prep_value(pk, connection)
    return reader.one(connection, sql, [running, at, worker, pk_value, *startable, at])


@lru_cache(maxsize=1)
def claimed_fields(model: type[Order]) -> tuple[Field, ...]:
    """What a claim loads: every column but the stored response, which may be large."""
    return tuple(f for f in model._meta.concrete_fields if f.name != "response_body")


@lru_cache(maxsize=16)
def _claim_statement(model: type[Order], alias: str) -> tuple[str, RowReader]:
    """The claim's text on the database ``alias``, and how to read the row it returns."""
    connection = connections[alias]
    quote, table = connection.ops.quote_name, model._meta.db_table
    fields = claimed_fields(model)
    compiler = model._default_manager.all().query.get_compiler(connection=connection)
    clock, clock_params = compiler.compile(Now())
    assert not clock_params, "the database's clock takes no parameter"
    column = _quoted_columns(model, connection).__getitem__

    def qualified(name: str) -> str:
        return f"{quote(table)}.{column(name)}"

    sql = (
        f"UPDATE {quote(table)} SET {column('status')} = %s, {column('started_at')} = %s, "
        f"{column('heartbeat_at')} = {clock}, {column('attempts')} = {qualified('attempts')} + 1, "
        f"{column('worker')} = %s "
        f"WHERE {qualified('id')} = %s AND {qualified('status')} IN (%s, %s) "
        f"AND ({qualified('run_at')} IS NULL OR {qualified('run_at')} <= %s) "
        f"RETURNING {', '.join(quote(field.column) for field in fields)}"
    )
    return sql, RowReader.of(model, fields)


def update_attempt(
    model: type[Order],
    pk: uuid.UUID | str,
    attempt: int,
    running: str,
    changes: dict[str, Any],
    *,
    unless_canceled: bool = False,
) -> bool:
    """Write ``changes`` (plain values, no expressions) to the order ``pk`` if it is
    still ``running`` this ``attempt`` (and, ``unless_canceled``, was not asked to
    cancel); whether it was. An attempt's outcome and its progress writes."""
    connection = connections[router.db_for_write(model)]
    sql, params = _attempt_update(model, connection, pk, attempt, running, changes, unless_canceled)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def _attempt_update(
    model: type[Order],
    connection: BaseDatabaseWrapper,
    pk: uuid.UUID | str,
    attempt: int,
    running: str,
    changes: dict[str, Any],
    unless_canceled: bool,
) -> tuple[str, list[Any]]:
    """:func:`update_attempt`'s statement and its parameters."""
    fields = _fields_by_name(model)
    values = [fields[name].get_db_prep_save(v, connection) for name, v in changes.items()]
    params = [*values, model._meta.pk.get_db_prep_value(pk, connection), running, attempt]
    if unless_canceled:
        params.append(fields["cancel_requested"].get_db_prep_value(False, connection))
    assignments = tuple(
        (name, _placeholder(fields[name], value, connection)) for name, value in changes.items()
    )
    return _update_attempt_sql(model, connection.alias, assignments, unless_canceled), params


def end_attempt(
    model: type[Order],
    pk: uuid.UUID | str,
    attempt: int,
    running: str,
    changes: dict[str, Any],
    row: Model,
) -> bool:
    """:func:`update_attempt` for the write that ends an attempt, and the INSERT of
    that attempt's ``row`` (:mod:`async_orders.attempts`) if, and only if, the UPDATE
    won. On PostgreSQL one statement (``WITH moved AS (UPDATE ... RETURNING) INSERT
    ... SELECT ... FROM moved``): a history costs the worker no round trip more. On
    databases without data-modifying ``WITH`` (SQLite), the INSERT follows in the
    same transaction."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=connection.alias):
            won = update_attempt(model, pk, attempt, running, changes)
            if won:
                row.save(force_insert=True, using=connection.alias)
            return won
    update, params = _attempt_update(model, connection, pk, attempt, running, changes, False)
    inserted = [f for f in type(row)._meta.local_concrete_fields if f is not type(row)._meta.pk]
    row_values = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in inserted]
    row_placeholders = tuple(
        _placeholder(f, v, connection) for f, v in zip(inserted, row_values, strict=True)
    )
    sql = _end_attempt_sql(model, type(row), connection.alias, update, row_placeholders)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *row_values])
        return cursor.rowcount == 1


@lru_cache(maxsize=64)
def _end_attempt_sql(
    model: type[Order],
    row_model: type[Model],
    alias: str,
    update: str,
    placeholders: tuple[str, ...],
) -> str:
    quote = connections[alias].ops.quote_name
    columns = ", ".join(
        quote(f.column)
        for f in row_model._meta.local_concrete_fields
        if f is not row_model._meta.pk
    )
    returning = quote(model._meta.pk.column)
    return (
        f"WITH moved AS ({update} RETURNING {returning}) "
        f"INSERT INTO {quote(row_model._meta.db_table)} ({columns}) "
        f"SELECT {', '.join(placeholders)} FROM moved"
    )


def _placeholder(field: Field, value: Any, connection: BaseDatabaseWrapper) -> str:
    """``%s``, or what the field asks for instead (a binary field, on some databases)."""
    custom = getattr(field, "get_placeholder", None)
    return "%s" if custom is None else custom(value, None, connection)


@lru_cache(maxsize=64)
def _update_attempt_sql(
    model: type[Order],
    alias: str,
    assignments: tuple[tuple[str, str], ...],
    unless_canceled: bool,
) -> str:
    """One text per database and set of (column, placeholder) written: an order's
    outcomes and progress writes write a few."""
    connection = connections[alias]
    quote, table = connection.ops.quote_name, model._meta.db_table
    columns = _quoted_columns(model, connection)
    values = ", ".join(f"{columns[name]} = {placeholder}" for name, placeholder in assignments)
    sql = (
        f"UPDATE {quote(table)} SET {values} WHERE {columns['id']} = %s "
        f"AND {columns['status']} = %s AND {columns['attempts']} = %s"
    )
    return f"{sql} AND {columns['cancel_requested']} = %s" if unless_canceled else sql


def _quoted_columns(model: type[Model], connection: BaseDatabaseWrapper) -> dict[str, str]:
    """Each field's column, quoted for ``connection``, by field name."""
    quote = connection.ops.quote_name
    return {name: quote(field.column) for name, field in _fields_by_name(model).items()}


@lru_cache(maxsize=8)
def _fields_by_name(model: type[Model]) -> dict[str, Field]:
    return {field.name: field for field in model._meta.concrete_fields}
