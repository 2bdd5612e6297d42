"""A streaming replica that replays its primary late, and the router that reads from it.

The replica is a :class:`~tests.faultstack.PrivatePostgres` made by ``pg_basebackup``
from another one, applying what the primary commits ``recovery_min_apply_delay`` late,
as a replica under load or across a slow link does. The router is Django's
primary/replica example taken to its worst case: every read goes to the replica.
A process started with ``ASYNC_ORDERS_TEST_REPLICA_PORT`` gets both (tests/settings.py).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from tests.faultstack import PrivatePostgres

#: The alias of the replica in ``DATABASES``.
REPLICA = "replica"


class PrivateReplica(PrivatePostgres):
    """A hot standby of ``primary``, ``delay`` behind it (a PostgreSQL interval)."""

    def __init__(self, primary: PrivatePostgres, delay: str) -> None:
        super().__init__()
        self.primary = primary
        self.delay = delay

    def create(self) -> PrivateReplica:
        if os.geteuid() == 0:  # as PrivatePostgres: the cluster's files are postgres's
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
            *("-D", str(self.data), "--write-recovery-conf", "--wal-method=stream"),
        )
        with open(self.data / "postgresql.auto.conf", "a") as configuration:
            configuration.write(f"recovery_min_apply_delay = '{self.delay}'\n")
        self.start()
        return self


class ReplicaRouter:
    """Reads from the replica, writes to the primary (``default``): what a project
    that spreads its reads over replicas does to a read of an order, every time."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        return REPLICA

    def db_for_write(self, model: type, **hints: Any) -> str:
        return "default"

    def allow_relation(self, first: Any, second: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"
