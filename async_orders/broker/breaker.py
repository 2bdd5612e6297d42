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
import os
import queue
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


class Publishers:
    """Daemon threads that run the bounded publishes, started as needed and kept for
    the process's life: starting a thread per publish cost a POST about a third of
    its throughput (``benchmarks.http_throughput``, row 1: 183 req/s, against 287-316
    with kept threads and 293-336 unbounded). Daemons, so that a publish stuck on a
    cut link never keeps the process from exiting; one more is started whenever none
    is idle, so a stuck one holds up no other publish (the breaker keeps stuck ones
    few)."""

    def __init__(self) -> None:
        self._forget_threads()
        os.register_at_fork(after_in_child=self._forget_threads)

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                name = "async-orders-publish"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1

    def _forget_threads(self) -> None:
        """No thread yet: at start, and in a forked child (a prefork pool process, a
        preloading web server's worker), where none of the parent's threads run."""
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._idle = 0


#: This process's publishing threads.
PUBLISHERS = Publishers()


def call_within(seconds: float, function: Callable[[], object], breaker: Breaker) -> None:
    """Run ``function`` on a publishing thread and wait at most ``seconds`` for it.

    A socket stuck on an unreachable broker cannot be interrupted from outside, so the
    publish is left to finish (or fail) on its thread: :class:`PublishTimedOut` is
    raised here, and the publish tells the breaker its outcome when it ends: a publish
    that gets through late closes the breaker again. The thread runs in a copy of the
    caller's context (log and trace context). Exceptions of ``function`` are raised
    here when they come within the deadline.
    """
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def publish() -> None:
        try:
            function()
        except BaseException as error:  # handed to the waiting caller
            outcome.append(error)
        else:
            outcome.append(None)
            breaker.succeeded()
        finally:
            done.set()

    context = contextvars.copy_context()
    PUBLISHERS.submit(lambda: context.run(publish))
    if not done.wait(seconds):
        raise PublishTimedOut(f"the broker did not take the message within {seconds:g}s")
    if (error := outcome[0]) is not None:
        raise error
