"""The no-op both sides of the worker benchmarks call: an order's view and a raw task."""

from __future__ import annotations


def noop() -> dict[str, bool]:
    """Nothing to do, so what is measured is the machinery around it."""
    return {"ok": True}
