"""The Order: the source of truth for one call of a view, and its state machine.

Every status change is one conditional ``UPDATE ... WHERE status IN (...)`` that
reports whether it won, so two processes racing on one order can never both move
it (a redelivered message, a late worker): the loser sees ``False`` and stops.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models import Q
from django.db.models.expressions import Combinable
from django.db.models.functions import Now
from django.utils import timezone

from async_orders import signals
from async_orders.attempts import AttemptOutcome, OrderAttempt, ended_attempt
from async_orders.conf import conf
from async_orders.deprecation import renamed
from async_orders.labels import label_errors
from async_orders.order_statements import (
    RowReader,
    advisory_lock,
    claim_row,
    claimed_fields,
    end_attempt,
    update_attempt,
    upsert_row,
)
from async_orders.ownership import ANONYMOUS, listed_requesters, may_see

if TYPE_CHECKING:
    from async_orders.view_response import ViewResponse

_Model = TypeVar("_Model", bound=models.Model)


class OrderStatus(models.TextChoices):
    """Where an order is in its life; see the state diagram in the docs."""

    #: Waiting for its ``countdown``/``eta``; not yet due.
    SCHEDULED = "scheduled", "Scheduled"
    #: Due, its message published (or about to be); waiting for a worker.
    QUEUED = "queued", "Queued"
    #: A worker is calling the view.
    RUNNING = "running", "Running"
    #: The view answered 2xx/3xx; the response is stored.
    COMPLETED = "completed", "Completed"
    #: The view answered 4xx/5xx or raised; ``error`` says why.
    FAILED = "failed", "Failed"
    #: Canceled before it finished.
    CANCELED = "canceled", "Canceled"


class OrderKind(models.TextChoices):
    """What an order's unit of work is: the worker calls a view or a task function.

    A column rather than a reserved prefix of ``view_name``: any string is a valid URL
    name, so no prefix could tell the two apart for sure, and a column lets a listing,
    the admin and the HTTP layer filter and show the kind without parsing names.
    ``view_name`` holds what the order is *of* either way (a URL name, or a task's
    dotted path), so metrics, logs, traces and the listing's ``?view=`` need no change.
    """

    #: A schedulable view, called through the service-level reverse.
    VIEW = "view", "View"
    #: A ``django.tasks`` task function (:mod:`async_orders.task_backend`).
    TASK = "task", "Task"


#: This enum was called ``Status``, beside DRF's ``status``: the old name still works.
__getattr__ = renamed(__name__, {"Status": "OrderStatus"})


#: Statuses from which an order can still start.
STARTABLE = (OrderStatus.SCHEDULED, OrderStatus.QUEUED)
#: Statuses in which an order still has work ahead of it.
ACTIVE = (OrderStatus.SCHEDULED, OrderStatus.QUEUED, OrderStatus.RUNNING)
#: Statuses an order never leaves.
FINISHED = (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED)
#: What can be re-run: an order that failed (timed out included) or was canceled.
RERUNNABLE = (OrderStatus.FAILED, OrderStatus.CANCELED)


#: The columns the order's representation (and its ETag) shows: what a poll loads.
SHOWN_FIELDS = (
    "id",
    "view_name",
    "status",
    "progress_current",
    "progress_total",
    "message",
    "resource_url",
    "error",
    "callback_url",
    "attempts",
    "timeout",
    "start_deadline",
    "cancel_requested",
    "created_at",
    "run_at",
    "started_at",
    "finished_at",
    "kind",
    "task_backend",
    "external_id",
    "labels",
    "batch_id",
)

#: What an order of a task run by another ``TASKS`` backend lacks, as its
#: representation's ``limitations`` lists it (docs/tasks.md explains each):
#: no lease, so no fencing token; cancel only before it starts, and only where the
#: backend can drop a task; progress only when the task reports it with our helper.
FOLLOWED_LIMITATIONS = ("no_fencing_token", "cancel_only_while_ready", "progress_only_with_helper")


class FailureCode(models.TextChoices):
    """Why an order failed: its ``error.code``. Each value is a row of the table in
    docs/http-api.md, which a test keeps in step with this enum."""

    #: The view answered 4xx/5xx; ``status_code`` and its JSON ``body`` are included.
    HTTP_ERROR = "http_error", "HTTP error"
    #: The view raised; the message is the ``fail_on_error`` one, else a generic one.
    EXCEPTION = "exception", "Exception"
    #: The view redirected to ``LOGIN_URL``: it needs a signed-in user.
    UNAUTHENTICATED = "unauthenticated", "Unauthenticated"
    #: The URL name no longer leads to the opted-in view; nothing was called.
    VIEW_UNAVAILABLE = "view_unavailable", "View unavailable"
    #: The worker running the order stopped responding, and no attempts were left.
    WORKER_LOST = "worker_lost", "Worker lost"
    #: The last attempt ran past the order's ``timeout``: it was stopped at its next
    #: checkpoint, or its process was replaced when it reached none.
    TIMED_OUT = "timed_out", "Timed out"
    #: No worker started the order within its ``start_deadline``; nothing was called.
    START_DEADLINE_EXCEEDED = "start_deadline_exceeded", "Start deadline exceeded"


def failure(
    code: FailureCode, message: str, status_code: int | None = None, body: Any = None
) -> dict[str, Any]:
    """An order's ``error``, in the one shape clients see for every kind of failure:
    the only place one is built, so a new kind of failure needs a :class:`FailureCode`
    (and so a row in the documented table) first."""
    return {"code": code.value, "message": message, "status_code": status_code, "body": body}


class PrimaryManager(models.Manager[_Model]):
    """Reads on the database the model is written to, whatever the project's router
    says about reads: a router that sends reads to a replica (Django's primary/replica
    example) would show a client an order older than the one it saw a moment ago (a
    202 after its 201, an ETag going back), and hand the worker and the reconciler rows
    their own writes have already changed. ``Order.objects.using(...)`` still chooses."""

    def get_queryset(self) -> models.QuerySet[_Model]:
        # Made on the database at once: ``super().get_queryset().using(...)`` clones the
        # queryset, which took 26 us per query against 7 (timeit, on a busy machine).
        using = self._db or router.db_for_write(self.model)
        hints = getattr(self, "_hints", {})  # the related managers' instance
        # Django's own Manager.get_queryset, on ``using``; the stubs lack the attribute.
        queryset_class = self._queryset_class  # type: ignore[attr-defined]
        return queryset_class(model=self.model, using=using, hints=hints)


class OrderQuerySet(models.QuerySet["Order"]):
    def listed_for(
        self, user: Any, session_key: str | None, *, everyone: bool = False
    ) -> OrderQuerySet:
        """The orders a listing shows this requester (see :func:`listed_requesters`)."""
        requesters = listed_requesters(user, session_key, everyone=everyone)
        return self if requesters is None else self.filter(requester__in=requesters)

    def active(self) -> OrderQuerySet:
        return self.filter(status__in=ACTIVE)

    def shown(self) -> OrderQuerySet:
        """Only the shown columns (and the requester, to check who may see them): a
        poll never loads a stored response of megabytes."""
        return self.only(*SHOWN_FIELDS, "requester", "rerun_of")

    def one(self, pk: uuid.UUID | str) -> Order | None:
        """The order ``pk`` or None, without the ORDER BY that ``first()`` would add."""
        return next(iter(self.filter(pk=pk).order_by()[:1]), None)

    def shown_one(self, pk: uuid.UUID | str) -> Order | None:
        """``shown().one(pk)``, as every poll runs it: the same SELECT and the same
        instance, but the statement is compiled once per database rather than on each
        call (building and compiling it took longer than running it: 0.3 ms of 0.55).
        By primary key alone, so on ``Order.objects``, never on a filtered queryset."""
        if self.query.where:
            raise TypeError("shown_one() selects by primary key alone: call it on Order.objects")
        sql, reader = _shown_select(self.db)
        connection = connections[self.db]
        return reader.one(connection, sql, [Order._meta.pk.get_db_prep_value(pk, connection)])


@functools.cache
def _shown_select(alias: str) -> tuple[str, RowReader]:
    """``Order.objects.shown().one(pk)``'s statement on the database ``alias``, and how
    to read its row."""
    queryset = Order.objects.using(alias).shown().filter(pk=uuid.UUID(int=0)).order_by()[:1]
    compiler = queryset.query.get_compiler(using=alias)
    sql, params = compiler.as_sql()
    assert len(params) == 1, "the primary key is the statement's only parameter"
    columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
    return sql, RowReader(Order, queryset.query, columns)


class Order(models.Model):
    """One call of a schedulable view, placed now and run by a worker later."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="async_orders",
        help_text="Who placed the order; the view runs as this user. Empty: anonymous.",
    )

    # The envelope: what to call, exactly as validated when the order was placed.
    kind = models.CharField(
        max_length=4,
        choices=OrderKind.choices,
        default=OrderKind.VIEW,
        help_text="What the worker calls: a view (view_name is its URL name) or a task "
        "function (view_name is its dotted path).",
    )
    view_name = models.CharField(max_length=200, db_index=True)
    method = models.CharField(max_length=10, default="POST")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    query = models.JSONField(default=dict, blank=True)
    data = models.JSONField(null=True, blank=True)
    requester = models.CharField(
        max_length=64,
        default=ANONYMOUS,
        help_text="user:<pk>, session:<key>, anonymous, or enqueued (a task enqueued in "
        "code): who may see the order.",
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the envelope, to tell a retry from a reuse."
    )
    origin = models.CharField(
        max_length=300,
        help_text="Scheme and host of the POST, so URLs the view builds point where the client is.",
    )

    # No index of its own: async_order_status_finished (status, finished_at) serves
    # every lookup by status, and each index more is written by every state change.
    status = models.CharField(
        max_length=10, choices=OrderStatus.choices, default=OrderStatus.QUEUED
    )
    progress_current = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(
        default=1, help_text="1 + the view's retries: for exceptions and for lost workers."
    )
    queue = models.CharField(
        max_length=200,
        blank=True,
        help_text="The Celery queue chosen when it was placed (a task's queue); empty: "
        "the view's queue option, else QUEUE.",
    )
    priority = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Celery priority chosen when it was placed (a task's)."
    )
    task_backend = models.CharField(
        max_length=100, blank=True, help_text="The TASKS alias a task order was enqueued with."
    )
    external_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The TaskResult id given by a TASKS backend other than ours, whose worker "
        "runs the task: the order follows that result. Empty: our worker runs it.",
    )
    lock_keys = models.JSONField(
        default=list, blank=True, help_text="Keys this order holds while active (OrderLock)."
    )
    cancel_requested = models.BooleanField(
        default=False, help_text="Asked to stop while running; it stops at its next progress step."
    )

    # The outcome.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=200, blank=True)
    response_body = models.BinaryField(
        null=True, blank=True, help_text="Empty when larger than MAX_RESULT_BYTES."
    )
    response_size = models.PositiveBigIntegerField(null=True, blank=True)
    resource_url = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True)
    traceback = models.TextField(
        blank=True, help_text="Why the view raised, for operators; never in the API."
    )
    error_class = models.CharField(
        max_length=300,
        blank=True,
        help_text="Dotted path of the exception class that failed it, for operators "
        "and django.tasks' TaskError; never in the API.",
    )
    traceparent = models.CharField(
        max_length=128,
        blank=True,
        help_text="W3C trace context of the POST, so the worker's span continues its trace.",
    )
    callback_url = models.URLField(
        max_length=2000, blank=True, help_text="Where the finished order is POSTed (webhook)."
    )
    labels = models.JSONField(
        default=dict,
        blank=True,
        help_text="The client's (and the view's) string labels, to find the order by.",
    )
    batch_id = models.UUIDField(
        null=True, blank=True, help_text="The batch it was placed in (POST /async/batches/)."
    )
    timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds an attempt may run; empty: no limit."
    )
    start_deadline = models.FloatField(
        null=True,
        blank=True,
        help_text="Seconds after it is due within which a worker must start it; empty: any time.",
    )
    rerun_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        help_text="The order this one places again (POST .../rerun/ or the admin's re-run).",
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    run_at = models.DateTimeField(null=True, blank=True, help_text="Not before this time.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(
        null=True,
        blank=True,
        default=timezone.now,
        help_text="Last time its message was handed to the broker; empty: publishing failed.",
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last renewal of the running attempt's lease, on the database's clock.",
    )
    worker = models.CharField(
        max_length=200,
        blank=True,
        help_text="The process running (or that last ran) the order: <celery node>:<pid>.",
    )

    objects = PrimaryManager.from_queryset(OrderQuerySet)()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("cancel_order", "Can cancel the orders of others"),
            ("rerun_order", "Can re-run the orders of others"),
        ]
        indexes = [
            models.Index(fields=["requester", "-created_at"], name="async_order_requester_recent"),
            models.Index(fields=["requester", "status"], name="async_order_requester_status"),
            models.Index(fields=["status", "finished_at"], name="async_order_status_finished"),
            # Finding the order that follows a task run by another backend; only such
            # orders are in it, so other orders' INSERTs do not write it.
            models.Index(
                fields=["task_backend", "external_id"],
                condition=~Q(external_id=""),
                name="async_order_external_task",
            ),
            # Partial: the orders placed alone, most of them, cost it nothing.
            models.Index(
                fields=["batch_id"],
                condition=Q(batch_id__isnull=False),
                name="async_order_batch",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="async_order_status_valid"
            ),
            # One order per requester and key: concurrent retries cannot both insert.
            models.UniqueConstraint(
                fields=["requester", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="async_order_idempotency_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.view_name} order {self.id} ({self.status})"

    @property
    def is_task(self) -> bool:
        return self.kind == OrderKind.TASK

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_followed(self) -> bool:
        """A task order run by another ``TASKS`` backend's worker, not ours: the order
        follows that backend's ``TaskResult`` (:mod:`async_orders.followed_tasks`)."""
        return bool(self.external_id)

    @property
    def limitations(self) -> list[str]:
        """What this order lacks of our guarantees: :data:`FOLLOWED_LIMITATIONS` for a
        followed order, nothing for one our worker runs."""
        return list(FOLLOWED_LIMITATIONS) if self.is_followed else []

    def is_visible_to(self, user: Any, session_key: str | None) -> bool:
        """Whether this requester may see the order (see :func:`may_see`)."""
        return may_see(self.requester, user, session_key)

    @functools.cached_property
    def rerun_ids(self) -> list[uuid.UUID]:
        """The orders that re-ran this one, oldest first; asked only of an order that
        can be re-run (failed or canceled), so a poll of any other costs no query."""
        if self.status not in RERUNNABLE:
            return []
        return list(self.reruns.order_by("created_at").values_list("pk", flat=True))

    @classmethod
    def load_rerun_ids(cls, orders: list[Order]) -> None:
        """Fill :attr:`rerun_ids` of each of ``orders`` with one query for them all, so
        that a page of a listing costs no query per failed order."""
        rerunnable = [o.pk for o in orders if o.status in RERUNNABLE]
        found: dict[uuid.UUID | None, list[uuid.UUID]] = {pk: [] for pk in rerunnable}
        if rerunnable:
            reruns = cls.objects.filter(rerun_of__in=rerunnable).order_by("created_at")
            for original, pk in reruns.values_list("rerun_of", "pk"):
                found[original].append(pk)
        for order in orders:
            order.__dict__["rerun_ids"] = found.get(order.pk, [])

    def missed_start_deadline(self) -> bool:
        """Whether its first attempt starts later than ``start_deadline`` after the
        order was due (its ``run_at``, else when it was placed)."""
        if self.attempts != 1 or self.started_at is None:
            return False
        return self.start_deadline_passed(self.started_at)

    def start_deadline_passed(self, now: datetime) -> bool:
        """Whether a worker starting the order at ``now`` would start it too late."""
        if self.start_deadline is None:
            return False
        return (now - (self.run_at or self.created_at)).total_seconds() > self.start_deadline

    def expire_unstarted(self) -> bool:
        """scheduled/queued -> failed (``start_deadline_exceeded``): no worker started
        it in time, and none will; its locks are released. The reconciler calls this,
        so that a client does not wait on an order no worker came for."""
        message = (
            f"No worker started the order within its start deadline of {self.start_deadline:g} s."
        )
        late = failure(FailureCode.START_DEADLINE_EXCEEDED, message)
        return self._move(STARTABLE, OrderStatus.FAILED, error=late)

    def ran_past_timeout(self, now: datetime) -> bool:
        """Whether the running attempt has been running longer than ``timeout``."""
        if self.timeout is None or self.started_at is None:
            return False
        return (now - self.started_at).total_seconds() > self.timeout

    @property
    def attempt(self) -> int:
        """The number of the attempt running (or that ran last): the fencing token to
        hand to side effects, so that they can refuse an attempt older than one seen."""
        return self.attempts

    @classmethod
    def claim(cls, pk: uuid.UUID | str, worker: str = "") -> Order | None:
        """Claim the order ``pk`` for one worker, in one statement that returns what
        running it needs: scheduled/queued -> running, one attempt more, its lease taken
        on the database's clock. ``None`` when it cannot start now: running, finished,
        or not yet due (a message that arrives early, a duplicate, cannot start it).
        """
        order = claim_row(cls, pk, worker, timezone.now(), OrderStatus.RUNNING, STARTABLE)
        if order is not None:
            # Only a scheduled order has a run_at: a queued one never does.
            order._announce(OrderStatus.SCHEDULED if order.run_at else OrderStatus.QUEUED)
        return order

    def start(self, worker: str = "") -> bool:
        """Claim this order (see :meth:`claim`); it takes the claimed values."""
        claimed = Order.claim(self.pk, worker)
        if claimed is None:
            return False
        for field in claimed_fields(Order):
            setattr(self, field.attname, getattr(claimed, field.attname))
        return True

    def renew_lease(self) -> bool:
        """Extend this attempt's lease; ``False`` when the attempt has lost the order
        (it was recovered and maybe claimed again, or it finished): stop, write nothing."""
        mine = Order.objects.filter(self._this_attempt(), pk=self.pk, status=OrderStatus.RUNNING)
        return bool(mine.update(heartbeat_at=Now()))

    def _this_attempt(self) -> Q:
        """Changes a worker makes hold only for the attempt it claimed: a worker taken
        for dead, whose order was queued again and claimed by another, changes nothing."""
        return Q(attempts=self.attempts)

    def add_labels(self, labels: dict[str, str]) -> bool:
        """Add (or change) labels from the view running this order (``ValueError`` when
        they break the bounds of :mod:`~async_orders.labels`); ``False`` when the
        attempt has lost the order. Only the running attempt writes labels once the
        order is placed, so merging them here loses none."""
        if errors := label_errors(labels):
            raise ValueError("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        merged = {**self.labels, **labels}
        if errors := label_errors(merged):
            raise ValueError(" ".join(errors["labels"]))
        mine = Order.objects.filter(self._this_attempt(), pk=self.pk, status=OrderStatus.RUNNING)
        if not mine.update(labels=merged):
            return False
        self.labels = merged  # no signal: labels are not progress, and wake no waiter
        return True

    def schedule_retry(self, run_at: datetime, **why: Any) -> bool:
        """running -> scheduled until ``run_at``: another attempt, unless asked to cancel.
        ``why`` (``error``, ``traceback``, ``error_class``) this one failed is kept in
        its attempt's row."""
        return self._move(
            (OrderStatus.RUNNING,),
            OrderStatus.SCHEDULED,
            due=Q(cancel_requested=False),
            fenced=True,
            attempt_failure=why,
            run_at=run_at,
            published_at=timezone.now(),
        )

    def recover_lost(self, lost: Q) -> OrderStatus | None:
        """End the attempt whose worker is gone (``lost`` says how that is known: its
        lease expired long ago, or the process running it died): queue the order again
        if it has attempts left, cancel it if it was asked to stop, else fail it as
        ``worker_lost``. The status it moved to, or ``None`` if it had moved on.

        Fenced by attempt, so a late decision never touches a newer attempt.
        """
        changes: dict[str, Any]
        why = self._lost_error()
        if self.cancel_requested:
            target, changes = OrderStatus.CANCELED, {}
        elif self.attempts < self.max_attempts:
            lost &= Q(cancel_requested=False)
            target, changes = OrderStatus.QUEUED, {"run_at": None, "published_at": timezone.now()}
        else:
            target, changes = OrderStatus.FAILED, {"error": why}
        moved = self._move(
            (OrderStatus.RUNNING,),
            target,
            lost,
            fenced=True,
            attempt_failure={"error": why},
            **changes,
        )
        return target if moved else None

    def _lost_error(self) -> dict[str, Any]:
        """Why a lost attempt ended: its timeout, if it ran past it (its process was
        replaced, or it stopped renewing its lease), else its worker's silence."""
        of = f"(attempt {self.attempts} of {self.max_attempts})"
        if self.ran_past_timeout(timezone.now()):
            return failure(
                FailureCode.TIMED_OUT,
                f"The order ran past its timeout of {self.timeout:g} s and was abandoned {of}.",
            )
        return failure(
            FailureCode.WORKER_LOST,
            f"The worker running this order stopped responding {of}.",
        )

    def mark_unpublished(self) -> None:
        """Note that the message never reached the broker: the reconciler sends it."""
        self.published_at = None
        Order.objects.filter(pk=self.pk).update(published_at=None)

    def complete(self, *, response: ViewResponse, resource_url: str) -> bool:
        """running -> completed, keeping the view's response."""
        return self._move(
            (OrderStatus.RUNNING,),
            OrderStatus.COMPLETED,
            fenced=True,
            resource_url=resource_url,
            **self._response_fields(response),
        )

    def fail(
        self,
        error: dict[str, Any],
        response: ViewResponse | None = None,
        *,
        traceback: str = "",
        error_class: str = "",
        progress: tuple[int, int | None] | None = None,
    ) -> bool:
        """running -> failed with ``error`` (code, message, and the view's status/body if
        any), the ``traceback`` of the exception that failed it and that exception's
        ``error_class``, for operators, and the ``progress`` the view had counted when
        it failed (its last write may be older)."""
        fields = self._response_fields(response) if response else {}
        if traceback:
            fields["traceback"] = traceback
        if error_class:
            fields["error_class"] = error_class
        if progress is not None:
            fields["progress_current"], fields["progress_total"] = progress
        return self._move(
            (OrderStatus.RUNNING,),
            OrderStatus.FAILED,
            fenced=True,
            error=error,
            **fields,
        )

    @staticmethod
    def _response_fields(response: ViewResponse) -> dict[str, Any]:
        """The columns that keep the view's ``response``: its body only when it fits
        ``MAX_RESULT_BYTES`` (its size always), and a message saying so when not."""
        fields: dict[str, Any] = {
            "response_status": response.status_code,
            "response_content_type": response.content_type,
            "response_body": response.body if response.storable else None,
            "response_size": len(response.body),
        }
        if not response.storable:
            fields["message"] = (
                f"The view's response ({len(response.body)} bytes) is larger than "
                f"MAX_RESULT_BYTES ({conf.MAX_RESULT_BYTES}) and was not stored."
            )
        return fields

    def follow_start(self, worker: str) -> bool:
        """scheduled/queued -> running, as another backend's worker started the task
        this order follows: one attempt more, no lease (that worker keeps none of ours)."""
        return self._move(
            STARTABLE,
            OrderStatus.RUNNING,
            started_at=timezone.now(),
            attempts=self.attempts + 1,
            worker=worker,
        )

    def follow_complete(self, response: ViewResponse, resource_url: str) -> bool:
        """-> completed with the followed task's return value, from any active status
        (its start may not have been seen)."""
        changes = self._response_fields(response)
        return self._move(ACTIVE, OrderStatus.COMPLETED, resource_url=resource_url, **changes)

    def follow_fail(self, error: dict[str, Any], traceback: str, error_class: str) -> bool:
        """-> failed as the followed task did, from any active status."""
        return self._move(
            ACTIVE, OrderStatus.FAILED, error=error, traceback=traceback, error_class=error_class
        )

    def cancel(self) -> bool:
        """Cancel: at once if it has not started, else ask the running view to stop.

        ``False`` when the order had already finished.
        """
        if self._move(STARTABLE, OrderStatus.CANCELED):
            return True
        asked = Order.objects.filter(pk=self.pk, status=OrderStatus.RUNNING).update(
            cancel_requested=True
        )
        if asked:
            self.cancel_requested = True
        return asked == 1

    def stop_canceled(self, current: int, total: int | None) -> bool:
        """running -> canceled once the view noticed, with the progress it had made."""
        return self._move(
            (OrderStatus.RUNNING,),
            OrderStatus.CANCELED,
            fenced=True,
            progress_current=current,
            progress_total=total,
        )

    def report_progress(self, current: int, total: int | None, message: str | None) -> bool:
        """Store progress while running; ``False`` when the view should stop instead
        (the order was asked to cancel, or is no longer running)."""
        changes: dict[str, Any] = {"progress_current": current, "progress_total": total}
        if message is not None:
            changes["message"] = message
        changes["heartbeat_at"] = timezone.now()  # a progress write renews the lease
        still_wanted = update_attempt(
            Order, self.pk, self.attempts, OrderStatus.RUNNING, changes, unless_canceled=True
        )
        if not still_wanted:
            return False
        self._set(changes)
        signals.order_progress.send(sender=Order, order=self)
        return True

    def _move(
        self,
        sources: tuple[OrderStatus, ...],
        target: OrderStatus,
        due: Q | None = None,
        *,
        fenced: bool = False,
        attempt_failure: dict[str, Any] | None = None,
        **changes: Any,
    ) -> bool:
        """The one way status changes: a conditional UPDATE that wins or does nothing;
        ``fenced``, it wins only for the attempt this instance claimed. A fenced move
        from running ends that attempt: its row (:mod:`async_orders.attempts`) is
        written with it, ``attempt_failure`` saying why it failed if the order goes on."""
        if target in FINISHED:
            changes["finished_at"] = timezone.now()
        changes["status"] = target
        ended = self._ended(target, changes, attempt_failure) if fenced else None
        releases = target in FINISHED and bool(self.lock_keys)
        # With locks to release, both in one transaction: a finished order never
        # keeps its locks, whatever dies between the two statements.
        with transaction.atomic() if releases else contextlib.nullcontext():
            won = self._update_if(sources, due, ended, changes)
            if won and releases:
                OrderLock.objects.filter(order=self).delete()
        if won:
            previous = self.status
            self._set(changes)
            self._announce(previous)
        return won

    def _ended(
        self, target: OrderStatus, changes: dict[str, Any], attempt_failure: dict[str, Any] | None
    ) -> OrderAttempt:
        """The row of the attempt a fenced move ends: a finished order's outcome, or
        a failed attempt the order outlives (a retry, a requeue)."""
        if target == OrderStatus.COMPLETED:
            return ended_attempt(self, AttemptOutcome.COMPLETED)
        if target == OrderStatus.CANCELED:
            return ended_attempt(self, AttemptOutcome.CANCELED)
        if target == OrderStatus.FAILED:
            kept = ("error", "traceback", "error_class")
            return ended_attempt(
                self, AttemptOutcome.FAILED, **{k: changes[k] for k in kept if k in changes}
            )
        return ended_attempt(self, AttemptOutcome.FAILED, **(attempt_failure or {}))

    def _update_if(
        self,
        sources: tuple[OrderStatus, ...],
        due: Q | None,
        ended: OrderAttempt | None,
        changes: dict[str, Any],
    ) -> bool:
        """The conditional UPDATE of a move, and the row of the attempt it ends, if
        any, written only if it won. The outcome of a running attempt, which ends
        every order, is a statement written once (:mod:`order_statements`); other
        moves are rarer, and built by the ORM."""
        if ended is not None and due is None and sources == (OrderStatus.RUNNING,):
            return end_attempt(Order, self.pk, self.attempts, OrderStatus.RUNNING, changes, ended)
        condition = Q(pk=self.pk, status__in=sources) & (due or Q())
        if ended is None:
            return Order.objects.filter(condition).update(**changes) == 1
        with transaction.atomic():
            won = Order.objects.filter(condition & self._this_attempt()).update(**changes) == 1
            if won:
                ended.save(force_insert=True)
        return won

    def _announce(self, previous: str) -> None:
        signals.order_status_changed.send(
            sender=Order,
            order=self,
            previous=OrderStatus(previous),
            status=OrderStatus(self.status),
        )
        if self.is_finished:
            signals.order_finished.send(sender=Order, order=self)

    def _set(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if not isinstance(value, Combinable):  # an F() expression: the database's to compute
                setattr(self, name, value)


class OrderLock(models.Model):
    """A key held by an active order (or by synchronous code, with no order), so that
    two operations on the same objects cannot overlap. The primary key on ``key`` is
    the guarantee: a second holder's INSERT fails, whatever the timing."""

    key = models.CharField(max_length=255, primary_key=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.CASCADE, related_name="locks"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = PrimaryManager()

    def __str__(self) -> str:
        return self.key


class RequesterLock(models.Model):
    """The lock a requester holds while it places an order, so that the
    ``MAX_ACTIVE_ORDERS`` count and the INSERT after it cannot interleave with another
    placement of the same requester. On PostgreSQL it is an advisory lock and no row
    is written; elsewhere one row per requester, locked by an upsert (on SQLite, the
    write lock that statement takes). Rows of requesters idle past the retention are
    purged."""

    requester = models.CharField(max_length=64, primary_key=True)
    placed_at = models.DateTimeField(
        default=timezone.now, help_text="Last time this requester placed (or tried) an order."
    )

    objects = PrimaryManager()

    def __str__(self) -> str:
        return self.requester

    @classmethod
    def take(cls, requester: str) -> None:
        """Take the requester's lock, held until the transaction ends: one statement.
        PostgreSQL's advisory lock writes nothing, where the upsert wrote a row version
        on every POST: a transaction taking it costs half the wall clock (``python -m
        benchmarks.profile --time requester-lock``: 0.9-1.1 -> 0.4-0.5 ms)."""
        connection = connections[router.db_for_write(cls)]
        if connection.vendor == "postgresql":
            advisory_lock(connection, requester)
        else:
            upsert_row(RequesterLock(requester=requester), unique="requester", update="placed_at")


class WebhookDelivery(models.Model):
    """One attempt to POST a finished order to its ``callback_url``; rows are never updated."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="webhook_deliveries")
    attempt = models.PositiveSmallIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The receiver's HTTP status; empty when none came."
    )
    delivered = models.BooleanField(default=False, help_text="The receiver answered 2xx.")
    error = models.TextField(blank=True)

    objects = PrimaryManager()

    class Meta:
        ordering = ["order", "attempt"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"webhook of order {self.order_id}, attempt {self.attempt}"


class ProcessLease(models.Model):
    """A lease one process holds and renews while it lives, on the database's clock:
    the reconciler's leadership (``reconciler``) and each worker's presence
    (``worker:<node>:<incarnation>``). A lease not renewed for long is taken over
    (leadership) or read as the process having died (presence)."""

    name = models.CharField(max_length=255, primary_key=True)
    holder = models.CharField(max_length=255)
    renewed_at = models.DateTimeField()
    since = models.DateTimeField(help_text="Start of the holder's unbroken run of renewals.")

    objects = PrimaryManager()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder}"
