"""A URLconf with nothing schedulable in it."""

from __future__ import annotations

urlpatterns: list[object] = []
