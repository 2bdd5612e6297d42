"""A RabbitMQ virtual host of the test's own on the machine's RabbitMQ, deleted after.

Made with ``rabbitmqctl`` (root, on the broker's machine), so that the quorum queue
and the exchanges of Celery's native delayed delivery (``celery_delayed_*``) a test
declares are never seen by anyone else, and all go with the virtual host.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

import pytest

from tests.debian import which

AMQP = ("127.0.0.1", 5672)


class PrivateVirtualHost:
    def __init__(self) -> None:
        self.name = f"async-orders-{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        """The broker URL (guest may connect from loopback only)."""
        return f"amqp://guest:guest@{AMQP[0]}:{AMQP[1]}/{self.name}"

    def create(self) -> PrivateVirtualHost:
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        self._ctl("delete_vhost", self.name)

    def queue_types(self) -> dict[str, str]:
        """Each queue of the virtual host and its type (``classic``, ``quorum``)."""
        listing = self._ctl("list_queues", "-p", self.name, "--quiet", "--no-table-headers",
                            "name", "type")  # fmt: skip
        return dict(line.split("\t") for line in listing.splitlines() if "\t" in line)

    def exchanges(self) -> set[str]:
        listing = self._ctl(
            "list_exchanges", "-p", self.name, "--quiet", "--no-table-headers", "name"
        )
        return set(listing.split())

    def _ctl(self, *arguments: str) -> str:
        command = [which("rabbitmqctl") or "rabbitmqctl", *arguments]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def required() -> PrivateVirtualHost:
    """A virtual host of the test's own; the test skips (fails under ``CI=true``)
    without a RabbitMQ on loopback or the right to run ``rabbitmqctl``."""
    reason = ""
    try:
        socket.create_connection(AMQP, timeout=1).close()
    except OSError:
        reason = f"no RabbitMQ answers at {AMQP[0]}:{AMQP[1]}"
    if not reason and (os.geteuid() != 0 or which("rabbitmqctl") is None):
        reason = "rabbitmqctl (as root) is needed to make a virtual host of the test's own"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return PrivateVirtualHost().create()
