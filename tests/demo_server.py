"""Running the demo as ``make demo`` does (``python -m demo.run``), for tests that use it
from outside: HTTP clients and the browser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

#: Variables of the test run that would point the demo at the test suite's broker.
FOREIGN_VARIABLES = {"CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_demo(port: int, database: Path, output: Path | None = None) -> subprocess.Popen[bytes]:
    """``make demo`` in its own session (as a terminal gives it), on ``port``; what it
    prints goes to ``output`` when given."""
    env = {name: value for name, value in os.environ.items() if name not in FOREIGN_VARIABLES}
    env.update(DEMO_PORT=str(port), DEMO_DATABASE_PATH=str(database))
    with open(output or os.devnull, "wb") as printed:
        return subprocess.Popen(
            [sys.executable, "-m", "demo.run"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=printed,
            stderr=subprocess.STDOUT,
        )


def stop_demo(runner: subprocess.Popen[bytes]) -> None:
    """What Ctrl-C in a terminal does: SIGINT to the whole process group."""
    os.killpg(runner.pid, signal.SIGINT)
    runner.wait(timeout=30)
