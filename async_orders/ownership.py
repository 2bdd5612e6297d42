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
#: Canceling and re-running the orders of others take their own: seeing is not acting.
CANCEL_PERMISSION = "async_orders.cancel_order"
RERUN_PERMISSION = "async_orders.rerun_order"

#: ``Order.requester`` of anonymous orders placed without a session.
ANONYMOUS = "anonymous"

#: ``Order.requester`` of task orders enqueued in code (``some_task.enqueue()``): no
#: request placed them, so nobody owns them. Unlike an anonymous order, holding the
#: URL is not enough to see one: only holders of ``view_order`` do (a task enqueued
#: by the application may carry what no client should read), and no cap counts them.
ENQUEUED = "enqueued"

#: Requesters with no identity to cap or to list by.
UNCOUNTED = frozenset({ANONYMOUS, ENQUEUED})

#: The session key under which an anonymous session keeps the requester its orders
#: were placed as: signing in gives the session a new key, but keeps its data.
SESSION_REQUESTER = "async_orders_requester"


def requester_key(user: Any, session_key: str | None) -> str:
    """Who placed an order, as one string: the scope of ownership, idempotency keys
    and the active-orders cap. Anonymous requests with a session are told apart by it."""
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"session:{session_key}" if session_key else ANONYMOUS


def visible_requesters(user: Any, session_key: str | None) -> set[str] | None:
    """Whose orders this requester may see; ``None`` for all of them: a user with the
    ``async_orders.view_order`` permission, as in the admin (``is_staff`` alone is not
    enough: staff see in the admin only what they are permitted to).

    An anonymous order placed without a session has no owner to check: whoever
    holds its unguessable URL (and has no account) may see it.
    """
    if may_see_everyones(user):
        return None
    mine = requester_key(user, session_key)
    if user is not None and user.is_authenticated:
        return {mine}
    return {mine, ANONYMOUS}


def may_see(requester: str, user: Any, session_key: str | None) -> bool:
    """Whether this caller may see what ``requester`` placed (an order, a batch). Its
    owner is told first: that needs no permission lookup, which costs queries."""
    if requester != ANONYMOUS and requester == requester_key(user, session_key):
        return True
    requesters = visible_requesters(user, session_key)
    return requesters is None or requester in requesters


def listed_requesters(
    user: Any, session_key: str | None, *, everyone: bool = False
) -> set[str] | None:
    """Whose orders a listing shows: the caller's own, even for a user who may see
    everyone's (an operator's own list stays theirs); everyone's (``None``) only when
    ``everyone`` is asked for, by such a user. Nobody lists the orders that have no
    owner: their URL is their only key."""
    if everyone and may_see_everyones(user):
        return None
    return {requester_key(user, session_key)} - UNCOUNTED


def may_act_on(requester: str, user: Any, session_key: str | None, permission: str) -> bool:
    """Whether this requester may cancel or re-run (``permission``) an order placed by
    ``requester``: its owner may, and so may whoever holds the URL of an order without
    owner (and has no account), as for seeing it; anyone else only with ``permission``.
    ``view_order`` alone lets a user see others' orders, never change them."""
    if requester != ANONYMOUS and requester == requester_key(user, session_key):
        return True
    signed_in = user is not None and user.is_authenticated
    if requester == ANONYMOUS and not signed_in:
        return True
    return user is not None and user.has_perm(permission)


def may_see_everyones(user: Any) -> bool:
    return user is not None and user.has_perm(VIEW_PERMISSION)


def remember_session_requester(request: Any, requester: str) -> None:
    """Note in the request's session the requester an anonymous session placed an order
    as, so that signing in hands its orders to the user (:mod:`async_orders.handover`).
    Written once per session: the session is saved only the first time."""
    if requester.startswith("session:") and request.session.get(SESSION_REQUESTER) != requester:
        request.session[SESSION_REQUESTER] = requester
