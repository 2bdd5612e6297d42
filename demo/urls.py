from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from demo.shop.views import report_page

urlpatterns = [
    path("", report_page, name="home"),
    path("admin/", admin.site.urls),
    path("async/", include("async_orders.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("schema/swagger/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger"),
    path(
        "schema/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="async_orders/redoc.html"),
        name="redoc",
    ),
    path("shop/", include("demo.shop.urls")),
]
