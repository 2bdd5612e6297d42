"""Benchmarks of issue 6: what an order costs against plain DRF and raw Celery.

``make bench`` runs them all (``python -m benchmarks.run``); each module also runs
alone (``python -m benchmarks.http_throughput --db postgres``). Every figure is a
ratio against a baseline measured in the same run, never a stored number.
"""

# The Celery docs' Django set-up: import the app when Django starts, so that shared
# tasks (the order task) publish through it in the web processes too.
from benchmarks.celery import app as celery_app

__all__ = ["celery_app"]
