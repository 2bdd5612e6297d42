"""``django.tasks`` tasks of the test project, run as orders by ``OrderBackend``.

Not called ``tasks.py``: Celery's ``autodiscover_tasks`` imports that name looking
for Celery tasks; the worker imports these by their dotted paths.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from async_orders import ProgressItems, current_order, fail_on_error, schedulable
from async_orders.task_compat import TaskContext, task

#: Calls of :func:`flaky`, by key: its first call fails, the next succeeds.
CALLS: dict[str, int] = {}


@schedulable
@task
def add(a: int, b: int) -> int:
    return a + b


@task
def subtract(a: int, b: int) -> int:
    """Not opted in: orderable in code only, never over HTTP."""
    return a - b


@schedulable(locks=lambda envelope: [f"greeting:{envelope.kwargs.get('name')}"])
@task(takes_context=True)
def greet(context: TaskContext, name: str, punctuation: str | None = "!") -> dict[str, Any]:
    """Opted in, with a lock per name, and its context."""
    return {"greeting": f"Hello, {name}{punctuation or ''}", "attempt": context.attempt}


@schedulable
@task(backend="db")
def add_in_db(a: int, b: int) -> int:
    """Run by django-tasks-db's ``db_worker`` (the ``db`` backend): an order placed
    over HTTP follows its result."""
    return a + b


@schedulable
@task(backend="db")
def fail_in_db(message: str) -> None:
    raise ValueError(message)


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task(takes_context=True)
def introspect(context: TaskContext, label: str) -> dict[str, Any]:
    """What the task sees of itself: its context and the current order."""
    order = current_order()
    return {
        "label": label,
        "id": context.task_result.id,
        "attempt": context.attempt,
        "status": str(context.task_result.status),
        "order": str(order.pk) if order else None,
        "fencing": order.attempt if order else None,
    }


@task
async def async_double(number: int) -> int:
    return number * 2


@task
def count(items: int) -> int:
    return sum(1 for _ in ProgressItems(range(items), message="counting"))


@task
def count_slowly(items: int, gate: str) -> int:
    """Count ``items``, waiting before each for a file named after it under ``gate``."""
    done = 0
    for item in ProgressItems(range(items)):
        while not (Path(gate) / str(item)).exists():
            time.sleep(0.02)
        done += 1
    return done


@task
def broken(message: str) -> None:
    with fail_on_error(message):
        raise ValueError("the task's own words, for operators only")


@task
def returns_a_set() -> Any:
    return {1, 2}


@task(backend="retrying")
def flaky(key: str) -> str:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] == 1:
        raise ConnectionError("first call fails")
    return "second time lucky"


@task(queue_name="reports", priority=50)
def report() -> str:
    return "reported"


@task
def cancels_itself(items: int) -> int:
    """Ask for its own order's cancel, then count: the next checkpoint stops it."""
    order = current_order()
    assert order is not None
    type(order).objects.filter(pk=order.pk).update(cancel_requested=True)
    return sum(1 for _ in ProgressItems(range(items)))


@schedulable
@task(backend="immediate")
def add_at_once(a: int, b: int) -> int:
    """Run by Django's ImmediateBackend as it is enqueued."""
    return a + b


@schedulable
@task(backend="dummy")
def add_never(a: int, b: int) -> int:
    """Kept by Django's DummyBackend, which runs nothing and cannot drop a task."""
    return a + b


@schedulable
@task(backend="db")
def count_in_db(items: int) -> int:
    """Counts with ``ProgressItems`` in django-tasks-db's worker, where it reports on
    the order that follows it; fails as ``fail_on_error`` names it past 100 items."""
    with fail_on_error("Too many to count."):
        if items > 100:
            raise ValueError(items)
    return sum(1 for _ in ProgressItems(range(items), message="counting elsewhere"))
