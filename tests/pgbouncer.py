"""The integration tests with every process connecting through PgBouncer in
``pool_mode = transaction``.

``python -m tests.pgbouncer [pytest arguments]`` makes a private PostgreSQL cluster
that listens on no TCP port, only on a socket in its own directory, starts a private
``pgbouncer`` in front of it, and runs pytest with ``PGHOST``/``PGPORT`` naming the
bouncer: the pytest process, its live server, the Celery workers and the reconciler
know no other way to the database. At the end it prints what the bouncer pooled (its
``SHOW STATS``) and fails if nothing went through it. ``make test-pgbouncer`` runs the
part of the suite that covers placing, polling, long-polls, event streams, cancels,
retries, the reconciler, leases and the cap.

Transaction pooling hands each transaction whichever server connection is free, so
anything that outlives a transaction on a connection (session advisory locks,
``LISTEN``, ``SET``, prepared statements, temporary tables, server-side cursors
outside a transaction) would break here: docs/deployment.md lists what to configure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import django
import psycopg

if __name__ == "__main__":  # a program: the helpers below import the test project
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()

from tests.debian import installed, missing_reason
from tests.faultstack import PrivatePostgres, free_port
from tests.helpers import ROOT, wait_until

#: Set in the processes of a run through the bouncer (tests/services.py reads it).
VARIABLE = "ASYNC_ORDERS_TEST_PGBOUNCER"


class SocketOnlyPostgres(PrivatePostgres):
    """A private cluster reachable through the Unix socket in its directory alone."""

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses='' -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")


class PrivateBouncer:
    """``pgbouncer`` in transaction pooling in front of ``postgres``, on a port of its own."""

    def __init__(self, program: str, postgres: PrivatePostgres) -> None:
        self.program = program
        self.postgres = postgres
        self.directory = Path(tempfile.mkdtemp(prefix="async-orders-pgbouncer-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateBouncer:
        (self.directory / "users.txt").write_text('"postgres" ""\n')
        (self.directory / "pgbouncer.ini").write_text(self.configuration())
        # Quiet: its log is in its directory, not among the tests' output.
        command = [self.program, "--quiet", str(self.directory / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            shutil.chown(self.directory, "postgres", "postgres")
            command[1:1] = ["--user", "postgres"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        wait_until(self._answers, timeout=30, what="pgbouncer to start")
        return self

    def configuration(self) -> str:
        return f"""\
[databases]
* = host={self.postgres.directory} port={self.postgres.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.directory}/users.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
logfile = {self.directory}/pgbouncer.log
pidfile = {self.directory}/pgbouncer.pid
"""

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {self.log()}")
        try:
            self.stats()
        except psycopg.OperationalError:
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Transactions each database had through the bouncer (its ``SHOW STATS``)."""
        admin = psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer", autocommit=True
        )
        with admin:
            cursor = admin.cursor(row_factory=psycopg.rows.dict_row)
            rows = cursor.execute("SHOW STATS", prepare=False).fetchall()
        return {row["database"]: int(row["total_xact_count"]) for row in rows}

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)


def main(arguments: list[str]) -> int:
    """Run pytest with ``arguments`` through a private bouncer; its exit code."""
    program = installed("pgbouncer", "pgbouncer")
    if program is None:
        print(missing_reason("pgbouncer", "pgbouncer"), flush=True)
        return 1 if os.environ.get("CI") == "true" else 0
    postgres = SocketOnlyPostgres().create()
    bouncer = PrivateBouncer(program, postgres)
    try:
        bouncer.start()
        # The services this process chose on loading the settings are not pytest's.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ASYNC_ORDERS_TEST")}
        env = {
            **inherited,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(bouncer.port),
            "ASYNC_ORDERS_TEST_SERVICES": "real",
            VARIABLE: "1",
        }
        # --reuse-db: pytest-django would DROP the test databases at the end, which
        # the bouncer's pooled server connections still use; the cluster goes instead.
        command = [sys.executable, "-m", "pytest", "--reuse-db", *arguments]
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        pooled = {name: count for name, count in bouncer.stats().items() if name != "pgbouncer"}
        print(f"pgbouncer (pool_mode = transaction) pooled transactions: {pooled}", flush=True)
        if not any(name.startswith("test_") and count for name, count in pooled.items()):
            print("No transaction of the tests went through pgbouncer", flush=True)
            return code or 1
        return code
    finally:
        bouncer.stop()
        postgres.destroy()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
