"""Bounding a publish: a short deadline, and a circuit breaker that stops trying for
a while after a publish failed, so that a broker outage costs one POST a short wait
instead of every POST the transport's own connect timeouts and retries (measured
before: about 6 s each while a Redis broker was down).

An order whose publish was cut short or skipped is committed already; its
``published_at`` is emptied and the reconciler sends it (:mod:`.publishing`). This
module knows nothing of orders: it runs a callable under a deadline and remembers,
per process, whether the broker failed lately.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable


class PublishSkipped(Exception):
    """The breaker is open: the broker failed lately, so no publish was tried."""


class PublishTimedOut(Exception):
    """The publish did not finish within its deadline (it may still finish later)."""


class Breaker:
    """Closed while publishes succeed. A failure opens it for ``open_seconds``, during
    which :meth:`allows` refuses at once; after that one trial publish goes through
    (half-open): its success closes the breaker, its failure opens it again. One per
    process, shared by its threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allows(self) -> bool:
        """Whether to try a publish now; in the half-open state, only the first caller."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._trial_running or self._clock() < self._open_until:
                return False
            self._trial_running = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = None
            self._trial_running = False

    def failed(self, open_seconds: float) -> None:
        with self._lock:
            self._open_until = self._clock() + open_seconds
            self._trial_running = False


def call_within(seconds: float, function: Callable[[], object], breaker: Breaker) -> None:
    """Run ``function`` on a thread of its own and wait at most ``seconds`` for it.

    A socket stuck on an unreachable broker cannot be interrupted from outside, so the
    publish is left to finish (or fail) on its thread: :class:`PublishTimedOut` is
    raised here, and the publish tells the breaker its outcome when it ends: a publish
    that gets through late closes the breaker again. The thread runs in a copy of the
    caller's context (log and trace context). Exceptions of ``function`` are raised
    here when they come within the deadline.
    """
    outcome: list[BaseException | None] = []

    def publish() -> None:
        try:
            function()
        except BaseException as error:  # handed to the waiting caller
            outcome.append(error)
        else:
            outcome.append(None)
            breaker.succeeded()

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(publish,), name="async-orders-publish")
    thread.daemon = True  # never keeps a process from exiting
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise PublishTimedOut(f"the broker did not take the message within {seconds:g}s")
    if (error := outcome[0]) is not None:
        raise error
