"""Order reads stay on the primary behind a router that reads from a lagging replica.

A private primary and its streaming replica, which applies what the primary commits
two seconds late (``recovery_min_apply_delay``); the web server and the worker run
with a router that sends every read to the replica (tests/replica.py). Placing,
polling, long-polling, running and recovering orders all read them on the database
they are written to, so a client never sees an order it was shown go back: no 404
after the 302, no 202 after the 201, no ETag returning to an earlier value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import requests

from tests.faultstack import PrivatePostgres, Stack, Stopwatch, private_redis
from tests.helpers import FAULT_FIGURES, wait_until
from tests.replica import PrivateReplica

pytestmark = [pytest.mark.integration, pytest.mark.postgres_server]

ORDERS = 20
#: How late the replica applies the primary's commits.
REPLICA_DELAY = 2.0
#: What a poll answers per status, in the order an order goes through them.
RANK = {202: 0, 201: 1}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, PrivateReplica]]:
    """Web, worker and reconciler on the primary, reading through the replica router."""
    with ExitStack() as cleanup:
        primary = PrivatePostgres().create()
        cleanup.callback(primary.destroy)
        replica = PrivateReplica(primary, f"{REPLICA_DELAY:g}s").create()
        cleanup.callback(replica.destroy)
        servers = [cleanup.enter_context(private_redis(tmp_path / n)) for n in ("broker", "ledger")]
        database_env = {
            "ASYNC_ORDERS_TEST_DATABASE": "postgres",
            "ASYNC_ORDERS_TEST_DB_NAME": "postgres",
            "PGPORT": str(primary.port),
            "ASYNC_ORDERS_TEST_REPLICA_PORT": str(replica.port),
        }
        built = Stack(tmp_path, database_env, *servers)
        cleanup.callback(built.stop)
        assert built.start("migrate", "manage.py", "migrate", "--noinput").wait(timeout=120) == 0
        built.web()
        built.worker("worker")
        built.reconciler()
        yield built, replica


def on_replica(replica: PrivateReplica, order_id: str) -> bool:
    with psycopg.connect(host="127.0.0.1", port=replica.port, user="postgres") as replica_db:
        row = replica_db.execute("SELECT 1 FROM async_orders_order WHERE id = %s", [order_id])
        return row.fetchone() is not None


def test_a_polled_order_never_goes_back_behind_a_lagging_replica(
    stack: tuple[Stack, PrivateReplica],
) -> None:
    stack_, replica = stack
    urls = [stack_.place("ledgered", 2, 0.05)]
    # The replica really lags: the order just placed is not on it yet.
    assert not on_replica(replica, urls[0].rstrip("/").rsplit("/", 1)[1])
    urls += [stack_.place("ledgered", 2, 0.05) for _ in range(ORDERS - 1)]

    seen: dict[str, list[tuple[int, str]]] = {url: [] for url in urls}
    clock = Stopwatch()
    # Poll (plain and long-poll, round robin) until every order answered 201, and on
    # for the replica's delay after that, when a replica read would go back.
    done_at: float | None = None
    while done_at is None or clock.seconds() < done_at + REPLICA_DELAY:
        for number, url in enumerate(urls):
            wait = "?wait=1" if number % 2 else ""
            etag = seen[url][-1][1] if wait and seen[url] else None
            headers = {"If-None-Match": etag} if etag else {}
            response = requests.get(url + wait, headers=headers, timeout=10)
            if response.status_code != 304:
                seen[url].append((response.status_code, response.headers.get("ETag", "")))
        if done_at is None and all(codes and codes[-1][0] == 201 for codes in seen.values()):
            done_at = clock.seconds()
        assert clock.seconds() < 60, "the orders did not complete within a minute"

    backwards = [url for url, answers in seen.items() if went_back(answers)]
    flaps = [url for url, answers in seen.items() if etag_flapped(answers)]
    polls = sum(len(answers) for answers in seen.values())
    wait_until(lambda: on_replica(replica, urls[-1].rstrip("/").rsplit("/", 1)[1]), timeout=10)
    FAULT_FIGURES.append(
        f"reads routed to a replica {REPLICA_DELAY:g}s behind: {ORDERS} orders, {polls} "
        f"polls, {len(backwards)} went back, {len(flaps)} ETag flaps, overlapping "
        f"attempts {stack_.overlapping_attempts()}, all completed {done_at:.1f}s after placing"
    )
    assert (backwards, flaps, stack_.overlapping_attempts()) == ([], [], 0)
    assert all(stack_.order(url)["attempts"] == 1 for url in urls)


def went_back(answers: list[tuple[int, str]]) -> bool:
    """An answer other than 202/201 (a 404: not found), or a 202 after a 201."""
    ranks = [RANK.get(status, -1) for status, _ in answers]
    return -1 in ranks or ranks != sorted(ranks)


def etag_flapped(answers: list[tuple[int, str]]) -> bool:
    """An ETag shown again after another one had replaced it."""
    tags = [etag for _, etag in answers]
    changes = [tag for index, tag in enumerate(tags) if index == 0 or tag != tags[index - 1]]
    return len(changes) != len(set(changes))
