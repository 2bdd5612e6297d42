"""The claim of an order as one SQL statement, written once per database connection.

Every order goes through its claim, so what the claim costs a worker counts: built
through the ORM (filters, expressions, compilation) it took about 0.7 ms of Python,
against 0.09 ms for the database to run it (``python -m benchmarks.profile execute``
shows the claim's share). Here the statement's text is worked
out once from the model's metadata by Django's own compiler parts (quoting, the
database's clock, the converters of the returned columns); each claim then only
prepares its parameters as the fields would, and converts the row it gets back.
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

    columns = {field.name: quote(field.column) for field in model._meta.concrete_fields}

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
