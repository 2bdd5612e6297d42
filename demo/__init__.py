"""The demo project. Its Celery app is loaded with Django, the standard way, so that
shared tasks (async_orders' among them) publish through it."""

from demo.celery import app as celery_app

__all__ = ["celery_app"]
