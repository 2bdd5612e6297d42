"""The worker wing: what runs an order and what recovers one.

:mod:`.execution` claims an order and records its outcome, :mod:`.dispatch` calls its
view (the service-level reverse), :mod:`.run` is the state of the order being run
that the public helpers read, :mod:`.order_lease` and :mod:`.heartbeat` keep the
attempt's hold on its order, :mod:`.role_leases` and :mod:`.presence` the processes'
hold on their roles, and :mod:`.reconciler` makes right what a broker or a worker
lost. Nothing here imports Celery's task definitions; it publishes through
:mod:`async_orders.broker`.
"""
