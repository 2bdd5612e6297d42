"""An order's attempts: one row per attempt that ended, written by the statement that
ended it, and the history a client reads.

A row is written when an attempt ends (its outcome, a retry, its recovery after its
worker was lost), in the same transaction as the order's move, never at the claim:
the claim is the hot path, and the attempt running now is the order row itself
(``attempts``, ``started_at``, ``worker``), shown by :func:`history` as the last
entry. So a history costs the worker one INSERT per attempt, and never disagrees
with the order: the move that ended the attempt and its row commit together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from async_orders.models import Order


class AttemptOutcome(models.TextChoices):
    """How one attempt ended; ``error.code`` says why one failed."""

    #: It is running now (shown for the order's current attempt only; never stored).
    RUNNING = "running", "Running"
    #: The view answered and the order completed.
    COMPLETED = "completed", "Completed"
    #: It failed: the order failed, or was retried (a later attempt exists).
    FAILED = "failed", "Failed"
    #: It stopped because the order was canceled.
    CANCELED = "canceled", "Canceled"


class OrderAttempt(models.Model):
    """One ended attempt of an order; rows are written once and never updated."""

    order = models.ForeignKey(
        "async_orders.Order", on_delete=models.CASCADE, related_name="attempt_rows"
    )
    number = models.PositiveIntegerField(help_text="1 for the first attempt: the fencing token.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    worker = models.CharField(max_length=200, blank=True, help_text="<celery node>:<pid>")
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    error = models.JSONField(
        null=True, blank=True, help_text="{code, message, ...} of a failed attempt."
    )
    traceback = models.TextField(blank=True, help_text="For operators; never in the API.")
    error_class = models.CharField(
        max_length=300, blank=True, help_text="Dotted path of the exception; never in the API."
    )

    class Meta:
        app_label = "async_orders"
        ordering = ["order", "number"]
        constraints = [
            models.UniqueConstraint(fields=["order", "number"], name="async_attempt_unique"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of order {self.order_id} ({self.outcome})"


def ended_attempt(order: Order, outcome: AttemptOutcome, **failure: Any) -> OrderAttempt:
    """The row (unsaved) of ``order``'s attempt that is ending now, its number the
    order's ``attempts``; ``failure`` names its ``error``, ``traceback`` and
    ``error_class`` when it failed. The move that ends the attempt writes it."""
    return OrderAttempt(
        order_id=order.pk,
        number=order.attempts,
        started_at=order.started_at,
        worker=order.worker,
        outcome=outcome,
        **failure,
    )


def history(order: Order) -> list[OrderAttempt]:
    """Every attempt of ``order``, oldest first: the ended ones stored, then the one
    running now, read from the order itself (not saved)."""
    ended = list(OrderAttempt.objects.filter(order_id=order.pk).order_by("number"))
    if order.status == AttemptOutcome.RUNNING and not any(
        row.number == order.attempts for row in ended
    ):
        ended.append(
            OrderAttempt(
                order_id=order.pk,
                number=order.attempts,
                started_at=order.started_at,
                finished_at=None,
                worker=order.worker,
                outcome=AttemptOutcome.RUNNING,
            )
        )
    return ended
