"""``make demo`` as a user runs it: one command brings up web, worker and broker,
an order goes through, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_in_session(session_id: int) -> list[str]:
    listing = subprocess.run(
        ["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in listing.splitlines() if line.split()[0] == str(session_id)]


def test_the_demo_runs_an_order_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(DEMO_PORT=str(port), DEMO_DATABASE_PATH=str(tmp_path / "demo.sqlite3"))
    runner = subprocess.Popen(
        [sys.executable, "-m", "demo.run"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, as a terminal would give it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        order = wait_until(lambda: _try_order(base), timeout=60, what="the demo to answer")
        done = wait_until(
            lambda: (r := requests.get(order, timeout=5)).status_code == 201 and r,
            timeout=30,
            what="the demo order to complete",
        )
        assert requests.get(done.headers["Location"], timeout=5).json()["name"] == "funghi"
        assert len(_processes_in_session(runner.pid)) >= 4  # runner, redis, worker, web
    finally:
        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        runner.wait(timeout=30)

    assert runner.returncode == 0
    wait_until(lambda: not _processes_in_session(runner.pid), timeout=10, what="no leftovers")


def _try_order(base: str) -> str | None:
    try:
        placed = requests.post(
            f"{base}/async/shop:pizza-list/order/",
            json={"data": {"name": "funghi"}},
            allow_redirects=False,
            timeout=5,
        )
    except requests.ConnectionError:
        return None
    assert placed.status_code == 302
    return placed.headers["Location"]
