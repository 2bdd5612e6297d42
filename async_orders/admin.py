"""The Order admin: a dashboard for operators, read-only except for two actions.

Orders are written by their state machine only (see ``models.py``), so nothing here
edits a field: operators watch, cancel, and re-run failed orders as new orders, the
way a client would, leaving the failed one as the record of what happened.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.exceptions import APIException

from async_orders.attempts import OrderAttempt
from async_orders.exceptions import CancelUnsupported
from async_orders.locks import Locked
from async_orders.models import RERUNNABLE, Order, OrderStatus, WebhookDelivery
from async_orders.ownership import CANCEL_PERMISSION, RERUN_PERMISSION
from async_orders.views.lifecycle import rerun
from async_orders.views.orders import cancel

#: The re-run action's count of orders it could not place now.
NOT_PLACED = "not placed now (locked, too many active, no longer orderable, or refused)"
#: Characters of a stored response shown on the order's page; the rest is cut.
RESPONSE_PREVIEW_CHARS = 10_000


class OrderAttemptInline(admin.TabularInline):
    """Every ended attempt, with its traceback: the API shows the rest, never that."""

    model = OrderAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "number",
        "started_at",
        "finished_at",
        "worker",
        "outcome",
        "error",
        "attempt_traceback",
    )

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False

    @admin.display(description="traceback")
    def attempt_traceback(self, attempt: OrderAttempt) -> str:
        return _pre(attempt.traceback) if attempt.traceback else "-"


class WebhookDeliveryInline(admin.TabularInline):
    """Every attempt to deliver the order's webhook, read-only."""

    model = WebhookDelivery
    extra = 0
    can_delete = False
    readonly_fields = ["attempt", "attempted_at", "response_status", "delivered", "error"]

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    inlines = [OrderAttemptInline, WebhookDeliveryInline]
    list_display = [
        "order_id",
        "view_name",
        "status",
        "owner",
        "progress_bar",
        "created_at",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "view_name", "created_at", "finished_at"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    search_fields = ["id", "owner__username", "owner__email", "requester", "=batch_id"]
    actions = ["cancel_orders", "rerun_failed_orders"]
    fieldsets = [
        (None, {"fields": ["id", "kind", "view_name", "status", "owner", "requester", "attempts"]}),
        # A task that another TASKS backend runs: its alias and that backend's result id.
        ("Task", {"fields": ["task_backend", "external_id"]}),
        ("Lifecycle", {"fields": ["timeout", "start_deadline", "rerun_of"]}),
        ("Envelope", {"fields": ["envelope", "origin", "idempotency_key"]}),
        ("Batch and labels", {"fields": ["batch", "labels"]}),
        ("Progress", {"fields": ["progress_bar", "message", "cancel_requested"]}),
        (
            "Outcome",
            {"fields": ["error_json", "failure_traceback", "resource_url", "stored_response"]},
        ),
        ("Times", {"fields": ["created_at", "run_at", "started_at", "finished_at"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> list[str]:
        return [str(name) for _, section in self.fieldsets for name in section["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders are placed through the order endpoint, validated there

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The order's page without Save buttons: every field is read-only. The change
        permission stays, as the cancel and re-run actions need it."""
        no_save = {"show_save": False, "show_save_and_continue": False}
        return super().change_view(
            request, object_id, form_url, {**no_save, **(extra_context or {})}
        )

    @admin.display(description="id", ordering="id")
    def order_id(self, order: Order) -> str:
        """The UUID on one line: the column is narrow, and a UUID wrapped over four
        lines can be neither read nor compared at a glance."""
        return format_html('<span style="white-space: nowrap">{}</span>', order.pk)

    @admin.display(description="progress")
    def progress_bar(self, order: Order) -> str:
        """A bar when the total is known, else the count of items done."""
        if not order.progress_total:
            return f"{order.progress_current}" if order.progress_current else "-"
        percent = round(min(order.progress_current / order.progress_total, 1.0) * 100)
        return format_html(
            '<progress value="{}" max="{}" title="{}%">{}%</progress> {}/{}',
            order.progress_current,
            order.progress_total,
            percent,
            percent,
            order.progress_current,
            order.progress_total,
        )

    @admin.display(description="envelope")
    def envelope(self, order: Order) -> str:
        """What the worker calls: the validated order request, as the client could resend it."""
        envelope = {
            "method": order.method,
            "args": order.args,
            "kwargs": order.kwargs,
            "query": order.query,
            "data": order.data,
        }
        return _pre(json.dumps(envelope, indent=2, sort_keys=True))

    @admin.display(description="batch")
    def batch(self, order: Order) -> str:
        """The batch it was placed in, as the list of that batch's orders."""
        if not order.batch_id:
            return "-"
        changelist = reverse("admin:async_orders_order_changelist")
        return format_html(
            '<a href="{}?batch_id={}">{}</a>', changelist, order.batch_id, order.batch_id
        )

    @admin.display(description="error")
    def error_json(self, order: Order) -> str:
        return _pre(json.dumps(order.error, indent=2)) if order.error else "-"

    @admin.display(description="traceback")
    def failure_traceback(self, order: Order) -> str:
        """Why the view raised, kept for operators only: the API never shows it."""
        return _pre(order.traceback) if order.traceback else "-"

    @admin.display(description="stored response")
    def stored_response(self, order: Order) -> str:
        """The view's response as ``/result/`` replays it, decoded for reading."""
        if order.response_status is None:
            return "-"
        body = bytes(order.response_body or b"").decode("utf-8", errors="replace")
        if len(body) > RESPONSE_PREVIEW_CHARS:
            body = body[:RESPONSE_PREVIEW_CHARS] + "\n[cut]"
        head = f"{order.response_status} {order.response_content_type or ''}".strip()
        return _pre(f"{head}\n\n{body}")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RERUN_PERMISSION)

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Cancel each order as ``DELETE`` would: waiting ones at once, running ones at
        their next progress step; finished ones are left alone and counted."""
        outcomes = {"canceled": 0, "asked to stop": 0, "already finished": 0, "cannot cancel": 0}
        for order in queryset:
            try:
                canceled = cancel(order)
            except CancelUnsupported:  # a task another backend runs, or cannot drop
                outcomes["cannot cancel"] += 1
                continue
            if not canceled:
                outcomes["already finished"] += 1
            elif order.status == OrderStatus.CANCELED:
                outcomes["canceled"] += 1
            else:
                outcomes["asked to stop"] += 1
        level = _level(outcomes, "already finished", "cannot cancel")
        self.message_user(request, _summary(outcomes), level)

    @admin.action(description="Re-run selected failed or canceled orders", permissions=["rerun"])
    def rerun_failed_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Place each failed or canceled order again, as ``POST .../rerun/`` does (the
        same function: same envelope and owner, linked by ``rerun_of``). One that
        cannot be placed now (its objects are locked, its owner has too many active
        orders) is counted, as the endpoint would have refused it."""
        outcomes = {"re-run": 0, NOT_PLACED: 0}
        failed = queryset.filter(status__in=RERUNNABLE).select_related("owner")
        for order in failed:
            try:
                rerun(order)
                outcomes["re-run"] += 1
            except (Locked, APIException):  # as the endpoint would refuse it now
                outcomes[NOT_PLACED] += 1
        outcomes["skipped, not failed or canceled"] = queryset.count() - len(failed)
        level = messages.SUCCESS if outcomes["re-run"] == len(queryset) else messages.WARNING
        self.message_user(request, _summary(outcomes), level)


def _pre(text: str) -> str:
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


def _summary(outcomes: dict[str, int]) -> str:
    return (
        "; ".join(f"{count} {what}" for what, count in outcomes.items() if count) or "Nothing done"
    )


def _level(outcomes: dict[str, int], *unwanted: str) -> int:
    return messages.WARNING if any(outcomes[key] for key in unwanted) else messages.SUCCESS
