"""Ordering an opted-in ``django.tasks`` task over HTTP: its envelope, and placing it.

``POST /async/tasks/<dotted.path>/order/`` takes ``{"args": [...], "kwargs": {...}}``
plus the envelope options a task can use (``countdown``/``eta``, ``callback_url``);
the arguments are bound to the task's signature here, so a call that cannot work
fails the POST with a 400 and never reaches a worker.

The order is the requester's, exactly as a view's order is (ownership, the cap,
``Idempotency-Key``, cancel, webhooks). The task runs where its backend runs it: on
our worker for :class:`~async_orders.task_backend.OrderBackend`, else on that
backend's worker, the order following its result (:mod:`async_orders.followed_tasks`).
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from django.utils.translation import gettext

from async_orders.envelope import (
    Envelope,
    TaskEnvelopeSerializer,
    fingerprint,
    keys_for,
    run_at_of,
    validated_fields,
)
from async_orders.exceptions import InvalidEnvelope
from async_orders.followed_tasks import enqueue_followed, is_ours
from async_orders.models import Order
from async_orders.placing import place_order
from async_orders.registry import SchedulableTask
from async_orders.task_backend import OrderBackend, task_envelope
from async_orders.task_compat import task_backends
from async_orders.task_results import NotJSON, task_options


def parse_task_envelope(opted_in: SchedulableTask, body: Any) -> Envelope:
    """Validate ``body`` for the task; :class:`InvalidEnvelope` naming each bad field,
    the arguments included when they do not fit the task's signature."""
    fields = validated_fields(TaskEnvelopeSerializer, body)
    task = opted_in.task
    _bind(task, fields["args"], fields["kwargs"])
    run_at = run_at_of(fields.get("countdown"), fields.get("eta"))
    if run_at is not None and not task_backends[task.backend].supports_defer:
        message = gettext("The task's backend cannot run a task later.")
        raise InvalidEnvelope({"countdown" if "countdown" in fields else "eta": [message]})
    try:
        envelope = task_envelope(task, fields["args"], fields["kwargs"], run_at)
    except NotJSON as error:
        raise InvalidEnvelope({"body": [str(error)]}) from None
    envelope = replace(
        envelope,
        fingerprint=fingerprint(opted_in.path, body),
        callback_url=fields.get("callback_url", ""),
        labels=fields["labels"],
    )
    options = task_options(opted_in.path, task.backend)
    return replace(envelope, lock_keys=keys_for(options, envelope))


def _bind(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise :class:`InvalidEnvelope` unless the task's function takes these arguments
    (after its ``TaskContext``, when it takes one)."""
    signature = inspect.signature(task.func)
    if task.takes_context:
        parameters = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=parameters)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        message = gettext("These arguments do not fit the task %(task)s: %(error)s.")
        details = {"task": task.module_path, "error": error}
        raise InvalidEnvelope({"kwargs" if kwargs else "args": [message % details]}) from None


def place_task_order(
    opted_in: SchedulableTask,
    envelope: Envelope,
    owner: Any,
    origin: str,
    *,
    requester: str,
    idempotency_key: str,
) -> Order:
    """Place the task's order for the requester, as
    :func:`~async_orders.placing.place_order` places a view's: run by our worker when
    the task's backend is ours, else enqueued with its backend and followed."""
    task = opted_in.task
    ours = is_ours(task.backend)
    submit = None
    if not ours:
        submit = enqueue_followed(task, envelope.args, envelope.kwargs, envelope.run_at)
    order, created = place_order(
        envelope, owner, origin, requester=requester, idempotency_key=idempotency_key, submit=submit
    )
    if created and ours:
        backend = task_backends[task.backend]
        assert isinstance(backend, OrderBackend)
        backend.enqueued(order)
    return order
