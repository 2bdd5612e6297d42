"""The order a log record was emitted for: ``order_id``, ``view`` and ``attempt``.

Placing, executing and reconciling an order set these fields in a context variable
for as long as they work on it; :class:`OrderContextFilter`, installed on a logging
handler, copies them onto every record that handler sees. So a view's own log lines
carry its order too, whatever logger they use, with no logger of ours to wrap.
Standard library only: the fields are values, so this module imports no Django.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from async_orders.models import Order


@dataclass(frozen=True)
class OrderFields:
    """The fields a record gets; ``None`` outside an order (``null`` in JSON)."""

    order_id: str | None = None
    view: str | None = None
    attempt: int | None = None

    @classmethod
    def of(cls, order: Order) -> OrderFields:
        return cls(str(order.pk), order.view_name, order.attempts)


#: The fields of the order the running code works on; none outside an order.
NO_ORDER = OrderFields()
_fields: ContextVar[OrderFields] = ContextVar("async_orders_log_fields", default=NO_ORDER)


@contextmanager
def about(order: Order | None = None, *, view: str | None = None) -> Iterator[None]:
    """Give the records of the block ``order``'s fields (or only its ``view``, before
    the order exists: :func:`now_about` names the order once it does)."""
    token = _fields.set(OrderFields.of(order) if order else OrderFields(view=view))
    try:
        yield
    finally:
        _fields.reset(token)


def now_about(order: Order) -> None:
    """Inside an :func:`about` block, name the order it turned out to be about; the
    block's end restores what was before it."""
    _fields.set(OrderFields.of(order))


class OrderContextFilter(logging.Filter):
    """Adds ``order_id``, ``view`` and ``attempt`` to each record; drops nothing.

    Install it on handlers (``"filters": [...]`` in ``LOGGING``), not on loggers: a
    logger's filters do not see the records that propagate to it from its children.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _fields.get()
        record.order_id = fields.order_id
        record.view = fields.view
        record.attempt = fields.attempt
        return True
