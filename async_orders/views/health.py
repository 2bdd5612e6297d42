"""``GET /async/health/``: the health facts as JSON, 200 when all hold, else 503.

A plain Django view, not DRF: it authenticates nobody, so a liveness probe touches
neither the database nor the broker. Off unless ``HEALTH_VIEW`` is set, since each
call asks the database and opens a broker connection.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from async_orders import health
from async_orders.conf import conf


@never_cache
@require_safe
def health_view(request: HttpRequest) -> JsonResponse:
    """``?probe=live|ready|all`` (default ``all``): one boolean per fact asked, and
    ``healthy``; booleans only, nothing an outsider could use."""
    if not conf.HEALTH_VIEW:
        raise Http404()
    probe = request.GET.get("probe", "all")
    if probe not in health.PROBES:
        return JsonResponse({"probe": f"One of {', '.join(health.PROBES)}."}, status=400)
    report = health.check(probe)
    return JsonResponse(
        {"healthy": report.healthy, **report.facts}, status=200 if report.healthy else 503
    )
