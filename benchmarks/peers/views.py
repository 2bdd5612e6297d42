"""The peers' HTTP API, written as a user of each would write it with DRF.

``POST .../jobs/`` enqueues the no-op job with the request's JSON and answers ``202``
with the status URL in ``Location``; ``GET .../jobs/<id>/`` reads the job's result row
and answers ``202`` while it is pending or running, ``200`` once it is finished. Both
peers share the views; each subclass names its queue and its result row.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import Http404
from django.urls import reverse
from django_celery_results.models import TaskResult
from django_tasks_db.models import DBTaskResult
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.peers import celery_results, tasks_db


class JobCreate(APIView):
    """Enqueue the job; the answer points at :class:`JobDetail`."""

    detail_name: str = ""

    def enqueue(self, data: Any) -> str:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        job_id = self.enqueue(request.data)
        url = reverse(self.detail_name, kwargs={"job_id": job_id})
        body = {"id": job_id, "status": "queued", "url": url}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class JobDetail(generics.RetrieveAPIView):
    """The job's result row; ``202`` until its status is one of ``finished``."""

    finished: frozenset[str] = frozenset()
    status_field = "status"

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = self.get_object()
        done = getattr(job, self.status_field) in self.finished
        code = status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
        return Response(self.get_serializer(job).data, status=code)


# Celery + django-celery-results ---------------------------------------------------


class TaskResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskResult
        fields = ["task_id", "task_name", "status", "result", "date_created", "date_done"]


class CeleryJobCreate(JobCreate):
    detail_name = "peer-celery-job"

    def enqueue(self, data: Any) -> str:
        return str(celery_results.noop_job.delay(data).id)


class CeleryJobDetail(JobDetail):
    """Celery writes no row until a worker starts the task: no row means ``PENDING``."""

    queryset = TaskResult.objects.all()
    serializer_class = TaskResultSerializer
    lookup_field = "task_id"
    lookup_url_kwarg = "job_id"
    finished = frozenset({"SUCCESS", "FAILURE", "REVOKED"})

    def get_object(self) -> models.Model:
        try:
            return super().get_object()
        except Http404:
            return TaskResult(task_id=self.kwargs["job_id"], status="PENDING")


# django-tasks + django-tasks-db ---------------------------------------------------


class DBTaskResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = DBTaskResult
        fields = ["id", "task_path", "status", "return_value", "enqueued_at", "finished_at"]


class TasksDBJobCreate(JobCreate):
    detail_name = "peer-tasks-db-job"

    def enqueue(self, data: Any) -> str:
        return str(tasks_db.noop_job.enqueue(data).id)


class TasksDBJobDetail(JobDetail):
    queryset = DBTaskResult.objects.all()
    serializer_class = DBTaskResultSerializer
    lookup_url_kwarg = "job_id"
    finished = frozenset({"SUCCESSFUL", "FAILED"})
