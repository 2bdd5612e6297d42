"""The peers of async_orders: what users pick instead of it, served by the same project.

- ``celery_results``: Celery + django-celery-results (``django-db`` result backend,
  ``result_extended``, ``task_track_started``), its own Celery app and queue;
- ``tasks_db``: Django's tasks API (the ``django-tasks`` backport) with the
  ``django-tasks-db`` backend, run by its ``db_worker`` command.

Both get the same pair of DRF views (:mod:`benchmarks.peers.views`): a POST that
enqueues a no-op job and answers ``202`` with a status URL, and a GET reading the job's
result row. ``python -m benchmarks.peers`` compares them with async_orders
(:mod:`benchmarks.peers.measures`).
"""
