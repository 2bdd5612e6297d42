"""The test project. Its Celery app is loaded with it, as a Django project's package
loads its own, so that every process of it (web, worker, reconciler) publishes
through the configured broker."""

from tests.celery_app import app as celery_app

__all__ = ["celery_app"]
