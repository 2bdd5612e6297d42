"""Answers worked out from a Celery app's configuration once, not on every order.

Reading one Celery setting walks the chain of the app's configuration sources
(Django's settings among them): some 20 µs, and a worker would pay it twice per
order (the broker's URL for each notification). A function decorated with
:func:`read_once` keeps its answer per arguments instead. A Django
``setting_changed`` for a ``CELERY_`` setting (Celery reads those, and tests override
them) forgets every kept answer. A change made to ``app.conf`` directly, at run
time, is not seen: configure Celery before it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.signals import setting_changed
from django.dispatch import receiver

if TYPE_CHECKING:
    from functools import _lru_cache_wrapper

Answer = TypeVar("Answer")

_kept: list[_lru_cache_wrapper[Any]] = []


def read_once(function: Callable[..., Answer]) -> _lru_cache_wrapper[Answer]:
    """``function``, its answers kept per arguments until a ``CELERY_`` setting changes."""
    kept = lru_cache(maxsize=32)(function)
    _kept.append(kept)
    return kept


@receiver(setting_changed)
def _forget_answers(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CELERY_"):
        for kept in _kept:
            kept.cache_clear()
