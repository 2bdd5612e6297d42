"""The peers' endpoints, mounted under ``peers/`` by :mod:`benchmarks.urls`."""

from __future__ import annotations

from django.urls import path

from benchmarks.peers import views

urlpatterns = [
    path("celery/jobs/", views.CeleryJobCreate.as_view(), name="peer-celery-jobs"),
    path("celery/jobs/<str:job_id>/", views.CeleryJobDetail.as_view(), name="peer-celery-job"),
    path("tasks-db/jobs/", views.TasksDBJobCreate.as_view(), name="peer-tasks-db-jobs"),
    path(
        "tasks-db/jobs/<uuid:job_id>/",
        views.TasksDBJobDetail.as_view(),
        name="peer-tasks-db-job",
    ),
]
