from __future__ import annotations

from django.conf import settings
from django.db import models


class Item(models.Model):
    """Something a DRF view creates, so orders can point at what they made."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )

    def __str__(self) -> str:
        return self.name


class Execution(models.Model):
    """One row per time a view body ran for an order: counts executions."""

    order_id = models.UUIDField(db_index=True)
    attempt = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.order_id} attempt {self.attempt}"
