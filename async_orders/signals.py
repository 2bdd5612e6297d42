"""Signals sent as orders change, for dashboards, notifications and the like.

Each is sent with ``sender=Order`` and ``order=<the Order>`` after the change is
stored. Receivers run in the process that made the change (web or worker), inside
its transaction if it has one; keep them quick or hand work to Celery.

The order signals are sent twice or more per order, always by the one sender
``Order``: they cache their receivers (``use_caching``), as Django's model signals do,
instead of sorting them out again on every send.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Any status change: ``order``, ``previous`` and ``status`` (both :class:`OrderStatus` values).
order_status_changed = Signal(use_caching=True)
#: The order reached ``completed``, ``failed`` or ``canceled``.
order_finished = Signal(use_caching=True)
#: Progress (or the message) of a running order was stored.
order_progress = Signal(use_caching=True)
#: A reconciler pass ended: ``report`` is its
#: :class:`~async_orders.worker.reconciler.Reconciliation` (sent with ``sender=Reconciliation``).
orders_reconciled = Signal()
#: A request started (``delta=1``) or stopped (``delta=-1``) waiting for an order to
#: change; ``blocking`` says whether it holds a thread (sent with ``sender=WaitingRoom``).
waiters_changed = Signal()
