from __future__ import annotations

from django.contrib import admin

from demo.shop.models import Pizza

admin.site.register(Pizza)
