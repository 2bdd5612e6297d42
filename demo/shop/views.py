"""Two views a real project might order (a DRF create, and a slow report), and the
page that orders the report from a browser through the JavaScript client."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from async_orders import ProgressItems, fail_on_error, schedulable
from demo.shop.models import Pizza

#: A report of this size fails, to show what a failed order looks like.
UNLUCKY_SIZE = 13
SECONDS_PER_LINE = 0.1


class PizzaSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = Pizza
        fields = ["url", "id", "name", "created_at"]
        extra_kwargs = {"url": {"view_name": "shop:pizza-detail"}}


class PizzaViewSet(viewsets.ModelViewSet):
    """An ordinary DRF viewset; only ``create`` may be ordered. It answers 201 with a
    ``Location``, which becomes the order's ``resource_url``."""

    queryset = Pizza.objects.all()
    serializer_class = PizzaSerializer

    @schedulable
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)


@schedulable(method="POST")
def bake_report(request: HttpRequest, size: int) -> JsonResponse:
    """Takes ``size`` tenths of a second, reporting progress; size 13 fails."""
    total = 0
    for line in ProgressItems(range(size), message="Baking the report"):
        with fail_on_error("The oven broke down."):
            total += _bake_line(line, size)
    return JsonResponse({"size": size, "total": total})


def _bake_line(line: int, size: int) -> int:
    time.sleep(SECONDS_PER_LINE)
    if size == UNLUCKY_SIZE and line == size - 1:
        raise RuntimeError("oven thermocouple reads -273 C")
    return line


@ensure_csrf_cookie
def report_page(request: HttpRequest) -> HttpResponse:
    """The demo's home page. It sets the CSRF cookie that the JS client sends back:
    the page's own HTML has no form token for it to read."""
    return render(request, "shop/report_page.html", {"unlucky_size": UNLUCKY_SIZE})
