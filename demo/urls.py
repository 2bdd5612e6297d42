from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("async/", include("async_orders.urls")),
    path("shop/", include("demo.shop.urls")),
]
