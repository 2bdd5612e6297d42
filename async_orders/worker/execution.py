"""Running one order: claim it, call its view or task, record what happened.

This is what the Celery task does, without Celery: the task in :mod:`tasks` is a
thin wrapper, and tests call :func:`run_order` directly.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from async_orders import tracing
from async_orders.conf import conf
from async_orders.models import FailureCode, Order, failure
from async_orders.outage import UNREACHABLE, reconnect_later
from async_orders.paths import RESULT, order_path
from async_orders.registry import ViewOptions
from async_orders.view_response import ViewResponse
from async_orders.worker.heartbeat import heartbeat
from async_orders.worker.order_lease import AttemptTimedOut, LeaseLost
from async_orders.worker.role_leases import this_process
from async_orders.worker.run import CancelRequested, OrderRun, running
from async_orders.worker.units import Unavailable, UnitOfWork, unit_of

logger = logging.getLogger("async_orders")

#: How long a finished attempt keeps trying to store its outcome through a database
#: outage before it leaves the order to the reconciler.
STORE_RETRY_SECONDS = 300
#: Characters of a failed order's traceback kept on the order.
TRACEBACK_MAX_CHARS = 20_000


def run_order(order_id: uuid.UUID | str, worker: str = "") -> Order | None:
    """Run the order once; return it as it ended up (None if it does not exist).

    ``worker`` names the process claiming it (``<node>:<pid>``), so that the process
    that supervises it can recover the order the moment it dies. A message for an
    order already started or finished is ignored. An order that comes back
    ``scheduled`` (a retry after an exception, or a message that came before the
    order was due) needs its message sent again: the caller's job, so that this
    module knows nothing of Celery.
    """
    order = _claim(order_id, worker or this_process())
    if order is None:
        return _not_started(order_id)
    if order.missed_start_deadline():
        _fail_unstarted(order)
        return order
    with running(order) as run, heartbeat(run.lease):
        _store_outcome(run, _outcome_of(run))
    return order


def _claim(order_id: uuid.UUID | str, worker: str) -> Order | None:
    """The claim, tried once more on a new connection if the first try finds the
    database unreachable: without ``CONN_HEALTH_CHECKS`` the connection a worker keeps
    between orders is not pinged before use, so one the database dropped meanwhile (a
    restart) fails here first. Should the lost try have been committed after all, the
    order is running under this worker's name, and recovered when its lease expires."""
    try:
        return Order.claim(order_id, worker)
    except UNREACHABLE:
        reconnect_later()
        return Order.claim(order_id, worker)


def _fail_unstarted(order: Order) -> None:
    """Fail an order claimed after its ``start_deadline``, calling nothing: what it
    was for is late already (a report nobody waits for, a slot that has passed)."""
    started = order.started_at or timezone.now()
    late = (started - (order.run_at or order.created_at)).total_seconds()
    message = (
        f"No worker started the order within its start deadline of {order.start_deadline:g} s "
        f"(it started {late:.1f} s after it was due)."
    )
    logger.warning("Order %s: %s", order.pk, message)
    order.fail(failure(FailureCode.START_DEADLINE_EXCEEDED, message))


def _not_started(order_id: uuid.UUID | str) -> Order | None:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        logger.warning("Order %s does not exist; its message is dropped.", order_id)
    else:
        logger.info("Order %s is %s; this message does not start it.", order.pk, order.status)
    return order


def _outcome_of(run: OrderRun) -> Callable[[], object]:
    """Call the order's unit of work (its view or its task); return how to store what
    came of it (a write that may be retried)."""
    order = run.order
    unit = unit_of(order)
    try:
        with tracing.execution_span(order):
            response = unit.call()
    except CancelRequested:
        logger.info("Order %s stopped: it was canceled.", order.pk)
        return lambda: order.stop_canceled(*run.progress)
    except LeaseLost:
        return lambda: None  # another attempt has the order: write nothing
    except AttemptTimedOut:
        return partial(_timed_out, unit, run)
    except Unavailable as gone:
        logger.exception("Order %s: %r no longer resolves.", order.pk, order.view_name)
        unavailable = failure(FailureCode.VIEW_UNAVAILABLE, str(gone))
        cause = _class_path(gone.__cause__ or gone)
        return lambda: order.fail(unavailable, error_class=cause)
    except Exception as error:
        return partial(_retry_or_fail, unit, run, error)
    return partial(_record_or_fail, order, response, run)


def _store_outcome(run: OrderRun, write: Callable[[], object]) -> None:
    """Store the attempt's outcome, trying again while the database is unreachable.

    The heartbeat keeps the lease meanwhile, so nobody takes the order. After
    :data:`STORE_RETRY_SECONDS` the attempt gives up and the order is left to the
    reconciler, as if its worker had died; it is never failed for an outage.
    """
    deadline = time.monotonic() + STORE_RETRY_SECONDS
    delay = 0.05
    while not run.lease.lost:
        try:
            write()
            return
        except UNREACHABLE:
            if time.monotonic() > deadline:
                logger.error("Order %s: its outcome could not be stored; giving up.", run.order.pk)
                return
            reconnect_later()
            time.sleep(delay)
            delay = min(delay * 2, conf.HEARTBEAT_INTERVAL)


def _retry_or_fail(unit: UnitOfWork, run: OrderRun, error: Exception) -> None:
    order, options = run.order, unit.options()
    message = run.failure_message or unit.raised_message
    why: dict[str, Any] = {
        "error": failure(FailureCode.EXCEPTION, message),
        "traceback": _traceback_of(error),
        "error_class": _class_path(error),
    }
    retried = order.attempts < order.max_attempts and options.retries_for(error)
    if retried and _retry(order, options, why):
        logger.warning(
            "Order %s: attempt %d of %d raised %r; retrying.",
            *(order.pk, order.attempts, order.max_attempts, error),
        )
        return
    logger.error("Order %s failed: %s", order.pk, message, exc_info=error)
    order.fail(why.pop("error"), **why, progress=run.progress)


def _timed_out(unit: UnitOfWork, run: OrderRun) -> None:
    """The attempt stopped at a checkpoint past its timeout: another attempt if the
    view has retries left (this one has stopped, so they never overlap), else the
    order fails as ``timed_out``."""
    order = run.order
    of = f"(attempt {order.attempts} of {order.max_attempts})"
    message = f"The order ran longer than its timeout of {order.timeout:g} s {of}."
    logger.warning("Order %s: %s", order.pk, message)
    why: dict[str, Any] = {"error": failure(FailureCode.TIMED_OUT, message)}
    if order.attempts < order.max_attempts and _retry(order, unit.options(), why):
        return
    order.fail(why["error"], progress=run.progress)


def _retry(order: Order, options: ViewOptions, why: dict[str, Any]) -> bool:
    """Schedule the next attempt after the backoff; ``False`` when asked to cancel."""
    run_at = timezone.now() + timedelta(seconds=_backoff(options, order.attempts))
    return order.schedule_retry(run_at, **why)


def _class_path(error: BaseException) -> str:
    """The dotted path of ``error``'s class, as ``django.tasks``' ``TaskError`` names it."""
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def _traceback_of(error: BaseException) -> str:
    """The formatted traceback kept on a failed order, its end kept when too long: the
    innermost frames and the exception itself are what an operator reads first."""
    text = "".join(traceback.format_exception(error))
    return text if len(text) <= TRACEBACK_MAX_CHARS else "[cut]\n" + text[-TRACEBACK_MAX_CHARS:]


def _backoff(options: ViewOptions, attempt: int) -> float:
    """Exponential backoff with full jitter, capped by ``MAX_RETRY_BACKOFF``."""
    ceiling = min(options.retry_backoff * 2 ** (attempt - 1), conf.MAX_RETRY_BACKOFF)
    return random.uniform(ceiling / 2, ceiling)


def _record_or_fail(order: Order, response: ViewResponse, run: OrderRun) -> None:
    """Store the view's response; a database that refuses it (not an outage: those
    are retried) fails the order rather than leave it running."""
    try:
        _record(order, response, run)
    except UNREACHABLE:
        raise
    except DatabaseError:
        logger.exception("Order %s: its outcome could not be stored.", order.pk)
        order.fail(failure(FailureCode.EXCEPTION, "The view's response could not be stored."))


def _record(order: Order, response: ViewResponse, run: OrderRun) -> None:
    if response.asks_for_login:
        message = "The view needs a signed-in user: it redirected to LOGIN_URL."
        order.fail(failure(FailureCode.UNAUTHENTICATED, message, response.status_code), response)
        return
    if response.succeeded:
        # A Location off the site stays in the stored response; the client is sent to it
        # only by following the result itself, never by the order's 201.
        resource_url = response.location_on_site(order.origin) or result_path(order)
        order.complete(response=response, resource_url=resource_url)
        return
    message = run.failure_message or f"The view answered {response.status_code}."
    error = failure(FailureCode.HTTP_ERROR, message, response.status_code, response.json())
    order.fail(error, response, progress=run.progress)


def result_path(order: Order) -> str:
    """Where the stored response of ``order`` is replayed."""
    return order_path(order.pk, RESULT)
