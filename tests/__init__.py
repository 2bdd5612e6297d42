"""The test project. Its Celery app is loaded with it, as a Django project's package
loads its own, so that every process of it (web, worker, reconciler) publishes
through the configured broker."""

import tests.celery_app  # noqa: F401
