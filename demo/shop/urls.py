from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from demo.shop import jobs, views  # noqa: F401 (jobs: its task is orderable once imported)

app_name = "shop"

router = SimpleRouter()
router.register("pizzas", views.PizzaViewSet)

urlpatterns = [
    path("reports/<int:size>/", views.bake_report, name="report"),
    *router.urls,
]
