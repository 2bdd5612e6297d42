"""Views the tests order: one behaviour each."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import redis
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.views import View
from django.views.decorators.csrf import ensure_csrf_cookie
from rest_framework import permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from async_orders import ProgressItems, current_order, fail_on_error, schedulable
from tests.testapp.models import Execution, Item

GATE_TIMEOUT = 30.0


def _describe(request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
    order = current_order()
    return {
        "method": request.method,
        "path": request.path,
        "query": request.GET.dict(),
        "body": json.loads(request.body) if request.body else None,
        "kwargs": {name: str(value) for name, value in kwargs.items()},
        "user": request.user.get_username() if request.user.is_authenticated else None,
        "order": str(order.pk) if order else None,
        "same_order": getattr(request, "async_order", None) is order,
        "absolute": request.build_absolute_uri("/somewhere/"),
    }


@schedulable
def echo(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    return JsonResponse(_describe(request, **kwargs))


def not_opted_in(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


def catch_all(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    """Not opted in; a route that shadows later ones (tests/shadowing_urls.py)."""
    return JsonResponse({"caught": True})


@schedulable
def redirects(request: HttpRequest) -> HttpResponseRedirect:
    """Redirects wherever ``?to=`` says, as a view could after creating something."""
    return HttpResponseRedirect(request.GET["to"])


@schedulable
@login_required
def members_only(request: HttpRequest) -> JsonResponse:
    """Redirects an anonymous caller to LOGIN_URL, as ``login_required`` does."""
    return JsonResponse({"member": request.user.get_username()})


def listed_in_settings(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_describe(request))


@schedulable(method="PUT")
class EchoView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(_describe(request))

    def put(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(_describe(request))


@schedulable
class StaffOnly(APIView):
    permission_classes = [permissions.IsAdminUser]

    def post(self, request: Request) -> Response:
        return Response({"user": request.user.get_username()})


@schedulable(method="POST")
def post_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"method": request.method})


@schedulable
def answers_404(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "No such thing."}, status=404)


@schedulable
def answers_text(request: HttpRequest) -> HttpResponse:
    """A 2xx that is neither 200 nor 201, and not JSON: what /result/ replays as is."""
    return HttpResponse("Accepted, in plain text.", status=203, content_type="text/plain")


@schedulable
def raises(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("a secret that must not reach clients")


@schedulable
def fails_on_error(request: HttpRequest) -> JsonResponse:
    with fail_on_error("Could not reach the frobnicator."):
        raise ConnectionError("10.0.0.7 refused the connection")


@schedulable
def fails_midway(request: HttpRequest) -> JsonResponse:
    """Raises at item 3 of 10."""
    for step in ProgressItems(range(10)):
        if step == 3:
            raise RuntimeError("item 3 is broken")
    return JsonResponse({})


@schedulable
def logs_a_line(request: HttpRequest) -> JsonResponse:
    logging.getLogger("testapp").info("the view says hello")
    return JsonResponse({})


@schedulable
def raises_naming_its_order(request: HttpRequest) -> JsonResponse:
    order = current_order()
    raise RuntimeError(f"order {order.pk if order else None} broke")


@schedulable
def gated(request: HttpRequest, steps: int) -> JsonResponse:
    """Does one step each time the test opens the gate file of that step."""
    gate = Path(json.loads(request.body)["gate"])
    for step in ProgressItems(range(steps), message="stepping"):
        _wait_for(gate / str(step))
    return JsonResponse({"steps": steps})


@schedulable(retries=2, retry_on=(ConnectionError,), retry_backoff=0.001)
def flaky(request: HttpRequest) -> JsonResponse:
    """Raises ConnectionError until its order's attempt number reaches ``succeed_on``."""
    order = current_order()
    if order.attempts < json.loads(request.body)["succeed_on"]:
        raise ConnectionError(f"attempt {order.attempts} lost its connection")
    if json.loads(request.body).get("then_raise"):
        raise ValueError("not retryable")
    return JsonResponse({"attempts": order.attempts})


@schedulable(queue="async-orders-tests-routed", routing_key="async-orders-tests-routed")
def routed(request: HttpRequest) -> JsonResponse:
    """Its messages go to a queue of its own, which no test worker consumes."""
    return JsonResponse({})


@schedulable
def counted(request: HttpRequest) -> JsonResponse:
    """Records each execution, so tests can prove none ran twice."""
    _record_execution()
    return JsonResponse({"ok": True})


def _record_execution() -> None:
    order = current_order()
    Execution.objects.create(order_id=order.pk, attempt=order.attempts)


@schedulable(retries=1, locks=True)
def gated_retrying(request: HttpRequest, steps: int) -> JsonResponse:
    """The gated view, counted, with one retry (a lost worker's too) and a lock."""
    _record_execution()
    return gated(request, steps)


@schedulable(locks=True)
def gated_once(request: HttpRequest, steps: int) -> JsonResponse:
    """The same with no attempt to spare."""
    _record_execution()
    return gated(request, steps)


def _pizza_keys(envelope: Any) -> list[str]:
    return [f"pizza:{envelope.kwargs['pk']}"]


@schedulable(locks=_pizza_keys)
def bake_pizza(request: HttpRequest, pk: int) -> JsonResponse:
    _record_execution()
    return JsonResponse({"baked": pk})


class PizzaInput(serializers.Serializer):
    name = serializers.CharField(max_length=20)
    size = serializers.ChoiceField(choices=["small", "large"])


class PageQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1)


@schedulable(data_serializer=PizzaInput, query_serializer=PageQuery)
def typed_inputs(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_describe(request))


@schedulable
def big_response(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"blob": "x" * 2000})


@ensure_csrf_cookie
def csrf_token(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"token": get_token(request)})


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + GATE_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


@schedulable
def canceled_midway(request: HttpRequest) -> JsonResponse:
    """Iterates 5 items and is canceled (as by a DELETE) while doing the third."""
    for step in ProgressItems(range(5)):
        if step == 2:
            current_order().cancel()
    return JsonResponse({"finished": True})


class ItemSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = Item
        fields = ["url", "id", "name"]
        extra_kwargs = {"url": {"view_name": "shop:item-detail"}}


class ItemViewSet(viewsets.ModelViewSet):
    """Only ``create`` and ``partial_update`` are orderable; each user sees only
    their own items, so ordering a change to somebody else's item must fail."""

    queryset = Item.objects.all()
    serializer_class = ItemSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self) -> Any:
        return Item.objects.filter(owner=self.request.user)

    @schedulable
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @schedulable(method="PATCH")
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().partial_update(request, *args, **kwargs)

    def perform_create(self, serializer: ItemSerializer) -> None:
        serializer.save(owner=self.request.user)


def _ledgered(request: HttpRequest, steps: int) -> JsonResponse:
    """Appends ``<order>:<attempt>:<step>:<pid>`` to a Redis list at every step, then
    sleeps ``step_seconds``: the record, outside the database under test, of which
    attempt did what in which order."""
    envelope = json.loads(request.body)
    ledger = redis.Redis.from_url(envelope["ledger"])
    for step in ProgressItems(range(steps)):
        order = current_order()
        ledger.rpush("ledger", f"{order.pk}:{order.attempt}:{step}:{os.getpid()}")
        time.sleep(envelope["step_seconds"])
    return JsonResponse({"steps": steps})


@schedulable
def ledgered(request: HttpRequest, steps: int) -> JsonResponse:
    return _ledgered(request, steps)


@schedulable(retries=1)
def ledgered_retrying(request: HttpRequest, steps: int) -> JsonResponse:
    return _ledgered(request, steps)


@schedulable
def labels_itself(request: HttpRequest) -> JsonResponse:
    """Adds the labels its body names to its own order, as a view may."""
    order = current_order()
    if order is not None:
        order.add_labels(json.loads(request.body))
    return JsonResponse({"labeled": True})


@schedulable(retries=1, retry_backoff=0.01, timeout=60, start_deadline=60, locks=True)
def ledgered_timed(request: HttpRequest, steps: int) -> JsonResponse:
    """The ledgered view with time limits (an order asks for shorter ones) and a lock."""
    return _ledgered(request, steps)


@schedulable(retries=1, retry_backoff=0.01, timeout=60, locks=True)
def ledgered_stuck(request: HttpRequest, steps: int) -> JsonResponse:
    """Ledgers step 0, sleeps ``step_seconds`` reaching no checkpoint at all (as a view
    stuck in a C call or on a socket would), then ledgers step 1: only a process
    replaced while it sleeps keeps step 1 from running beside the next attempt."""
    envelope = json.loads(request.body)
    ledger = redis.Redis.from_url(envelope["ledger"])
    order = current_order()
    assert order is not None
    ledger.rpush("ledger", f"{order.pk}:{order.attempt}:0:{os.getpid()}")
    time.sleep(envelope["step_seconds"])
    ledger.rpush("ledger", f"{order.pk}:{order.attempt}:1:{os.getpid()}")
    return JsonResponse({"steps": steps})
