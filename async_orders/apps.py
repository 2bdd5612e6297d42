from __future__ import annotations

from django.apps import AppConfig


class AsyncOrdersConfig(AppConfig):
    name = "async_orders"
    verbose_name = "Async orders"

    def ready(self) -> None:
        # Registers the system checks, the signal receivers and the webhook task.
        from async_orders import checks, notify, webhooks  # noqa: F401
