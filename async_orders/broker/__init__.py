"""The broker wing: everything that talks to Celery's broker on the orders' behalf.

Sending an order's message (:mod:`.publishing`), asking the broker about itself
(:mod:`.probes`), and the answers read once from the Celery app's settings
(:mod:`.celery_config`). The task definitions stay in :mod:`async_orders.tasks`;
they and the worker wing publish through here, so nothing here imports them.
"""
