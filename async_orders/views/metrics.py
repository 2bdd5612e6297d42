"""``GET /async/metrics/``: the Prometheus metrics, for scrapers only.

Answers 404 while ``METRICS_ENABLED`` is off (or ``prometheus_client`` is missing), as
if the route did not exist; with ``METRICS_TOKEN`` set, 401 unless the request sends
``Authorization: Bearer <token>``. Mounted by ``async_orders.urls``; a project that
wants it elsewhere routes ``path("metrics/", async_orders.views.metrics_view)`` itself.
"""

from __future__ import annotations

import hmac

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from async_orders import metrics
from async_orders.conf import conf


@never_cache
@require_GET
def view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus' text format."""
    if not metrics.recording():
        raise Http404("Metrics are off.")
    if not _authorized(request, conf.METRICS_TOKEN):
        response = HttpResponse("A bearer token is required.", status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)


def _authorized(request: HttpRequest, token: str) -> bool:
    """No token set lets anyone in; a set one is compared in constant time."""
    if not token:
        return True
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
