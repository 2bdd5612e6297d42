"""Signing in keeps an anonymous session's orders: they become the user's.

Django gives a session a new key when its user signs in, and an anonymous order is
owned by its session's key: without this, the orders a visitor placed before signing
in would vanish from their listing and answer 404. The session remembers the
requester its orders were placed as (:func:`~async_orders.ownership.remember_session_requester`);
the receiver here re-owns them when that session signs in.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from async_orders.models import Order
from async_orders.ownership import SESSION_REQUESTER, requester_key


@receiver(user_logged_in, dispatch_uid="async_orders.handover")
def hand_session_orders_to_user(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    requester = session.pop(SESSION_REQUESTER, None) if session is not None else None
    if requester:
        Order.objects.filter(requester=requester).update(requester=requester_key(user, None))
