"""How a request waits for an order to change: holding no database connection, and
only while there is room for it.

Long-polls (:mod:`async_orders.views.longpoll`) and event streams (:mod:`async_orders.views.events`)
both *follow* an order: read it, send something or not, wait for the next change
(:mod:`async_orders.notify`), read it again. What to do after each read is decided by
a :class:`Follower`, which does no I/O; :func:`follow` and :func:`afollow` are the
blocking and asyncio shells that read and wait for it.

- **No connection while waiting.** Every read runs in :func:`released`, which closes
  the thread's database connections afterwards; a thousand waiters cost the database
  nothing between changes, and one short connection per change each.
- **Room to wait.** :data:`room` counts waiters per process and per client. A waiter
  that holds a thread (WSGI) counts against ``LONG_POLL_MAX_WAITERS_PER_PROCESS``, one
  that is a coroutine (ASGI) against ``LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS``, and
  both against ``LONG_POLL_MAX_WAITERS_PER_CLIENT``. A request refused a place is
  answered at once, as a plain poll: it never queues behind the waiters.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

from async_orders.conf import conf
from async_orders.notify import alistening, listening
from async_orders.signals import waiters_changed
from async_orders.views.headers import client_address

P = ParamSpec("P")
R = TypeVar("R")


#: Most reads of waiting requests that run at once in one process, each on a database
#: connection of its own: a thousand waiters arriving (or woken) together queue for
#: these instead of opening a thousand connections, and ordinary requests still find
#: the database. A read is one indexed primary-key SELECT, so the queue moves fast.
MAX_CONCURRENT_READS = 8

_reads = threading.BoundedSemaphore(MAX_CONCURRENT_READS)


def release_connections() -> None:
    """Close this thread's database connections, so that waiting holds none.

    A connection inside a transaction (``ATOMIC_REQUESTS``, a test's transaction) is
    left alone: closing it would lose the transaction's work.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def released(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, run among at most :data:`MAX_CONCURRENT_READS` of its kind, with
    the thread's database connections closed once it returns.

    Sync code only: under ASGI it runs in the request's thread, which may block on the
    semaphore; the event loop never does.
    """

    @wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with _reads:
            try:
                return function(*args, **kwargs)
            finally:
                release_connections()

    return call


@dataclass(frozen=True)
class Waiter:
    """Who would wait, as the caps count it."""

    #: ``user:<pk>`` for a signed-in user, else ``ip:<address>``: anonymous sessions
    #: are free to make, so they do not tell clients apart here.
    client: str
    #: Waiting holds a thread (WSGI), rather than being a coroutine (ASGI).
    blocking: bool
    #: A single-threaded server (gunicorn's sync workers): one waiter would stop it.
    alone: bool = False

    @classmethod
    def of(cls, request: Any, *, blocking: bool) -> Waiter:
        """The waiter of a request DRF has authenticated (its ``user`` is set, no query)."""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            client = f"user:{user.pk}"
        else:
            client = f"ip:{client_address(request)}"
        return cls(client, blocking, alone=request.META.get("wsgi.multithread") is False)

    def process_cap(self) -> int:
        if not self.blocking:
            return conf.LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS
        return 0 if self.alone else conf.LONG_POLL_MAX_WAITERS_PER_PROCESS


class WaitingRoom:
    """The waiters of this process, per kind and per client; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # brief, never held across a wait: fine in asyncio
        self._waiting: Counter[tuple[str, Any]] = Counter()

    @contextmanager
    def admit(self, waiter: Waiter) -> Iterator[bool]:
        """Whether ``waiter`` may wait; its place is kept until the block ends."""
        admitted = self._enter(waiter)
        if admitted:
            waiters_changed.send(sender=WaitingRoom, blocking=waiter.blocking, delta=1)
        try:
            yield admitted
        finally:
            if admitted:
                self._leave(waiter)
                waiters_changed.send(sender=WaitingRoom, blocking=waiter.blocking, delta=-1)

    def waiting(self, *, blocking: bool) -> int:
        """How many waiters of that kind wait in this process now."""
        return self._waiting[("process", blocking)]

    def _enter(self, waiter: Waiter) -> bool:
        keys = (("process", waiter.blocking), ("client", waiter.client))
        caps = (waiter.process_cap(), conf.LONG_POLL_MAX_WAITERS_PER_CLIENT)
        with self._lock:
            if any(self._waiting[key] >= cap for key, cap in zip(keys, caps, strict=True)):
                return False
            self._waiting.update(keys)
            return True

    def _leave(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiting.subtract((("process", waiter.blocking), ("client", waiter.client)))
            self._waiting += Counter()  # drop the zero counts: clients come and go


#: The one waiting room of this process.
room = WaitingRoom()


class Follower(Protocol):
    """What to do after each read of the order; it does no I/O of its own but the read."""

    def step(self) -> tuple[list[str], float | None]:
        """Read the order once: what to send now, and how many seconds to wait for the
        next change (``None``: stop following)."""


def follow(watched: Sequence[uuid.UUID | str], follower: Follower) -> Iterator[str]:
    """Follow the ``watched`` orders (one, or a batch's) in this thread: subscribe, then
    read, send, wait for a change of any, read again.

    Reading after subscribing means a change between the caller's last read and the
    subscription is never missed. The connection is closed after every read.
    """
    read = released(follower.step)
    with listening(*watched) as next_change:
        while True:
            chunks, pause = read()
            yield from chunks
            if pause is None:
                return
            next_change(pause)


async def afollow(watched: Sequence[uuid.UUID | str], follower: Follower) -> AsyncIterator[str]:
    """The asyncio shell of :func:`follow`: waiting holds no thread; reads run in the
    request's thread for sync code, whose connection is closed after each one."""
    read = sync_to_async(released(follower.step))
    async with alistening(*watched) as next_change:
        while True:
            chunks, pause = await read()
            for chunk in chunks:
                yield chunk
            if pause is None:
                return
            await next_change(pause)


def crowded(response: Any) -> Any:
    """A waiter refused a place gets the plain poll's answer, told when to come back
    (``304`` carries no ``Retry-After`` of its own)."""
    if not response.has_header("Retry-After"):
        response["Retry-After"] = str(conf.RETRY_AFTER)
    return response
