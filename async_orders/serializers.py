"""The order's JSON representation, the same for every endpoint that shows an order."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from async_orders.attempts import AttemptOutcome, OrderAttempt
from async_orders.conf import conf
from async_orders.models import FOLLOWED_LIMITATIONS, FailureCode, Order, OrderKind, OrderStatus
from async_orders.paths import ATTEMPTS, BATCH, order_path

# The serializers below describe the order for the OpenAPI schema only; their
# docstrings and help texts are the schema's descriptions, so they speak to clients.
# :func:`represent` builds the JSON by hand: it is what every poll answers, and DRF
# would rebuild a ModelSerializer's fields on each request, a good part of a poll.


class ProgressSerializer(serializers.Serializer):
    """How far the view got, as it reported with ProgressItems."""

    current = serializers.IntegerField(source="progress_current", help_text="Items done.")
    total = serializers.IntegerField(
        source="progress_total", allow_null=True, help_text="Items in all; null until known."
    )
    percent = serializers.FloatField(
        allow_null=True,
        help_text="current/total as 0-100; null until the total is known; 100 once completed.",
    )


@extend_schema_field(
    serializers.ChoiceField(choices=FailureCode.choices), component_name="FailureCode"
)
class FailureCodeField(serializers.ChoiceField):
    """The failure codes, as a schema component named after their Python enum: an
    inline enum would be named after the field (``CodeEnum``), or renamed by
    drf-spectacular when another ``code`` enum of the project collides, and generated
    clients would change their class name with it. A project's
    ``ENUM_NAME_OVERRIDES`` is then not needed for it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(FailureCode.choices, **kwargs)


class OrderErrorSerializer(serializers.Serializer):
    """Why a failed or canceled order did not complete."""

    code = FailureCodeField(help_text="What went wrong.")
    message = serializers.CharField(help_text="For humans.")
    status_code = serializers.IntegerField(
        allow_null=True, help_text="The status the view answered with (http_error), else null."
    )
    body = serializers.JSONField(
        allow_null=True, help_text="The JSON body the view answered with, if any."
    )


class OrderSerializer(serializers.ModelSerializer):
    """An order: a call of a view that runs in a worker, and how far it got."""

    url = serializers.URLField(read_only=True, help_text="This order: poll it, or DELETE it.")
    view = serializers.CharField(
        source="view_name",
        read_only=True,
        help_text="The URL name of the ordered view, or the dotted path of the ordered task.",
    )
    kind = serializers.ChoiceField(
        choices=OrderKind.choices,
        read_only=True,
        help_text="What the order runs: a view, or a django.tasks task.",
    )
    limitations = serializers.ListField(
        child=serializers.ChoiceField(choices=FOLLOWED_LIMITATIONS),
        read_only=True,
        help_text="What this order lacks of the usual guarantees: empty unless its task "
        "runs on another TASKS backend's worker (no fencing token, cancel only while "
        "it has not started, progress only where the task reports it with "
        "ProgressItems). See the Tasks page of the docs.",
    )
    progress = ProgressSerializer(source="*", read_only=True)
    resource_url = serializers.URLField(
        allow_null=True,
        read_only=True,
        help_text="Once completed: what the view created (its Location), else its result.",
    )
    error = OrderErrorSerializer(
        allow_null=True, read_only=True, help_text="Once failed or canceled; else null."
    )
    callback = serializers.DictField(
        allow_null=True, read_only=True, help_text="The webhook and its deliveries, if any."
    )
    labels = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The labels the client placed it with, and those its view added.",
    )
    batch = serializers.URLField(
        allow_null=True, read_only=True, help_text="The batch it was placed in, if any."
    )
    expires_at = serializers.DateTimeField(
        allow_null=True,
        read_only=True,
        help_text="When retention deletes it (RETENTION_SECONDS after it finished); "
        "null while it is unfinished.",
    )
    attempts = serializers.IntegerField(
        read_only=True, help_text="How many attempts started; each is listed at attempts_url."
    )
    attempts_url = serializers.URLField(read_only=True, help_text="This order's attempts.")
    timeout = serializers.FloatField(
        allow_null=True, read_only=True, help_text="Seconds an attempt may run; null: no limit."
    )
    start_deadline = serializers.FloatField(
        allow_null=True,
        read_only=True,
        help_text="Seconds after it was due within which it had to start; null: none.",
    )
    rerun_of = serializers.URLField(
        allow_null=True, read_only=True, help_text="The order this one re-runs, if any."
    )
    reruns = serializers.ListField(
        child=serializers.URLField(),
        read_only=True,
        help_text="The orders that re-ran this one (failed or canceled orders only), oldest first.",
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "url",
            "view",
            "kind",
            "status",
            "progress",
            "message",
            "resource_url",
            "error",
            "callback",
            "attempts",
            "attempts_url",
            "timeout",
            "start_deadline",
            "rerun_of",
            "reruns",
            "cancel_requested",
            "limitations",
            "created_at",
            "run_at",
            "started_at",
            "finished_at",
            "expires_at",
            "labels",
            "batch",
        ]
        read_only_fields = fields

    def to_representation(self, order: Order) -> dict[str, Any]:
        return represent(order, self.context.get("request"))


_moment = serializers.DateTimeField()


def represent(order: Order, request: Any) -> dict[str, Any]:
    """The order's JSON, with absolute URLs when there is a ``request`` to build them."""
    absolute = request.build_absolute_uri if request is not None else str
    return {
        "id": str(order.pk),
        "url": absolute(order_path(order.pk)),
        "view": order.view_name,
        "kind": order.kind,
        "status": order.status,
        "progress": {
            "current": order.progress_current,
            "total": order.progress_total,
            "percent": _percent(order),
        },
        "message": order.message,
        "resource_url": absolute(order.resource_url) if order.resource_url else None,
        "error": order.error,
        "callback": _callback(order),
        "attempts": order.attempts,
        "attempts_url": absolute(order_path(order.pk, ATTEMPTS)),
        "timeout": order.timeout,
        "start_deadline": order.start_deadline,
        "rerun_of": absolute(order_path(order.rerun_of_id)) if order.rerun_of_id else None,
        "reruns": [absolute(order_path(pk)) for pk in order.rerun_ids],
        "cancel_requested": order.cancel_requested,
        "limitations": order.limitations,
        "created_at": _when(order.created_at),
        "run_at": _when(order.run_at),
        "started_at": _when(order.started_at),
        "finished_at": _when(order.finished_at),
        "expires_at": _when(expires_at(order.finished_at)),
        "labels": order.labels,
        "batch": absolute(order_path(order.batch_id, BATCH)) if order.batch_id else None,
    }


def expires_at(finished_at: datetime | None) -> datetime | None:
    """When :mod:`async_orders.retention` deletes a finished order: published, as
    AIP-151 advises, so that a client knows how long its result stays."""
    if finished_at is None:
        return None
    return finished_at + timedelta(seconds=conf.RETENTION_SECONDS)


def _percent(order: Order) -> float | None:
    """current/total as 0-100; 100 once completed, whether or not the view counted its
    progress, so that a bar a client draws from it ends full."""
    if order.status == OrderStatus.COMPLETED:
        return 100.0
    if not order.progress_total:
        return None
    return round(min(order.progress_current / order.progress_total, 1.0) * 100, 1)


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else _moment.to_representation(moment)


def _callback(order: Order) -> dict[str, Any] | None:
    """The webhook and its delivery attempts; queried only for orders that have one."""
    if not order.callback_url:
        return None
    deliveries = order.webhook_deliveries.values(
        "attempt", "attempted_at", "response_status", "delivered", "error"
    )
    return {"url": order.callback_url, "deliveries": list(deliveries)}


class ListQuerySerializer(serializers.Serializer):
    """The query string of ``GET /async/orders/``: bad values are refused (400);
    parameters it does not name (a cache buster, say) are ignored."""

    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    view = serializers.CharField(required=False, max_length=200)
    created_after = serializers.DateTimeField(
        required=False, help_text="Only orders placed after this moment (ISO 8601)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only orders placed before this moment (ISO 8601)."
    )
    # DRF's metaclass takes declared fields off the class, so this parameter does not
    # replace Field.label; mypy sees only the assignment.
    label = serializers.CharField(  # type: ignore[assignment]
        required=False,
        help_text="key:value; only orders with this label. Repeat it: orders with all of them.",
    )
    cursor = serializers.CharField(
        required=False, help_text="The page after (or before) one: follow next / previous."
    )
    page = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Deprecated: the page-number form (with count); use cursor.",
    )
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)
    all = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Everyone's orders, not only yours: needs async_orders.view_order.",
    )


@extend_schema_field(
    serializers.ChoiceField(choices=AttemptOutcome.choices), component_name="AttemptOutcome"
)
class AttemptOutcomeField(serializers.ChoiceField):
    """An attempt's outcome, a schema component named after its enum (as
    :class:`FailureCodeField` is, for the same reason)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(AttemptOutcome.choices, **kwargs)


class AttemptSerializer(serializers.Serializer):
    """One attempt of an order, oldest first; the running one last, without an end."""

    number = serializers.IntegerField(help_text="1 for the first: the attempt's fencing token.")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True, help_text="null while it runs.")
    worker = serializers.CharField(help_text="The process that ran it: <celery node>:<pid>.")
    outcome = AttemptOutcomeField(help_text="running, completed, failed or canceled.")
    error = OrderErrorSerializer(allow_null=True, help_text="Why it failed; else null.")


def represent_attempt(attempt: OrderAttempt) -> dict[str, Any]:
    """An attempt's JSON; its traceback and exception class stay for operators."""
    return {
        "number": attempt.number,
        "started_at": _when(attempt.started_at),
        "finished_at": _when(attempt.finished_at),
        "worker": attempt.worker,
        "outcome": attempt.outcome,
        "error": attempt.error,
    }
