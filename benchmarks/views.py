"""Plain DRF views (the baselines) and the no-op view that orders call."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework import generics, serializers

from async_orders import schedulable
from benchmarks import work
from benchmarks.models import Row


class RowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Row
        fields = ["id", "name", "created_at"]


class RowCreate(generics.CreateAPIView):
    """Baseline of POST order: validate a small JSON body, insert one row, answer 201."""

    queryset = Row.objects.all()
    serializer_class = RowSerializer


class RowDetail(generics.RetrieveAPIView):
    """Baseline of GET order: one row by UUID primary key."""

    queryset = Row.objects.all()
    serializer_class = RowSerializer


@schedulable
def noop(request: HttpRequest) -> JsonResponse:
    return JsonResponse(work.noop())
