"""A database outage as the code that survives one sees it.

The HTTP layer answers 503 on these errors and the worker waits them out; both only
need to tell an unreachable database from a wrong statement, so this lives apart
from the attempt's lease, which the HTTP layer has no business importing.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError, connection

#: Errors that say the database could not be reached, not that a statement was wrong.
UNREACHABLE = (OperationalError, InterfaceError)


def reconnect_later() -> None:
    """Drop this thread's broken database connection, so the next query reconnects."""
    connection.close()
