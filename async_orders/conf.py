"""The ``ASYNC_ORDERS`` settings, read through one object with documented defaults.

Each property reads ``django.conf.settings`` on access, so ``override_settings`` in
tests and settings changed at start-up are always seen; nothing is cached here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Every key of ``ASYNC_ORDERS`` with its default; the settings reference in the
#: docs and the system checks are written against this dict.
DEFAULTS: dict[str, Any] = {
    "SCHEDULABLE_VIEWS": [],
    "RETRY_AFTER": 1,
    "PROGRESS_INTERVAL": 0.5,
    "QUEUE": None,
    "AUTHENTICATION_CLASSES": None,
    "PERMISSION_CLASSES": None,
    "THROTTLE_CLASSES": None,
    "MAX_BODY_BYTES": 1024 * 1024,
    "MAX_ACTIVE_ORDERS": 100,
    "MAX_BATCH": 100,
    "MAX_RESULT_BYTES": 10 * 1024 * 1024,
    "RESULT_ALLOWED_HOSTS": [],
    "MAX_SCHEDULE_SECONDS": 7 * 24 * 3600,
    "HEARTBEAT_INTERVAL": 5,
    "WORKER_LOST_AFTER": 20,
    "LEASE_MARGIN": 10,
    "RECONCILE_INTERVAL": 5,
    "REPUBLISH_AFTER": 300,
    "PUBLISH_TIMEOUT": 0.5,
    "PUBLISH_BREAKER_SECONDS": 5,
    "MAX_RETRY_BACKOFF": 600,
    "RETENTION_SECONDS": 30 * 24 * 3600,
    "PURGE_BATCH_SIZE": 1000,
    "LONG_POLL_MAX_WAIT": 30,
    "LONG_POLL_ASYNC": False,
    "NOTIFY_REDIS_URL": None,
    "NOTIFY_SENTINEL_MASTER": None,
    "NOTIFY_DB_POLL_INTERVAL": 0.25,
    "SSE_HEARTBEAT": 15,
    "SSE_MAX_LIFETIME": 60,
    "LONG_POLL_MAX_WAITERS_PER_PROCESS": 4,
    "LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS": 1000,
    "LONG_POLL_MAX_WAITERS_PER_CLIENT": 2,
    "TRUSTED_PROXIES": [],
    "WEBHOOK_ALLOWED_HOSTS": [],
    "WEBHOOK_ALLOW_PRIVATE": False,
    "WEBHOOK_SECRET": "",
    "WEBHOOK_MAX_ATTEMPTS": 5,
    "WEBHOOK_RETRY_BACKOFF": 2.0,
    "WEBHOOK_TIMEOUT": 10.0,
    "HEALTH_MAX_QUEUE_AGE": 300,
    "HEALTH_VIEW": False,
    "METRICS_ENABLED": False,
    "METRICS_TOKEN": "",
    "METRICS_STATUS_CACHE_SECONDS": 5.0,
}


@dataclass(frozen=True)
class Kind:
    """The values one setting takes. The system checks hold every configured value to
    its kind, so that a wrong one fails ``manage.py check`` rather than the first order
    (``"MAX_ACTIVE_ORDERS": "lots"`` would otherwise be a 500 on every POST)."""

    #: What the value is, as an error's hint says it: "an integer", "a list of strings".
    description: str
    accepts: Callable[[Any], bool]
    minimum: float | None = None
    #: The minimum itself is out of range (an interval of 0 s would spin).
    exclusive: bool = False
    #: ``None`` is a value of its own (no cap, Celery's default queue, DRF's defaults).
    optional: bool = False

    def in_range(self, value: float) -> bool:
        if self.minimum is None:
            return True
        return value > self.minimum if self.exclusive else value >= self.minimum

    @property
    def range(self) -> str:
        """The range in words, or "" for a kind without one."""
        if self.minimum is None:
            return ""
        return f" {'above' if self.exclusive else 'of at least'} {self.minimum:g}"


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_sequence_of(*types: type) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        return isinstance(value, list | tuple) and all(isinstance(item, types) for item in value)

    return accepts


def _are_networks(value: Any) -> bool:
    """A list of IP addresses or networks (``"10.0.0.0/8"``), each one that parses."""
    if not _is_sequence_of(str)(value):
        return False
    try:
        for network in value:
            ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
    return True


def _count(minimum: int, *, optional: bool = False) -> Kind:
    return Kind("an integer", _is_integer, minimum=minimum, optional=optional)


def _seconds(*, exclusive: bool = False) -> Kind:
    return Kind("a number of seconds", _is_number, minimum=0, exclusive=exclusive)


_STRING = Kind("a string", lambda value: isinstance(value, str))
_OPTIONAL_STRING = Kind("a string", lambda value: isinstance(value, str), optional=True)
_BOOLEAN = Kind("True or False", lambda value: isinstance(value, bool))
_NAMES = Kind("a list of strings", _is_sequence_of(str))
_CLASSES = Kind("a list of classes or import paths", _is_sequence_of(str, type), optional=True)

#: The kind of every key of :data:`DEFAULTS`, checked by ``async_orders.checks``.
KINDS: dict[str, Kind] = {
    "SCHEDULABLE_VIEWS": _NAMES,
    "RETRY_AFTER": _count(0),
    "PROGRESS_INTERVAL": _seconds(),
    "QUEUE": _OPTIONAL_STRING,
    "AUTHENTICATION_CLASSES": _CLASSES,
    "PERMISSION_CLASSES": _CLASSES,
    "THROTTLE_CLASSES": _CLASSES,
    "MAX_BODY_BYTES": _count(1),
    "MAX_ACTIVE_ORDERS": _count(1, optional=True),
    "MAX_BATCH": _count(1),
    "MAX_RESULT_BYTES": _count(0),
    "RESULT_ALLOWED_HOSTS": _NAMES,
    "MAX_SCHEDULE_SECONDS": _seconds(),
    "HEARTBEAT_INTERVAL": _seconds(exclusive=True),
    "WORKER_LOST_AFTER": _seconds(exclusive=True),
    "LEASE_MARGIN": _seconds(),
    "RECONCILE_INTERVAL": _seconds(exclusive=True),
    "REPUBLISH_AFTER": _seconds(),
    "PUBLISH_TIMEOUT": Kind("a number of seconds", _is_number, 0, exclusive=True, optional=True),
    "PUBLISH_BREAKER_SECONDS": _seconds(),
    "MAX_RETRY_BACKOFF": _seconds(),
    "RETENTION_SECONDS": _seconds(),
    "PURGE_BATCH_SIZE": _count(1),
    "LONG_POLL_MAX_WAIT": _seconds(),
    "LONG_POLL_ASYNC": _BOOLEAN,
    "NOTIFY_REDIS_URL": _OPTIONAL_STRING,
    "NOTIFY_SENTINEL_MASTER": _OPTIONAL_STRING,
    "NOTIFY_DB_POLL_INTERVAL": _seconds(exclusive=True),
    "SSE_HEARTBEAT": _seconds(exclusive=True),
    "SSE_MAX_LIFETIME": _seconds(exclusive=True),
    "LONG_POLL_MAX_WAITERS_PER_PROCESS": _count(0),
    "LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS": _count(0),
    "LONG_POLL_MAX_WAITERS_PER_CLIENT": _count(0),
    "TRUSTED_PROXIES": Kind("a list of IP addresses or networks", _are_networks),
    "WEBHOOK_ALLOWED_HOSTS": _NAMES,
    "WEBHOOK_ALLOW_PRIVATE": _BOOLEAN,
    "WEBHOOK_SECRET": _STRING,
    "WEBHOOK_MAX_ATTEMPTS": _count(1),
    "WEBHOOK_RETRY_BACKOFF": _seconds(),
    "WEBHOOK_TIMEOUT": _seconds(exclusive=True),
    "HEALTH_MAX_QUEUE_AGE": _seconds(exclusive=True),
    "HEALTH_VIEW": _BOOLEAN,
    "METRICS_ENABLED": _BOOLEAN,
    "METRICS_TOKEN": _STRING,
    "METRICS_STATUS_CACHE_SECONDS": _seconds(),
}


def configured() -> dict[str, Any]:
    """``settings.ASYNC_ORDERS`` as the project wrote it; ``{}`` when unset or not a
    dict. ``manage.py check`` reports the latter (``async_orders.E008``), which stops
    ``runserver``; reading it must not raise, since the URLconf reads settings on
    import and a raise there would turn every check into one traceback."""
    value = getattr(django_settings, "ASYNC_ORDERS", {})
    return value if isinstance(value, dict) else {}


class Settings:
    """Typed access to ``settings.ASYNC_ORDERS`` with :data:`DEFAULTS` filled in."""

    def _get(self, name: str) -> Any:
        return configured().get(name, DEFAULTS[name])

    @property
    def SCHEDULABLE_VIEWS(self) -> list[str]:
        """URL names opted in without the decorator, for views you cannot edit."""
        return list(self._get("SCHEDULABLE_VIEWS"))

    @property
    def RETRY_AFTER(self) -> int:
        """Seconds a polling client is told to wait (``Retry-After``) while an order is active."""
        return int(self._get("RETRY_AFTER"))

    @property
    def PROGRESS_INTERVAL(self) -> float:
        """Least seconds between two progress writes of one order, so loops stay cheap."""
        return float(self._get("PROGRESS_INTERVAL"))

    @property
    def QUEUE(self) -> str | None:
        """Celery queue the order task is sent to; ``None`` means Celery's default queue."""
        return self._get("QUEUE")

    @property
    def AUTHENTICATION_CLASSES(self) -> list[type] | None:
        """DRF authentication classes of the order endpoints; ``None``: DRF's defaults."""
        return _classes(self._get("AUTHENTICATION_CLASSES"))

    @property
    def PERMISSION_CLASSES(self) -> list[type] | None:
        """DRF permission classes of the order endpoints; ``None``: DRF's defaults."""
        return _classes(self._get("PERMISSION_CLASSES"))

    @property
    def THROTTLE_CLASSES(self) -> list[type] | None:
        """DRF throttle classes of the order endpoints; ``None``: DRF's defaults."""
        return _classes(self._get("THROTTLE_CLASSES"))

    @property
    def MAX_BODY_BYTES(self) -> int:
        """Largest order request body accepted; larger ones get 413."""
        return int(self._get("MAX_BODY_BYTES"))

    @property
    def MAX_ACTIVE_ORDERS(self) -> int | None:
        """Most unfinished orders one user (or session) may have; more get 429. ``None``: no cap."""
        value = self._get("MAX_ACTIVE_ORDERS")
        return None if value is None else int(value)

    @property
    def MAX_BATCH(self) -> int:
        """Most orders one ``POST /async/batches/`` may place; a larger batch is a 400."""
        return int(self._get("MAX_BATCH"))

    @property
    def MAX_RESULT_BYTES(self) -> int:
        """Largest view response body stored; a larger one is dropped, and the order says so."""
        return int(self._get("MAX_RESULT_BYTES"))

    @property
    def RESULT_ALLOWED_HOSTS(self) -> list[str]:
        """Hosts besides the order's own (``ALLOWED_HOSTS`` syntax) that a view's
        ``Location`` may name and still become the order's ``resource_url``."""
        return list(self._get("RESULT_ALLOWED_HOSTS"))

    @property
    def MAX_SCHEDULE_SECONDS(self) -> float:
        """How far ahead ``countdown``/``eta`` may schedule an order."""
        return float(self._get("MAX_SCHEDULE_SECONDS"))

    @property
    def HEARTBEAT_INTERVAL(self) -> float:
        """Seconds between two renewals of a running attempt's lease and of a worker's
        presence."""
        return float(self._get("HEARTBEAT_INTERVAL"))

    @property
    def WORKER_LOST_AFTER(self) -> float:
        """Seconds a lease is valid after its renewal: an attempt that could not renew
        it for longer stops at its next checkpoint, and a worker not seen for longer is
        taken for dead."""
        return float(self._get("WORKER_LOST_AFTER"))

    @property
    def LEASE_MARGIN(self) -> float:
        """Seconds the reconciler waits past a lease's expiry before it starts another
        attempt: the longest step a view may take between two checkpoints."""
        return float(self._get("LEASE_MARGIN"))

    @property
    def RECONCILE_INTERVAL(self) -> float:
        """Seconds between two passes of ``reconcile_orders --loop``; also how often
        the reconciler must run to count the database as continuously reachable."""
        return float(self._get("RECONCILE_INTERVAL"))

    @property
    def REPUBLISH_AFTER(self) -> float:
        """Seconds a due order may wait for a worker before its message is sent again."""
        return float(self._get("REPUBLISH_AFTER"))

    @property
    def PUBLISH_TIMEOUT(self) -> float | None:
        """Most seconds a publish may keep its caller (a POST) waiting; the order is
        committed, and the reconciler sends one cut short. ``None``: no bound."""
        value = self._get("PUBLISH_TIMEOUT")
        return None if value is None else float(value)

    @property
    def PUBLISH_BREAKER_SECONDS(self) -> float:
        """Seconds after a failed publish during which none is tried in that process."""
        return float(self._get("PUBLISH_BREAKER_SECONDS"))

    @property
    def MAX_RETRY_BACKOFF(self) -> float:
        """Longest wait, in seconds, before another attempt of a failed view."""
        return float(self._get("MAX_RETRY_BACKOFF"))

    @property
    def RETENTION_SECONDS(self) -> float:
        """How long finished orders are kept before ``purge_orders`` deletes them."""
        return float(self._get("RETENTION_SECONDS"))

    @property
    def PURGE_BATCH_SIZE(self) -> int:
        """Orders deleted per statement by ``purge_orders``, to keep locks short."""
        return int(self._get("PURGE_BATCH_SIZE"))

    @property
    def LONG_POLL_MAX_WAIT(self) -> float:
        """Most seconds a ``?wait=`` poll may hold its connection; larger waits are cut to it."""
        return float(self._get("LONG_POLL_MAX_WAIT"))

    @property
    def LONG_POLL_ASYNC(self) -> bool:
        """Serve the order endpoint as an async view: set it under ASGI, so ``?wait=``
        polls hold no thread; keep it off under WSGI, where it would only add a thread
        hop to every poll. Read when the URLconf is loaded."""
        return bool(self._get("LONG_POLL_ASYNC"))

    @property
    def NOTIFY_REDIS_URL(self) -> str | None:
        """Redis for change notifications: ``None`` means Celery's broker when it is Redis
        (or Redis Sentinel); ``""`` turns pub/sub off, so waiters poll the database. A
        ``sentinel://`` URL names the sentinels, as Celery's broker URL does."""
        return self._get("NOTIFY_REDIS_URL")

    @property
    def NOTIFY_SENTINEL_MASTER(self) -> str | None:
        """The master's name when the notification Redis is a ``sentinel://`` URL;
        ``None``: the ``master_name`` of Celery's ``broker_transport_options``."""
        return self._get("NOTIFY_SENTINEL_MASTER")

    @property
    def NOTIFY_DB_POLL_INTERVAL(self) -> float:
        """Seconds between two reads of a waited-on order when there is no pub/sub."""
        return float(self._get("NOTIFY_DB_POLL_INTERVAL"))

    @property
    def SSE_HEARTBEAT(self) -> float:
        """Seconds of silence after which an event stream sends a comment, so proxies keep it."""
        return float(self._get("SSE_HEARTBEAT"))

    @property
    def SSE_MAX_LIFETIME(self) -> float:
        """Seconds after which an event stream ends; ``EventSource`` resumes it with
        ``Last-Event-ID``. Bounds what one stream holds (a thread, under WSGI)."""
        return float(self._get("SSE_MAX_LIFETIME"))

    @property
    def LONG_POLL_MAX_WAITERS_PER_PROCESS(self) -> int:
        """Most long-polls and event streams waiting in one process while holding a
        thread (WSGI); keep it below the threads per process, so plain requests always
        find one. Past it a request is answered at once, as a plain poll."""
        return int(self._get("LONG_POLL_MAX_WAITERS_PER_PROCESS"))

    @property
    def LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS(self) -> int:
        """Most waiters of one ASGI process (coroutines: each costs a socket, a Redis
        connection and Django's idle per-request thread, no database connection)."""
        return int(self._get("LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS"))

    @property
    def LONG_POLL_MAX_WAITERS_PER_CLIENT(self) -> int:
        """Most waiters one client (signed-in user, else IP address) may have in one
        process, so one client cannot fill the room."""
        return int(self._get("LONG_POLL_MAX_WAITERS_PER_CLIENT"))

    @property
    def TRUSTED_PROXIES(self) -> list[IPNetwork]:
        """The proxies whose ``X-Forwarded-For`` is believed; none by default, so a
        client cannot pass for another by sending the header itself."""
        return [
            ipaddress.ip_network(network, strict=False) for network in self._get("TRUSTED_PROXIES")
        ]

    @property
    def WEBHOOK_ALLOWED_HOSTS(self) -> list[str]:
        """Hosts a ``callback_url`` may name (``ALLOWED_HOSTS`` syntax); empty: no webhooks."""
        return list(self._get("WEBHOOK_ALLOWED_HOSTS"))

    @property
    def WEBHOOK_ALLOW_PRIVATE(self) -> bool:
        """Let callbacks reach loopback/private/link-local addresses (tests, one-box setups)."""
        return bool(self._get("WEBHOOK_ALLOW_PRIVATE"))

    @property
    def WEBHOOK_SECRET(self) -> str:
        """Key of the HMAC-SHA256 signature of webhook deliveries; share it with receivers."""
        return str(self._get("WEBHOOK_SECRET"))

    @property
    def WEBHOOK_MAX_ATTEMPTS(self) -> int:
        """Deliveries tried per order before giving up."""
        return int(self._get("WEBHOOK_MAX_ATTEMPTS"))

    @property
    def WEBHOOK_RETRY_BACKOFF(self) -> float:
        """Seconds before the first retry; each later retry waits twice as long."""
        return float(self._get("WEBHOOK_RETRY_BACKOFF"))

    @property
    def WEBHOOK_TIMEOUT(self) -> float:
        """Seconds one delivery may take before it counts as failed."""
        return float(self._get("WEBHOOK_TIMEOUT"))

    @property
    def HEALTH_MAX_QUEUE_AGE(self) -> float:
        """Seconds a due order may wait for a worker before health reports the queue stuck."""
        return float(self._get("HEALTH_MAX_QUEUE_AGE"))

    @property
    def HEALTH_VIEW(self) -> bool:
        """Serve ``/async/health/`` (booleans only, no secrets, but each call asks the
        database and opens a broker connection); off, it answers 404."""
        return bool(self._get("HEALTH_VIEW"))

    @property
    def METRICS_ENABLED(self) -> bool:
        """Record Prometheus metrics and serve them at the metrics view (which answers
        404 while this is off). Needs the ``metrics`` extra (``prometheus_client``)."""
        return bool(self._get("METRICS_ENABLED"))

    @property
    def METRICS_TOKEN(self) -> str:
        """Bearer token a scrape of the metrics view must send; empty: none asked for
        (keep the view off the public network then)."""
        return str(self._get("METRICS_TOKEN"))

    @property
    def METRICS_STATUS_CACHE_SECONDS(self) -> float:
        """How long the count of orders by status (one GROUP BY) is reused between
        scrapes, so that many scrapers cost the database one query per period."""
        return float(self._get("METRICS_STATUS_CACHE_SECONDS"))


def _classes(paths: list[str | type] | None) -> list[type] | None:
    if paths is None:
        return None
    return [import_string(path) if isinstance(path, str) else path for path in paths]


conf = Settings()
