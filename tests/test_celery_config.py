"""Answers read once from the Celery app's settings, forgotten when a CELERY_ setting changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, current_app

from async_orders import notify


@pytest.mark.usefixtures("app_of_django_settings")
def test_the_brokers_url_is_read_once_until_a_celery_setting_changes(settings: Any) -> None:
    """Waiters are woken through the broker's Redis (its first URL of a failover list);
    the URL is kept per Celery app, since the worker needs it twice per order, and read
    again when a ``CELERY_`` setting changes."""
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "NOTIFY_REDIS_URL": None}
    settings.CELERY_BROKER_URL = "redis://first.invalid:1/2;redis://second.invalid:1/2"
    assert notify.redis_url() == "redis://first.invalid:1/2"
    hits = notify._broker_redis_url.cache_info().hits
    assert notify.redis_url() == "redis://first.invalid:1/2"
    assert notify._broker_redis_url.cache_info().hits == hits + 1

    settings.CELERY_BROKER_URL = "amqp://guest@127.0.0.1:5672//"
    assert notify.redis_url() is None  # no Redis to publish on: waiters poll


@pytest.fixture
def app_of_django_settings() -> Iterator[Celery]:
    """A current Celery app configured as the docs say, from Django's ``CELERY_``
    settings (the suite's current app may have been configured otherwise)."""
    previous = current_app._get_current_object()
    app = Celery("test-notify", set_as_current=True)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    yield app
    previous.set_current()
