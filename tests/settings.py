"""Settings for the test suite; ``tests/services.py`` picks the database and broker."""

from __future__ import annotations

import json
import os

import django

import async_orders
from tests import services

SECRET_KEY = "async-orders-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "async_orders",
    "tests.testapp",
    # Another TASKS backend (the "db" alias below), run by its own db_worker.
    "django_tasks_db",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = {"default": services.database_settings()}
# A process of the read-replica test reads from a replica of its own (tests/replica.py).
if replica_port := os.environ.get("ASYNC_ORDERS_TEST_REPLICA_PORT"):
    DATABASES["replica"] = {**DATABASES["default"], "PORT": int(replica_port)}
    DATABASE_ROUTERS = ["tests.replica.ReplicaRouter"]

CELERY_BROKER_URL = services.broker_url()
CELERY_TASK_DEFAULT_QUEUE = services.QUEUE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers keep their database connection across tasks, as docs/deployment.md advises.
CELERY_DB_REUSE_MAX = 1000
# A fault test's processes may be started with Celery settings of their own, as
# {"CELERY_...": value}: a Sentinel master's name, a key prefix, quorum queues.
globals().update(json.loads(os.environ.get("ASYNC_ORDERS_TEST_CELERY_SETTINGS", "{}")))

ASYNC_ORDERS = {
    # Every progress step is written, so tests can watch each one.
    "PROGRESS_INTERVAL": 0,
    # The uvicorn (ASGI) test server serves the order endpoint as an async view.
    "LONG_POLL_ASYNC": os.environ.get("ASYNC_ORDERS_TEST_ASGI") == "1",
    # Short leases and frequent reconciler passes, so that a lost worker is noticed
    # in seconds (HEARTBEAT_INTERVAL + 2 x RECONCILE_INTERVAL < WORKER_LOST_AFTER +
    # LEASE_MARGIN, as with the defaults).
    "HEARTBEAT_INTERVAL": 0.2,
    "WORKER_LOST_AFTER": 1.5,
    "LEASE_MARGIN": 0.5,
    "RECONCILE_INTERVAL": 0.2,
    # A publish the shared, busy test machine slows past the shipped 0.5 s would open
    # the breaker, and the next orders would wait for a reconciler most tests lack.
    "PUBLISH_TIMEOUT": 5,
    "SCHEDULABLE_VIEWS": ["listed-in-settings"],
    # Webhooks to the tests' own receiver on 127.0.0.1, retried quickly.
    "WEBHOOK_ALLOWED_HOSTS": ["127.0.0.1", "hooks.example.com"],
    "WEBHOOK_ALLOW_PRIVATE": True,
    "WEBHOOK_SECRET": "webhook-secret-for-tests",
    "WEBHOOK_RETRY_BACKOFF": 0.05,
    "WEBHOOK_MAX_ATTEMPTS": 3,
    "WEBHOOK_TIMEOUT": 5,
    # A fault test's processes may be started with settings of their own.
    **json.loads(os.environ.get("ASYNC_ORDERS_TEST_SETTINGS", "{}")),
}

# django.tasks (Django >= 6.0, or the django-tasks backport on 5.2) runs tasks as orders.
TASKS_PACKAGE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
TASKS = {
    "default": {
        "BACKEND": "async_orders.task_backend.OrderBackend",
        "QUEUES": ["default", "reports"],
    },
    "retrying": {
        "BACKEND": "async_orders.task_backend.OrderBackend",
        "OPTIONS": {"RETRIES": 1, "RETRY_BACKOFF": 0.01},
    },
    # Backends that are not ours: orders of their tasks follow their results.
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
    "immediate": {"BACKEND": f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
    "dummy": {"BACKEND": f"{TASKS_PACKAGE}.backends.dummy.DummyBackend"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # The handler on the root logger only: a Celery worker replaces the root's handlers
    # with its own, so a handler on "async_orders" too would print every record twice.
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"async_orders": {"level": "INFO"}},
}

REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "async_orders test project",
    "VERSION": async_orders.__version__,
    "PREPROCESSING_HOOKS": ["tests.schema_hooks.only_async_orders"],
}
