"""Conflict locks: keys an active order holds so that two operations on the same
objects never overlap, and the same keys for code that runs outside orders.

A lock is a row whose primary key is the lock key, so a second holder's INSERT
fails at the database, whatever the timing and however many web processes race.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction

from async_orders.models import Order, OrderLock


class Locked(Exception):
    """A key is held: by ``order``, or by synchronous code when ``order`` is None."""

    def __init__(self, order: Order | None) -> None:
        self.order = order
        holder = f"order {order.pk}" if order else "another operation"
        super().__init__(f"Locked by {holder}.")


#: Longest key stored as it is; a longer one is stored as a digest of itself.
MAX_KEY_LENGTH = 200


def lock_key(view_name: str, **kwargs: Any) -> str:
    """The default key of an order of ``view_name`` with URL ``kwargs``; synchronous
    code that touches the same object computes the same key to check or take it.

    Values are taken as text, as they appear in the URL, so ``pk=5`` and ``pk="5"``
    are one key; a key too long for the lock table is replaced by its SHA-256.
    """
    values = {name: str(value) for name, value in kwargs.items()}
    key = f"{view_name}:{json.dumps(values, sort_keys=True)}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{view_name[:100]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def blocking_order(keys: Iterable[str]) -> Order | None:
    """The order holding any of ``keys``; None when free or held by synchronous code."""
    lock = OrderLock.objects.filter(key__in=list(keys)).select_related("order").first()
    return lock.order if lock else None


def is_locked(*keys: str) -> bool:
    """Whether any of ``keys`` is held right now."""
    return OrderLock.objects.filter(key__in=keys).exists()


def take(order: Order | None, keys: Iterable[str]) -> None:
    """Insert the lock rows; raise :class:`Locked` naming the holder if one is taken."""
    keys = list(keys)
    try:
        with transaction.atomic():
            OrderLock.objects.bulk_create([OrderLock(key=key, order=order) for key in keys])
    except IntegrityError:
        raise Locked(blocking_order(keys)) from None


@contextmanager
def hold(*keys: str) -> Iterator[None]:
    """Hold ``keys`` for the block, for code outside orders (a model's ``save``, a form).

    Orders that would take one of them are refused with 409 meanwhile; if one is
    held already, :class:`Locked` is raised. The rows live in the block's
    transaction: another process taking the same key waits for it to end.
    """
    with transaction.atomic():
        take(None, keys)
        try:
            yield
        finally:
            OrderLock.objects.filter(key__in=keys, order=None).delete()
