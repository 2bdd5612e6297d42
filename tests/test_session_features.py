"""None of our statements needs a database session: behind PgBouncer's transaction
pooling each transaction may run on another server connection, so anything that
outlives a transaction on one (docs/deployment.md's table) would break. A new use of
one fails here, and ``make test-pgbouncer`` runs the integration tests through a real
bouncer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import async_orders

PACKAGE = Path(async_orders.__file__).parent

#: Each session feature, as it would appear in our SQL (written in capitals) or driver
#: calls.
SESSION_FEATURES = {
    "session advisory lock": r"pg_(try_)?advisory_lock(_shared)?\s*\(",
    "LISTEN": r"\b(UN)?LISTEN\s+\w",
    "session SET": r"[\"']\s*(SET|RESET)\s+(?!LOCAL\b)\w+\s*(=|TO\b)",
    "prepared statement": r"\bPREPARE\s+\w|prepare\s*=\s*True|prepare_threshold",
    "temporary table": r"\bCREATE\s+(TEMP|TEMPORARY)\b",
    "cursor WITH HOLD": r"\bWITH\s+HOLD\b",
}


def sources() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts)


@pytest.mark.parametrize("feature", SESSION_FEATURES)
def test_no_statement_of_ours_needs_a_session(feature: str) -> None:
    pattern = re.compile(SESSION_FEATURES[feature])
    uses = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert uses == []


def test_the_advisory_lock_we_take_ends_with_its_transaction() -> None:
    statements = (PACKAGE / "order_statements.py").read_text()
    assert "pg_advisory_xact_lock(" in statements
