"""The test project's schema documents only async_orders' endpoints: the contract
that the fuzzing tests check. The test views behind them are not part of it."""

from __future__ import annotations

from typing import Any


def only_async_orders(endpoints: list[tuple[str, Any, str, Any]]) -> list[Any]:
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/async/")]
