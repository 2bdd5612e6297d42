"""Settings of the demo project: SQLite, and the broker ``demo/run.py`` hands over."""

from __future__ import annotations

import os
from pathlib import Path

import async_orders

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-a-secret")
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: no CDN, works offline
    "async_orders",
    "demo.shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE_PATH", VAR_DIR / "demo.sqlite3"),
        # The web server and the worker write at the same time.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}

# django.tasks (the django-tasks backport on Django 5.2) runs @task functions as
# orders: demo/shop/jobs.py has one, orderable over HTTP.
TASKS = {"default": {"BACKEND": "async_orders.task_backend.OrderBackend"}}

# demo/run.py starts a private Redis when neither variable is set and passes its URL.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get(
    "REDIS_URL", "redis://127.0.0.1:6379/0"
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers keep their database connection across orders (async_orders.W001).
CELERY_DB_REUSE_MAX = 1000
# The demo's worker runs beat too (--beat), for the purge; demo/run.py runs the
# reconciler as a process of its own (manage.py reconcile_orders --loop).
CELERY_BEAT_SCHEDULE = {
    "async-orders-purge": {"task": "async_orders.purge", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "async_orders demo",
    "DESCRIPTION": "Order any schedulable view: POST, follow the 302, poll until 201.",
    # A generated client takes this as its package version: a valid one, the app's.
    "VERSION": async_orders.__version__,
    # The pages' scripts, styles and icons from drf_spectacular_sidecar's static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
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
