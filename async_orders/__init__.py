"""async_orders: run any opted-in Django view as a long-running, pollable order.

The public API: :func:`schedulable` opts a view in; inside a view running as an
order, :func:`fail_on_error`, :class:`ProgressItems` and :func:`current_order`.

These names are loaded on first use (PEP 562), not on ``import async_orders``: the
package's Django-free modules, :mod:`async_orders.client` (the ``async_orders_client``
package re-exported, which needs ``requests`` only) and :mod:`async_orders.signing`
(standard library only), must import where Django is not installed, and every
``import async_orders.<module>`` runs this file first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Type checkers and IDEs see the names as if imported eagerly.
    from async_orders.progress import ProgressItems, current_order, fail_on_error
    from async_orders.registry import schedulable

__all__ = ["ProgressItems", "current_order", "fail_on_error", "schedulable"]
__version__ = "0.1.0.dev0"

# Each public name and the module that defines it.
_HOMES = {
    "ProgressItems": "async_orders.progress",
    "current_order": "async_orders.progress",
    "fail_on_error": "async_orders.progress",
    "schedulable": "async_orders.registry",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the name here, so
    later lookups are plain attribute reads."""
    home = _HOMES.get(name)
    if home is None:
        # AttributeError (not ImportError) also lets ``from async_orders import
        # <submodule>`` fall through to importing the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names plus the lazy ones, which exist before their first use."""
    return sorted({*globals(), *__all__})
