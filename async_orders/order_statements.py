"""The two statements every order costs a worker, its claim and its outcome, each
written once per database connection.

Every order goes through both, so what they cost a worker counts: built through the
ORM (filters, expressions, compilation) the claim took about 0.7 ms of Python and
the outcome 0.2 ms, against 0.09 ms for the database to run either
(``python -m benchmarks.profile execute`` shows their share). Here each statement's
text is worked out once from the model's metadata by Django's own parts (quoting,
the database's clock, the converters of the returned columns); each call then only
prepares its parameters as the fields would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.db.models.functions import Now

if TYPE_CHECKING:
    from async_orders.models import Order


@dataclass(frozen=True)
class ClaimStatement:
    """The claim's SQL for one connection, and how to read the row it returns."""

    sql: str
    fields: tuple[Field, ...]
    converters: dict[int, tuple[list[Any], Any]]
    compiler: Any

    def row_values(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self.converters:
            return row
        return next(iter(self.compiler.apply_converters([row], self.converters)))


def claim_row(
    model: type[Order],
    pk: uuid.UUID | str,
    worker: str,
    now: datetime,
    statuses: tuple[str, str, str],
) -> Order | None:
    """Move the order ``pk`` from ``statuses[1:]`` (startable) to ``statuses[0]`` if it
    is due at ``now``: one attempt more, its lease stamped by the database's clock,
    ``worker`` named; return it as it is then, or ``None`` if no row qualified."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    statement = _statement(model, connection)
    running, *startable = statuses
    pk_field, started_at = model._meta.pk, model._meta.get_field("started_at")
    params = [
        running,
        started_at.get_db_prep_value(now, connection),
        worker,
        pk_field.get_db_prep_value(pk, connection),
        *startable,
        started_at.get_db_prep_value(now, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    names = [field.attname for field in statement.fields]
    return model.from_db(alias, names, statement.row_values(row))


@lru_cache(maxsize=1)
def claimed_fields(model: type[Order]) -> tuple[Field, ...]:
    """What a claim loads: every column but the stored response, which may be large."""
    return tuple(f for f in model._meta.concrete_fields if f.name != "response_body")


@lru_cache(maxsize=16)
def _statement(model: type[Order], connection: BaseDatabaseWrapper) -> ClaimStatement:
    """Worked out once per connection (each thread has its own): the text, and the
    converters bound to that connection."""
    quote, table = connection.ops.quote_name, model._meta.db_table
    fields = claimed_fields(model)
    compiler = model._default_manager.none().query.get_compiler(connection=connection)
    clock, clock_params = compiler.compile(Now())
    assert not clock_params, "the database's clock takes no parameter"

    columns = _quoted_columns(model, connection)

    def column(name: str) -> str:
        return columns[name]

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
    returned = [field.get_col(table) for field in fields]
    return ClaimStatement(sql, fields, compiler.get_converters(returned), compiler)


def outcome_row(
    model: type[Order], pk: uuid.UUID | str, attempt: int, running: str, changes: dict[str, Any]
) -> bool:
    """Write ``changes`` (plain values, no expressions) to the order ``pk`` if it is
    still ``running`` this ``attempt``; whether it was."""
    connection = connections[router.db_for_write(model)]
    fields = _fields_by_name(model)
    values = [fields[name].get_db_prep_save(v, connection) for name, v in changes.items()]
    params = [*values, model._meta.pk.get_db_prep_value(pk, connection), running, attempt]
    assignments = tuple(
        (name, _placeholder(fields[name], value, connection)) for name, value in changes.items()
    )
    with connection.cursor() as cursor:
        cursor.execute(_outcome_sql(model, connection, assignments), params)
        return cursor.rowcount == 1


def _placeholder(field: Field, value: Any, connection: BaseDatabaseWrapper) -> str:
    """``%s``, or what the field asks for instead (a binary field, on some databases)."""
    custom = getattr(field, "get_placeholder", None)
    return "%s" if custom is None else custom(value, None, connection)


@lru_cache(maxsize=64)
def _outcome_sql(
    model: type[Order], connection: BaseDatabaseWrapper, assignments: tuple[tuple[str, str], ...]
) -> str:
    """One text per connection and set of (column, placeholder) written: an order's
    outcomes write a few."""
    quote, table = connection.ops.quote_name, model._meta.db_table
    columns = _quoted_columns(model, connection)
    values = ", ".join(f"{columns[name]} = {placeholder}" for name, placeholder in assignments)
    return (
        f"UPDATE {quote(table)} SET {values} WHERE {columns['id']} = %s "
        f"AND {columns['status']} = %s AND {columns['attempts']} = %s"
    )


def _quoted_columns(model: type[Order], connection: BaseDatabaseWrapper) -> dict[str, str]:
    """Each field's column, quoted for ``connection``, by field name."""
    quote = connection.ops.quote_name
    return {name: quote(field.column) for name, field in _fields_by_name(model).items()}


@lru_cache(maxsize=1)
def _fields_by_name(model: type[Order]) -> dict[str, Field]:
    return {field.name: field for field in model._meta.concrete_fields}
