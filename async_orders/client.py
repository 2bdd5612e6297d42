"""The Python client under the server package's name, so that ``from async_orders.client
import Client`` keeps working in a server install.

The code is the ``async-orders-client`` distribution's (``async_orders_client``, in
``clients/python/`` of the repository): a machine that only places orders installs
that, with ``requests`` and without Django. This module re-exports its public names
(its ``__all__``) and holds no code of its own, so there is one client; the
``client`` extra installs it: ``pip install "async-orders[client]"``. Like the
client, it imports nothing from Django.
"""

from __future__ import annotations

try:
    from async_orders_client import *  # noqa: F403 (re-exporting is this module's job)
    from async_orders_client import __all__ as __all__
except ModuleNotFoundError as missing:
    if missing.name != "async_orders_client":
        raise  # requests, or something it needs: the message names it
    raise ModuleNotFoundError(
        "async_orders.client is the async-orders-client distribution: install it with "
        "pip install 'async-orders[client]' (from a checkout: pip install ./clients/python)",
        name=missing.name,
    ) from missing
