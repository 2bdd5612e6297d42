"""``make demo`` as a user runs it: one command brings up web, worker and broker,
an order goes through, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.demo_server import free_port, start_demo, stop_demo
from tests.helpers import ROOT, processes_in_session, wait_until

pytestmark = pytest.mark.integration


def test_the_demo_runs_an_order_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    port = free_port()
    printed = tmp_path / "demo.log"
    runner = start_demo(port, tmp_path / "demo.sqlite3", printed)
    base = f"http://127.0.0.1:{port}"
    try:
        # Three processes to start and a database to migrate: on a machine as busy as
        # make test's (load 13), a minute was not always enough.
        order = wait_until(lambda: _try_order(base), timeout=180, what="the demo to answer")
        done = wait_until(
            lambda: (r := requests.get(order, timeout=5)).status_code == 201 and r,
            timeout=30,
            what="the demo order to complete",
        )
        assert requests.get(done.headers["Location"], timeout=5).json()["name"] == "funghi"
        task_order = _order_the_task(base)
        counted = wait_until(
            lambda: (r := requests.get(task_order, timeout=5)).status_code == 201 and r,
            timeout=30,
            what="the demo's task order to complete",
        )
        result = requests.get(counted.headers["Location"], timeout=5).json()
        assert result == {"pizzas": 4, "toppings": 12}
        assert len(processes_in_session(runner.pid)) >= 5  # runner, redis, worker, reconciler, web
    finally:
        stop_demo(runner)

    assert runner.returncode == 0
    wait_until(lambda: not processes_in_session(runner.pid), timeout=10, what="no leftovers")
    assert printed.read_text().count("Warm shutdown") == 1


def test_the_demo_on_a_busy_port_names_demo_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runner = subprocess.run(
            [sys.executable, "-m", "demo.run"],
            cwd=ROOT,
            env={**os.environ, "DEMO_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert runner.returncode == 1
    assert f"Port {port} is already in use" in runner.stderr
    assert f"DEMO_PORT={port + 1} make demo" in runner.stderr


def _order_the_task(base: str) -> str:
    return _place(base, "tasks/demo.shop.jobs.count_toppings", {"kwargs": {"pizzas": 4}})


def _try_order(base: str) -> str | None:
    try:
        return _place(base, "shop:pizza-list", {"data": {"name": "funghi"}})
    except requests.ConnectionError:
        return None


def _place(base: str, name: str, body: dict[str, object]) -> str:
    """POST an order of ``name`` (a view's URL name, or ``tasks/<path>``); its URL."""
    placed = requests.post(
        f"{base}/async/{name}/order/", json=body, allow_redirects=False, timeout=5
    )
    assert placed.status_code == 302, placed.text
    return placed.headers["Location"]
