from __future__ import annotations

from django.contrib import admin

from async_orders.models import Order, WebhookDelivery


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
    inlines = [WebhookDeliveryInline]
    list_display = ["id", "view_name", "status", "owner", "created_at", "finished_at"]
    list_filter = ["status", "view_name", "created_at"]
    search_fields = ["id", "owner__username"]
    readonly_fields = [field.name for field in Order._meta.fields]
