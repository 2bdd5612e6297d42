"""A ``django.tasks`` task the demo orders over HTTP, beside its views.

Not called ``tasks.py``: Celery's ``autodiscover_tasks`` imports that name looking for
Celery tasks. ``demo/shop/urls.py`` imports this module, so that the web process
knows the task is orderable (a path a client sends is never imported).

    POST /async/tasks/demo.shop.jobs.count_toppings/order/  {"kwargs": {"pizzas": 20}}
"""

from __future__ import annotations

import time

from async_orders import ProgressItems, schedulable

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task

SECONDS_PER_PIZZA = 0.05


@schedulable
@task
def count_toppings(pizzas: int = 10) -> dict[str, int]:
    """Count the toppings of ``pizzas`` pizzas (three each), reporting progress."""
    toppings = 0
    for _ in ProgressItems(range(pizzas), message="Counting toppings"):
        time.sleep(SECONDS_PER_PIZZA)
        toppings += 3
    return {"pizzas": pizzas, "toppings": toppings}
