"""An order's lifecycle with real processes: time limits enforced by a real worker
(at a checkpoint, and by replacing a prefork pool process that reaches none), the
attempt history and re-running over HTTP.

Overlapping attempts are counted in the ledger, a Redis list outside the database
under test (:mod:`tests.faultstack`): a timed-out attempt must never run alongside
its retry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User

from async_orders.locks import lock_key
from async_orders.models import OrderLock
from tests.faultstack import Stack
from tests.helpers import ROOT, place_live, wait_until
from tests.testapp.models import Execution

CLIENT_MODULE = ROOT / "async_orders" / "static" / "async_orders" / "async-orders.mjs"

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(url: str, http: Any = requests, timeout: float = 30) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (body := http.get(url, timeout=10).json())["status"]
            in ("completed", "failed", "canceled")
            and body
        ),
        timeout=timeout,
        what=f"{url} to finish",
    )


def attempts_of(body: dict[str, Any], http: Any = requests) -> list[dict[str, Any]]:
    response = http.get(body["attempts_url"], timeout=10)
    assert response.status_code == 200
    return response.json()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_attempt_past_its_timeout_stops_at_its_checkpoint_and_never_overlaps_its_retry(
    stack: Stack,
) -> None:
    stack.web()
    stack.worker("worker")
    url = stack.place("ledgered-timed", 10_000, 0.02, timeout=0.5)

    body = finished(url)

    assert (body["status"], body["error"]["code"], body["attempts"]) == ("failed", "timed_out", 2)
    attempts = attempts_of(body)
    assert [(a["number"], a["outcome"], a["error"]["code"]) for a in attempts] == [
        (1, "failed", "timed_out"),
        (2, "failed", "timed_out"),
    ]
    assert {attempt for _, attempt, _, _ in stack.entries()} == {1, 2}
    assert stack.overlapping_attempts() == 0
    assert not OrderLock.objects.filter(key=lock_key("ledgered-timed", steps=10_000)).exists()


def test_an_attempt_that_reaches_no_checkpoint_has_its_pool_process_replaced(
    stack: Stack,
) -> None:
    stack.web()
    stack.worker("prefork", "--pool=prefork", "--concurrency=1")
    url = stack.place("ledgered-stuck", 2, 20, timeout=1)

    body = finished(url)

    assert (body["status"], body["error"]["code"], body["attempts"]) == ("failed", "timed_out", 2)
    assert [a["error"]["code"] for a in attempts_of(body)] == ["timed_out", "timed_out"]
    (_, _, _, first_pid), (_, _, _, second_pid) = stack.entries()
    assert first_pid != second_pid  # the pool process was replaced
    wait_until(lambda: not alive(first_pid) and not alive(second_pid), what="both to be gone")
    # Neither attempt ever got past its sleep: step 1 is nowhere in the ledger.
    assert [(attempt, step) for _, attempt, step, _ in stack.entries()] == [(1, 0), (2, 0)]
    assert stack.overlapping_attempts() == 0
    assert "Hard time limit" in stack.log_of("prefork")
    assert not OrderLock.objects.exists()


@pytest.mark.usefixtures("celery_worker")
def test_a_failed_order_rerun_over_http_runs_again_as_a_new_order(live_server: Any) -> None:
    User.objects.create_user("alice", password="pw")
    with requests.Session() as alice:
        alice.auth = ("alice", "pw")
        failed = finished(
            place_live(live_server.url, "flaky", http=alice, data={"succeed_on": 9}).url, alice
        )
        assert [a["outcome"] for a in attempts_of(failed, alice)] == ["failed"] * 3

        rerun = alice.post(f"{failed['url']}rerun/", allow_redirects=False, timeout=10)

        assert rerun.status_code == 302
        again = finished(rerun.headers["Location"], alice)
        assert again["rerun_of"] == failed["url"]
        assert alice.get(failed["url"], timeout=10).json()["reruns"] == [again["url"]]
        assert again["status"] == "failed"  # the same envelope: it fails the same way
        assert requests.post(f"{failed['url']}rerun/", timeout=10).status_code == 404


@pytest.mark.usefixtures("celery_worker")
def test_a_retried_order_lists_each_attempt_over_http(live_server: Any) -> None:
    placed = place_live(live_server.url, "flaky", data={"succeed_on": 2})

    body = finished(placed.url)

    attempts = attempts_of(body)
    assert [(a["number"], a["outcome"]) for a in attempts] == [(1, "failed"), (2, "completed")]
    assert attempts[0]["error"]["code"] == "exception"
    assert attempts[0]["worker"].startswith("worker@")


def test_an_order_no_worker_started_in_time_fails_without_running(
    live_server: Any, spare_queue: str, workers: Any
) -> None:
    placed = place_live(live_server.url, "counted", start_deadline=0.2)
    workers(spare_queue)  # the first to consume the spare queue: seconds later

    body = finished(placed.url)

    assert (body["status"], body["error"]["code"]) == ("failed", "start_deadline_exceeded")
    assert [a["error"]["code"] for a in attempts_of(body)] == ["start_deadline_exceeded"]
    assert not Execution.objects.filter(order_id=body["id"]).exists()


def node() -> str:
    """Node.js, which the machines come with: skip without it, except under CI=true."""
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs Node.js for the JavaScript client's test")
        pytest.skip("needs Node.js (its fetch) to run the JavaScript client")
    return found


@pytest.mark.usefixtures("celery_worker")
def test_the_javascript_client_reruns_an_order_and_lists_its_attempts(
    live_server: Any, tmp_path: Path
) -> None:
    User.objects.create_user("dora", password="pw")
    script = tmp_path / "rerun.mjs"
    script.write_text(
        f"""
import {{ Client, OrderFailedError }} from "{CLIENT_MODULE}";
const client = new Client({{
  baseUrl: "{live_server.url}/async/",
  headers: {{ Authorization: "Basic " + btoa("dora:pw") }},
  interval: 50,
}});
let failed;
try {{
  await client.run("flaky", {{ data: {{ succeed_on: 9 }}, timeout: 60 }});
}} catch (error) {{
  if (!(error instanceof OrderFailedError)) throw error;
  failed = error.order;
}}
const attempts = await client.attempts(failed);
const again = await client.rerun(failed, {{ idempotencyKey: "js-1" }});
const same = await client.rerun(failed, {{ idempotencyKey: "js-1" }});
console.log(JSON.stringify({{ failed, attempts, again, same: same.id }}));
"""
    )

    ran = subprocess.run([node(), str(script)], capture_output=True, text=True, timeout=60)

    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert (out["failed"]["timeout"], out["failed"]["error"]["code"]) == (60, "exception")
    assert [attempt["outcome"] for attempt in out["attempts"]] == ["failed"] * 3
    assert out["again"]["rerun_of"] == out["failed"]["url"]
    assert out["same"] == out["again"]["id"]
    # The re-run runs on the session's worker: it ends before the test's tables are
    # emptied (its attempt's INSERT once deadlocked with the flush's TRUNCATE).
    with requests.Session() as dora:
        dora.auth = ("dora", "pw")
        assert finished(out["again"]["url"], dora)["status"] == "failed"
