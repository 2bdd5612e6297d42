"""Django settings of the benchmark project: the order endpoints beside plain DRF
baselines, on a database of their own (never the test suite's).

``ASYNC_ORDERS_BENCH_DB`` picks ``postgres`` (default) or ``sqlite``. Both the subject
and the baselines run through this one configuration, so they pay the same
middleware, authentication and connection costs.
"""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "async-orders-benchmarks-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "benchmarks.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "async_orders",
    "benchmarks",
    # The peers of benchmarks.peers: what users pick instead of async_orders.
    "django_celery_results",
    "django_tasks",
    "django_tasks_db",
]
# What ``startproject`` gives, less the apps this project does not install.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

DATABASE = os.environ.get("ASYNC_ORDERS_BENCH_DB", "postgres")
#: ``ASYNC_ORDERS_BENCH_DB_NAME`` and ``ASYNC_ORDERS_BENCH_REDIS_DB`` let two checkouts
#: benchmark at once without emptying each other's tables and queues.
DATABASE_NAME = os.environ.get("ASYNC_ORDERS_BENCH_DB_NAME", "async_orders_bench")
SQLITE_FILE = os.path.join(tempfile.gettempdir(), f"{DATABASE_NAME}.sqlite3")

#: psycopg binds parameters on the server and prepares repeated statements
#: (docs/performance.md: no gain measured); off, as Django's default.
SERVER_SIDE_BINDING = os.environ.get("ASYNC_ORDERS_BENCH_SERVER_SIDE_BINDING") == "1"

if DATABASE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DATABASE_NAME,
            "USER": "postgres",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": int(os.environ.get("PGPORT", "5432")),
            # Persistent connections, as any production deployment has them: without,
            # every request and task would pay a PostgreSQL connect on top.
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"server_side_binding": SERVER_SIDE_BINDING},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_FILE,
            "CONN_MAX_AGE": 600,
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

REDIS_DB = os.environ.get("ASYNC_ORDERS_BENCH_REDIS_DB", "14")
REDIS_URL = f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/{REDIS_DB}"
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "async-orders-bench"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery closes Django's connections around every task unless told otherwise; the
# order task checks a kept connection as a web request does (docs/deployment.md).
CELERY_DB_REUSE_MAX = 1000
#: The Celery + django-celery-results peer's own queue (its app: benchmarks.peers.celery_results).
PEER_CELERY_QUEUE = "async-orders-bench-peer"
BENCHMARK_QUEUES = [CELERY_TASK_DEFAULT_QUEUE, PEER_CELERY_QUEUE]

#: The django-tasks-db peer: its rows in this same database, run by ``db_worker``;
#: and ``orders``, the same tasks as orders of our worker (benchmarks.task_drain).
TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
    "orders": {"BACKEND": "async_orders.task_backend.OrderBackend"},
}

#: Emptied before each benchmark, so no run sees the rows of the one before.
BENCHMARK_MODELS = [
    "async_orders.Order",
    "benchmarks.Row",
    "django_celery_results.TaskResult",
    "django_tasks_database.DBTaskResult",
]

# The library's defaults, spelled out: the benchmarks measure what users get.
ASYNC_ORDERS: dict[str, object] = {}

if DATABASE == "postgres":
    # The worker settings of benchmarks.worker_profiles (``tuned``: the above).
    from benchmarks import worker_profiles

    worker_profiles.apply(
        os.environ.get(worker_profiles.SWITCH, worker_profiles.DEFAULT), globals()
    )

if os.environ.get("ASYNC_ORDERS_BENCH_ASGI") == "1":
    # Under uvicorn (benchmarks.waiters): the order endpoint as an async view. Every
    # simulated client connects from 127.0.0.1, so the per-client cap is lifted for
    # them to stand for many clients. Django's per-request threads under ASGI would
    # leave persistent connections behind, so none are kept; the name tells this
    # server's connections apart in pg_stat_activity.
    ASYNC_ORDERS = {
        "LONG_POLL_ASYNC": True,
        "LONG_POLL_MAX_WAITERS_PER_CLIENT": 100_000,
        "LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS": 100_000,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASE == "postgres":
        DATABASES["default"]["OPTIONS"] = {
            "server_side_binding": SERVER_SIDE_BINDING,
            "application_name": "async-orders-bench-asgi",
        }

if os.environ.get("ASYNC_ORDERS_BENCH_METRICS") == "1":
    # benchmarks.metrics_overhead: the server or worker that records metrics.
    ASYNC_ORDERS = {**ASYNC_ORDERS, "METRICS_ENABLED": True}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # The 4xx a benchmark provokes on purpose are not news.
    "loggers": {"django.request": {"level": "ERROR"}},
}

if os.environ.get("ASYNC_ORDERS_BENCH_UNBOUNDED_PUBLISH") == "1":
    # The publish inline on the request's thread, as without a deadline: the other
    # side of an A/B of the bounded publish's threads (docs/performance.md).
    ASYNC_ORDERS = {**ASYNC_ORDERS, "PUBLISH_TIMEOUT": None}
