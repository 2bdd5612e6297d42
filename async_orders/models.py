"""The Order: the source of truth for one call of a view, and its state machine.

Every status change is one conditional ``UPDATE ... WHERE status IN (...)`` that
reports whether it won, so two processes racing on one order can never both move
it (a redelivered message, a late worker): the loser sees ``False`` and stops.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import Combinable
from django.utils import timezone

from async_orders import signals

if TYPE_CHECKING:
    from async_orders.dispatch import ViewResponse


class Status(models.TextChoices):
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


#: Statuses from which an order can still start.
STARTABLE = (Status.SCHEDULED, Status.QUEUED)
#: Statuses in which an order still has work ahead of it.
ACTIVE = (Status.SCHEDULED, Status.QUEUED, Status.RUNNING)
#: Statuses an order never leaves.
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELED)


class OrderQuerySet(models.QuerySet["Order"]):
    def visible_to(self, user: Any) -> OrderQuerySet:
        """The orders ``user`` may see: staff see all, others their own."""
        if user.is_staff:
            return self
        if user.is_authenticated:
            return self.filter(owner=user)
        return self.filter(owner__isnull=True)


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
    view_name = models.CharField(max_length=200, db_index=True)
    method = models.CharField(max_length=10, default="POST")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    query = models.JSONField(default=dict, blank=True)
    data = models.JSONField(null=True, blank=True)
    origin = models.CharField(
        max_length=300,
        help_text="Scheme and host of the POST, so URLs the view builds point where the client is.",
    )

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress_current = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(
        default=False, help_text="Asked to stop while running; it stops at its next progress step."
    )

    # The outcome.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=200, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    resource_url = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True)
    callback_url = models.URLField(
        max_length=2000, blank=True, help_text="Where the finished order is POSTed (webhook)."
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    run_at = models.DateTimeField(null=True, blank=True, help_text="Not before this time.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="async_order_owner_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="async_order_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.view_name} order {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def start(self) -> bool:
        """Claim the order for one worker: scheduled/queued -> running, one attempt more."""
        won = self._move(
            STARTABLE, Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
        )
        if won:
            self.attempts += 1
        return won

    def complete(self, *, response: ViewResponse, resource_url: str) -> bool:
        """running -> completed, keeping the view's response."""
        return self._move(
            (Status.RUNNING,),
            Status.COMPLETED,
            resource_url=resource_url,
            **response.as_order_fields(),
        )

    def fail(self, error: dict[str, Any], response: ViewResponse | None = None) -> bool:
        """running -> failed with ``error`` (code, message, and the view's status/body if any)."""
        fields = response.as_order_fields() if response else {}
        return self._move((Status.RUNNING,), Status.FAILED, error=error, **fields)

    def cancel(self) -> bool:
        """Cancel: at once if it has not started, else ask the running view to stop.

        ``False`` when the order had already finished.
        """
        if self._move(STARTABLE, Status.CANCELED):
            return True
        asked = Order.objects.filter(pk=self.pk, status=Status.RUNNING).update(
            cancel_requested=True
        )
        if asked:
            self.cancel_requested = True
        return asked == 1

    def stop_canceled(self, current: int, total: int | None) -> bool:
        """running -> canceled once the view noticed, with the progress it had made."""
        return self._move(
            (Status.RUNNING,), Status.CANCELED, progress_current=current, progress_total=total
        )

    def report_progress(self, current: int, total: int | None, message: str | None) -> bool:
        """Store progress while running; ``False`` when the view should stop instead
        (the order was asked to cancel, or is no longer running)."""
        changes: dict[str, Any] = {"progress_current": current, "progress_total": total}
        if message is not None:
            changes["message"] = message
        still_wanted = Order.objects.filter(
            pk=self.pk, status=Status.RUNNING, cancel_requested=False
        )
        if still_wanted.update(**changes) != 1:
            return False
        self._set(changes)
        signals.order_progress.send(sender=Order, order=self)
        return True

    def _move(self, sources: tuple[Status, ...], target: Status, **changes: Any) -> bool:
        if target in FINISHED:
            changes["finished_at"] = timezone.now()
        changes["status"] = target
        won = Order.objects.filter(pk=self.pk, status__in=sources).update(**changes) == 1
        if won:
            previous = self.status
            self._set(changes)
            self._announce(previous)
        return won

    def _announce(self, previous: str) -> None:
        signals.order_status_changed.send(
            sender=Order, order=self, previous=Status(previous), status=Status(self.status)
        )
        if self.is_finished:
            signals.order_finished.send(sender=Order, order=self)

    def _set(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if not isinstance(value, Combinable):  # an F() expression: the database's to compute
                setattr(self, name, value)


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

    class Meta:
        ordering = ["order", "attempt"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"webhook of order {self.order_id}, attempt {self.attempt}"
