"""Orders in a given state, made the way the endpoints make them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from async_orders.conf import conf
from async_orders.envelope import parse_envelope
from async_orders.models import Order, ProcessLease
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


def dead_worker(name: str = "worker:celery@gone:1") -> str:
    """A worker's presence lease, silent for longer than ``WORKER_LOST_AFTER``: the
    reconciler's next pass takes that worker for dead. Returns the lease's name."""
    silent = timezone.now() - timedelta(seconds=conf.WORKER_LOST_AFTER + 1)
    ProcessLease.objects.create(name=name, holder="w", renewed_at=silent, since=silent)
    return name
