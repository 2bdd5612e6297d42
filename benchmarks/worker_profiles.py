"""The database and Celery settings a benchmark's worker processes run with.

Celery's Django fix-up closes every database connection before and after each task
unless ``CELERY_DB_REUSE_MAX`` is set, and Django closes a connection at the start of
a request or task when ``CONN_MAX_AGE`` is 0 (its default): how fast a worker drains
depends on these more than on anything the worker does. So a drain is measured
under several profiles, every side under the same one (``benchmarks.peers.worker_settings``):

- ``users``: persistent connections (``CONN_MAX_AGE = 600``), no ``CELERY_DB_REUSE_MAX``:
  a project that tuned Django for the web but not Celery;
- ``tuned``: the same and ``CELERY_DB_REUSE_MAX = 1000`` (the default here, rows 3-14);
- ``quickstart``: the database as ``startproject`` writes it (Django's defaults:
  ``CONN_MAX_AGE = 0``), then the settings block of docs/quickstart.md's "Add it to
  your project", read from the page itself (so the profile follows the page);
- ``quickstart-pool``: the quickstart's, with Django's own connection pool
  (``OPTIONS["pool"]``, psycopg 3 and psycopg-pool) instead of ``CONN_MAX_AGE``;
- ``reuse-only``: ``CELERY_DB_REUSE_MAX`` without ``CONN_MAX_AGE`` (the quickstart
  before it set ``CONN_MAX_AGE``), where the order task closes its connection;
- ``pool``: the pool without ``CELERY_DB_REUSE_MAX``, where the fix-up closes the pool
  of a prefork child around every task;
- ``tuned-no-notify`` and ``tuned-prepared``: ``tuned``, without the Redis
  notifications of waiters (``NOTIFY_REDIS_URL = ""``: what skipping them when nobody
  waits could gain at most), or with psycopg's server-side binding, which prepares a
  statement run more than five times on a connection (the claim, the outcome).

``ASYNC_ORDERS_BENCH_WORKER_SETTINGS`` names the profile; ``benchmarks.settings``
applies it to itself.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

SWITCH = "ASYNC_ORDERS_BENCH_WORKER_SETTINGS"
DEFAULT = "tuned"
QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"
#: A fenced block of the quickstart's steps, indented under its list item.
FENCE = re.compile(r"^(?P<indent>[ ]+)```python\n(?P<code>.*?)^(?P=indent)```", re.M | re.S)
SETTINGS_FILE = "# yourproject/settings.py\n"


def quickstart_settings() -> str:
    """The first settings block of the quickstart's steps, as a user pastes it: the
    ``[...,`` of a list stands for the entries already there, and the broker's
    address is the benchmark's own (the profile keeps ``CELERY_BROKER_URL``)."""
    text = QUICKSTART.read_text()
    section = text.split("## Add it to your project", 1)[1].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(f["code"]) for f in FENCE.finditer(section)]
    code = next(block for block in blocks if block.startswith(SETTINGS_FILE))
    code = code.removeprefix(SETTINGS_FILE).split("\n# yourproject/", 1)[0]
    code = re.sub(r"^(\w+) = \[\.\.\., ", r"\1 = [*\1, ", code, flags=re.M)
    return re.sub(r"^CELERY_BROKER_URL = .*$", "", code, flags=re.M)


def apply(profile: str, settings: dict[str, Any]) -> None:
    """Change ``settings`` (a settings module's globals) to ``profile``'s."""
    if profile not in PROFILES:
        raise ValueError(f"{SWITCH}={profile!r}: one of {', '.join(PROFILES)}")
    database = settings["DATABASES"]["default"]
    if profile in ("users", "pool"):
        settings.pop("CELERY_DB_REUSE_MAX", None)
    if profile.startswith("quickstart") or profile == "reuse-only":
        for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS"):
            database.pop(key)  # startproject's DATABASES: Django's defaults
    if profile.startswith("quickstart"):
        settings.pop("CELERY_DB_REUSE_MAX", None)
        exec(quickstart_settings(), settings)  # our own docs page, read as a user pastes it
        # The apps it adds are already there (startproject's list has neither).
        settings["INSTALLED_APPS"] = list(dict.fromkeys(settings["INSTALLED_APPS"]))
    if profile == "tuned-no-notify":
        settings["ASYNC_ORDERS"] = {**settings["ASYNC_ORDERS"], "NOTIFY_REDIS_URL": ""}
    if profile == "tuned-prepared":
        database["OPTIONS"] = {**database.get("OPTIONS", {}), "server_side_binding": True}
    if profile.endswith("pool"):
        database["CONN_MAX_AGE"] = 0  # Django refuses a pool with persistent connections
        database["OPTIONS"] = {**database.get("OPTIONS", {}), "pool": True}


PROFILES = (
    "users",
    "tuned",
    "quickstart",
    "quickstart-pool",
    "reuse-only",
    "pool",
    "tuned-no-notify",
    "tuned-prepared",
)
