"""Orders in a given state, made the way the endpoints make them."""

from __future__ import annotations

from typing import Any

from async_orders.envelope import parse_envelope
from async_orders.models import Order
from async_orders.ownership import requester_key
from async_orders.placing import place_order
from async_orders.registry import find_endpoint


def make_order(view_name: str = "echo", owner: Any = None, **envelope: Any) -> Order:
    """A queued order for ``view_name``, validated like a POST (not published in tests
    that roll back, since publishing waits for the commit)."""
    endpoint = find_endpoint(view_name)
    assert endpoint is not None, view_name
    order, _ = place_order(
        parse_envelope(endpoint, envelope),
        owner,
        origin="http://testserver",
        requester=requester_key(owner, None),
    )
    return order
