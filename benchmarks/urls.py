from __future__ import annotations

from django.urls import include, path

from benchmarks import views

urlpatterns = [
    path("async/", include("async_orders.urls")),
    path("baseline/rows/", views.RowCreate.as_view(), name="row-create"),
    path("baseline/rows/<uuid:pk>/", views.RowDetail.as_view(), name="row-detail"),
    path("noop/", views.noop, name="noop"),
    path("peers/", include("benchmarks.peers.urls")),
]
