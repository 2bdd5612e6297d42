"""System checks: settings that would make orders fail later are reported at start-up."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.module_loading import import_string

from async_orders import metrics
from async_orders.conf import DEFAULTS, KINDS, Kind, conf, configured
from async_orders.registry import colliding_endpoints, find_endpoint
from async_orders.worker import role_leases


@register()
def check_settings_is_a_dict(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "ASYNC_ORDERS", {})
    if isinstance(value, dict):
        return []
    return [
        Error(
            f"ASYNC_ORDERS is {value!r}, not a dict: every setting has its default.",
            hint="Write ASYNC_ORDERS = {} (or leave it out) and add the keys to change.",
            id="async_orders.E008",
        )
    ]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    unknown = sorted(set(configured()) - set(DEFAULTS))
    return [
        Error(
            f"ASYNC_ORDERS has an unknown key {key!r}.",
            hint=f"The known keys are {', '.join(sorted(DEFAULTS))}.",
            id="async_orders.E001",
        )
        for key in unknown
    ]


@register()
def check_setting_values(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every configured value of the kind its setting takes (E005) and in its range
    (E006); unknown keys are E001's alone."""
    return [
        error
        for name, value in configured().items()
        if name in KINDS
        for error in _value_errors(name, value, KINDS[name])
    ]


def _value_errors(name: str, value: Any, kind: Kind) -> list[CheckMessage]:
    if value is None and kind.optional:
        return []
    where = f"ASYNC_ORDERS[{name!r}] is {value!r}"
    if not kind.accepts(value):
        return [Error(f"{where}, not {kind.description}.", hint=_hint(name, kind), id=E_TYPE)]
    if isinstance(value, int | float) and not kind.in_range(value):
        message = f"{where}: it must be{kind.range}."
        return [Error(message, hint=_hint(name, kind), id=E_RANGE)]
    return []


def _well_formed(*names: str) -> bool:
    """Whether these settings hold values of their kind; the checks that read them
    wait until they do, so one mistake is one error (E005/E006), not several."""
    project = configured()
    return not any(
        _value_errors(name, project[name], KINDS[name]) for name in names if name in project
    )


def _hint(name: str, kind: Kind) -> str:
    none = ", or None" if kind.optional else ""
    return f"Set it to {kind.description}{kind.range}{none}; the default is {DEFAULTS[name]!r}."


#: Ids of the value checks; stable, so that projects can silence them by id.
E_TYPE = "async_orders.E005"
E_RANGE = "async_orders.E006"


@register()
def check_webhook_secret(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not _well_formed("WEBHOOK_ALLOWED_HOSTS", "WEBHOOK_SECRET"):
        return []
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
    if not _well_formed("SCHEDULABLE_VIEWS"):
        return []
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


@register()
def check_metrics_available(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not _well_formed("METRICS_ENABLED") or not conf.METRICS_ENABLED:
        return []
    if metrics.AVAILABLE:
        return []
    return [
        Error(
            "ASYNC_ORDERS['METRICS_ENABLED'] is True but prometheus_client is not installed.",
            hint="Install the metrics extra: pip install 'async-orders[metrics]'.",
            id="async_orders.E007",
        )
    ]


@register()
def check_class_paths(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Import paths of DRF classes are resolved now, not by the first POST (a 500)."""
    names = ("AUTHENTICATION_CLASSES", "PERMISSION_CLASSES", "THROTTLE_CLASSES")
    if not _well_formed(*names):
        return []
    project = configured()
    return [
        error
        for name in names
        for path in project.get(name) or ()
        if isinstance(path, str)
        for error in _import_errors(name, path)
    ]


def _import_errors(name: str, path: str) -> list[CheckMessage]:
    try:
        import_string(path)
    except ImportError as error:
        return [
            Error(
                f"ASYNC_ORDERS[{name!r}] names {path!r}, which cannot be imported: {error}",
                hint="Give the dotted path of a class, e.g. 'rest_framework.permissions.AllowAny'.",
                id="async_orders.E009",
            )
        ]
    return []


@register()
def check_lease_timing(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The relations between the lease settings that docs/settings.md states: a lease
    outlives a missed renewal, and an outage the reconciler could not see outlives no
    lease."""
    names = ("HEARTBEAT_INTERVAL", "WORKER_LOST_AFTER", "LEASE_MARGIN", "RECONCILE_INTERVAL")
    if not _well_formed(*names):
        return []
    beat, lost, margin = conf.HEARTBEAT_INTERVAL, conf.WORKER_LOST_AFTER, conf.LEASE_MARGIN
    errors: list[CheckMessage] = []
    if lost < 2 * beat:
        errors.append(
            Error(
                f"ASYNC_ORDERS['WORKER_LOST_AFTER'] ({lost:g} s) is less than two "
                f"HEARTBEAT_INTERVALs ({beat:g} s): one late renewal would make a live "
                "worker look dead and its order run again.",
                hint="Keep WORKER_LOST_AFTER a few heartbeats long (defaults: 20 and 5).",
                id="async_orders.E010",
            )
        )
    if beat + role_leases.leadership_ttl() >= lost + margin:
        errors.append(
            Error(
                "ASYNC_ORDERS['HEARTBEAT_INTERVAL'] + 2 x RECONCILE_INTERVAL is not below "
                "WORKER_LOST_AFTER + LEASE_MARGIN: a database outage the reconciler did not "
                "notice could outlast a lease.",
                hint="Shorten RECONCILE_INTERVAL or lengthen LEASE_MARGIN (defaults: 5 and 10).",
                id="async_orders.E011",
            )
        )
    return errors


#: The name of the app Celery makes up when no app was created in this process.
CELERY_FALLBACK_APP = "default"


@register()
def check_celery_app(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Orders are published through the current Celery app. When the project's app was
    never imported in this process, that is Celery's fallback app (broker
    ``amqp://localhost``): every POST answers 302 and its order waits, silently,
    until the reconciler republishes it (``REPUBLISH_AFTER``, 300 s)."""
    app = current_app._get_current_object()
    if _is_the_projects(app):
        return []
    found = "no Celery app" if app.main == CELERY_FALLBACK_APP else f"the Celery app {app.main!r}"
    return [
        Error(
            f"Orders would be published through {found}, not one configured from the "
            f"project's CELERY_ settings (its broker is {app.conf.broker_url!r}).",
            hint="Import your Celery app when Django starts: in yourproject/__init__.py, "
            "'from .celery import app as celery_app' and '__all__ = (\"celery_app\",)'.",
            id="async_orders.E012",
        )
    ]


def _is_the_projects(app: Any) -> bool:
    """Whether ``app`` is one the project made, with the broker its settings name."""
    wanted = getattr(settings, "CELERY_BROKER_URL", None)
    return app.main != CELERY_FALLBACK_APP and wanted in (None, app.conf.broker_url)


@register(Tags.urls)
def check_schema_pages(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The schema's pages, mounted as the quickstart shows, need ``drf_spectacular``
    among the installed apps for their templates; nothing says so until a 500."""
    if apps.is_installed("drf_spectacular"):
        return []
    from drf_spectacular.views import (
        SpectacularRedocView,
        SpectacularSwaggerSplitView,
        SpectacularSwaggerView,
    )

    pages = (SpectacularSwaggerView, SpectacularSwaggerSplitView, SpectacularRedocView)
    mounted = {view.__name__ for view in _mounted_views() if issubclass(view, pages)}
    return [
        Error(
            f"{name} is mounted but 'drf_spectacular' is not in INSTALLED_APPS: the page "
            "answers 500 (TemplateDoesNotExist).",
            hint="Add 'drf_spectacular' (and 'drf_spectacular_sidecar' to serve the pages "
            "without a CDN) to INSTALLED_APPS.",
            id="async_orders.E013",
        )
        for name in sorted(mounted)
    ]


def _mounted_views(patterns: Any = None) -> list[type]:
    """Every class-based view the root URLconf routes to."""
    found: list[type] = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            found += _mounted_views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "view_class"):
            found.append(pattern.callback.view_class)
    return found


@register()
def check_worker_keeps_connections(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Celery's Django fix-up closes every database connection before and after each
    task unless ``CELERY_DB_REUSE_MAX`` is set: each order then opens a connection of
    its own, which costs more than the order's own statements on PostgreSQL. Only
    said of the project's own app (E012 speaks of any other)."""
    app = current_app._get_current_object()
    if not _is_the_projects(app) or app.conf.get("CELERY_DB_REUSE_MAX"):
        return []
    return [
        Warning(
            "CELERY_DB_REUSE_MAX is not set: Celery workers open a new database connection "
            f"for every order (on PostgreSQL, {RECONNECTING_DRAIN} the drain rate of a "
            "worker that keeps it; docs/performance.md, 'Worker settings').",
            hint="Set CELERY_DB_REUSE_MAX = 1000 in your settings, as the quickstart does.",
            id="async_orders.W001",
        )
    ]


#: What a worker that opens a connection for every order drains, against one that
#: keeps it: measured by ``python -m benchmarks.peers.worker_settings``
#: (docs/performance.md, "Worker settings").
RECONNECTING_DRAIN = "about half"


@register(deploy=True)
def check_connections_kept(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``manage.py check --deploy``: the order task closes, as a request does, a
    connection older than ``CONN_MAX_AGE``, so with 0 (Django's default) and no pool a
    worker reconnects for every order even with ``CELERY_DB_REUSE_MAX``. A deployment
    check, as Django's own advice on its settings is: a test or development process
    need not keep its connections. Not tagged ``database``: Django runs such checks
    only when ``--database`` is given, and this one reads settings, no database."""
    database = settings.DATABASES.get(DEFAULT_DB_ALIAS, {})
    if not _connects_per_task(database):
        return []
    return [
        Warning(
            f"DATABASES[{DEFAULT_DB_ALIAS!r}]['CONN_MAX_AGE'] is 0: Celery workers open a "
            f"new database connection for every order ({RECONNECTING_DRAIN} the drain "
            "rate of a worker that keeps it; docs/performance.md, 'Worker settings').",
            hint="Set CONN_MAX_AGE (e.g. 600, with CONN_HEALTH_CHECKS = True) or "
            "OPTIONS['pool'] (PostgreSQL, psycopg 3), as the quickstart does.",
            id="async_orders.W002",
        )
    ]


def _connects_per_task(database: dict[str, Any]) -> bool:
    """Whether Django closes this database's connection at the start of every task:
    not said of SQLite, whose connection is a file opened, not a server's session."""
    if "sqlite" in database.get("ENGINE", "") or database.get("OPTIONS", {}).get("pool"):
        return False
    return database.get("CONN_MAX_AGE", 0) == 0  # None keeps it for good
