from __future__ import annotations

from django.contrib import admin

from async_orders.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "view_name", "status", "owner", "created_at", "finished_at"]
    list_filter = ["status", "view_name", "created_at"]
    search_fields = ["id", "owner__username"]
    readonly_fields = [field.name for field in Order._meta.fields]
