"""Who owns an order and who may see it: the rules every order endpoint applies.

An order belongs to the requester that placed it (a user, else a session, else
nobody); ownership scopes idempotency keys and the active-orders cap too. Plain
values and functions of a user, so the model, the views and placing share them
without importing each other.
"""

from __future__ import annotations

from typing import Any

#: Seeing the orders of others takes this permission.
VIEW_PERMISSION = "async_orders.view_order"

#: ``Order.requester`` of anonymous orders placed without a session.
ANONYMOUS = "anonymous"


def requester_key(user: Any, session_key: str | None) -> str:
    """Who placed an order, as one string: the scope of ownership, idempotency keys
    and the active-orders cap. Anonymous requests with a session are told apart by it."""
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"session:{session_key}" if session_key else ANONYMOUS


def visible_requesters(
    user: Any, session_key: str | None, *, listing: bool = False
) -> set[str] | None:
    """Whose orders this requester may see; ``None`` for all of them: a user with the
    ``async_orders.view_order`` permission, as in the admin (``is_staff`` alone is not
    enough: staff see in the admin only what they are permitted to).

    An anonymous order placed without a session has no owner to check: whoever
    holds its unguessable URL (and has no account) may see it.
    """
    if user is not None and user.has_perm(VIEW_PERMISSION):
        return None
    mine = requester_key(user, session_key)
    if listing or (user is not None and user.is_authenticated):
        return {mine} - {ANONYMOUS}  # nobody lists the orders that have no owner
    return {mine, ANONYMOUS}
