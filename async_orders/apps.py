from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class AsyncOrdersConfig(AppConfig):
    name = "async_orders"
    verbose_name = "Async orders"
    # What the shipped migrations created (0005's WebhookDelivery.id): pinned here so
    # the host's DEFAULT_AUTO_FIELD never makes makemigrations write into the package.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, the signal receivers (the workers' presence
        # among them), the order tasks (which the broker wing finds by name) and the
        # webhook task.
        from async_orders import checks, handover, metrics, notify, tasks, webhooks  # noqa: F401
        from async_orders.worker import presence  # noqa: F401

        if getattr(settings, "TASKS", None):
            # django.tasks' signals for task orders, in every process that moves one
            # (web, worker, reconciler), and the receivers that move the orders of
            # tasks another backend's worker runs (in that worker);
            # ImproperlyConfigured on Django 5.2 without the django-tasks backport.
            from async_orders import task_results  # noqa: F401
            from async_orders.worker import following  # noqa: F401
