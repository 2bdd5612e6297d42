"""The ``ASYNC_ORDERS`` settings, read through one object with documented defaults.

Each property reads ``django.conf.settings`` on access, so ``override_settings`` in
tests and settings changed at start-up are always seen; nothing is cached here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

#: Every key of ``ASYNC_ORDERS`` with its default; the settings reference in the
#: docs and the system checks are written against this dict.
DEFAULTS: dict[str, Any] = {
    "SCHEDULABLE_VIEWS": [],
    "RETRY_AFTER": 1,
    "PROGRESS_INTERVAL": 0.5,
    "QUEUE": None,
}


class Settings:
    """Typed access to ``settings.ASYNC_ORDERS`` with :data:`DEFAULTS` filled in."""

    def _get(self, name: str) -> Any:
        return getattr(django_settings, "ASYNC_ORDERS", {}).get(name, DEFAULTS[name])

    @property
    def SCHEDULABLE_VIEWS(self) -> list[str]:
        """URL names opted in without the decorator, for views you cannot edit."""
        return list(self._get("SCHEDULABLE_VIEWS"))

    @property
    def RETRY_AFTER(self) -> int:
        """Seconds a polling client is told to wait (``Retry-After``) while an order is active."""
        return int(self._get("RETRY_AFTER"))

    @property
    def PROGRESS_INTERVAL(self) -> float:
        """Least seconds between two progress writes of one order, so loops stay cheap."""
        return float(self._get("PROGRESS_INTERVAL"))

    @property
    def QUEUE(self) -> str | None:
        """Celery queue the order task is sent to; ``None`` means Celery's default queue."""
        return self._get("QUEUE")


conf = Settings()
