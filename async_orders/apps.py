from __future__ import annotations

from django.apps import AppConfig


class AsyncOrdersConfig(AppConfig):
    name = "async_orders"
    verbose_name = "Async orders"

    def ready(self) -> None:
        from async_orders import checks  # noqa: F401  (registers the system checks)
