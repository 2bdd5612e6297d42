"""System checks: settings that would make orders fail later are reported at start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from async_orders.conf import DEFAULTS, conf
from async_orders.registry import colliding_endpoints, find_endpoint


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    unknown = sorted(set(getattr(settings, "ASYNC_ORDERS", {})) - set(DEFAULTS))
    return [
        Error(
            f"ASYNC_ORDERS has an unknown key {key!r}.",
            hint=f"The known keys are {', '.join(sorted(DEFAULTS))}.",
            id="async_orders.E001",
        )
        for key in unknown
    ]


@register()
def check_webhook_secret(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not conf.WEBHOOK_ALLOWED_HOSTS or conf.WEBHOOK_SECRET:
        return []
    return [
        Error(
            "ASYNC_ORDERS['WEBHOOK_ALLOWED_HOSTS'] allows webhooks but WEBHOOK_SECRET is empty.",
            hint="Set WEBHOOK_SECRET to a long random string and share it with the receivers.",
            id="async_orders.E003",
        )
    ]


@register(Tags.urls)
def check_schedulable_views(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"ASYNC_ORDERS['SCHEDULABLE_VIEWS'] names {name!r}, which is no URL name.",
            hint="Use the name given to path(), with its namespace: 'app:name'.",
            id="async_orders.E002",
        )
        for name in conf.SCHEDULABLE_VIEWS
        if find_endpoint(name) is None
    ]


@register(Tags.urls)
def check_unique_names(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"The URL name {name!r} of a schedulable view is given to {len(endpoints)} routes "
            f"of different views ({', '.join(repr(e.route) for e in endpoints)}); reverse() "
            "picks the last that fits, so its orders cannot be run.",
            hint="Give the schedulable view's route a unique URL name.",
            id="async_orders.E004",
        )
        for name, endpoints in colliding_endpoints().items()
        if any(endpoint.is_schedulable for endpoint in endpoints)
    ]
