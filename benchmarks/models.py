"""The baseline's table: one row per plain DRF create, looked up by UUID."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Row(models.Model):
    """About as much as an order's client would send, stored the plain way."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name
