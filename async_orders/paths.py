"""The paths of an order's own endpoints (its detail, its result, its attempts, its
batch), reversed once.

Every poll names the order's URL and every completed order its result's, so
``reverse()`` runs once per URLconf, script prefix and URL name, and each order's
path is that pattern with its id.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.urls import get_resolver, get_script_prefix, get_urlconf, reverse

DETAIL = "async_orders:order-detail"
RESULT = "async_orders:order-result"
BATCH = "async_orders:batch-detail"
ATTEMPTS = "async_orders:order-attempts"


def order_path(order_id: uuid.UUID, name: str = DETAIL) -> str:
    """``reverse(name, kwargs={"pk": order_id})``, of :data:`DETAIL`, :data:`RESULT`
    or :data:`ATTEMPTS` (or :data:`BATCH`, with a batch's id)."""
    resolver, prefix = get_resolver(get_urlconf()), get_script_prefix()
    return _pattern(resolver, prefix, name).format(order_id)


def path_pattern(name: str = DETAIL) -> str:
    """The path of ``name`` with ``{}`` where the id goes: to name many orders (a
    batch's) for the cost of one lookup."""
    return _pattern(get_resolver(get_urlconf()), get_script_prefix(), name)


@functools.lru_cache(maxsize=16)
def _pattern(resolver: Any, script_prefix: str, name: str) -> str:
    placeholder = uuid.UUID(int=0)
    path = reverse(name, kwargs={"pk": placeholder})
    return path.replace(str(placeholder), "{}")
