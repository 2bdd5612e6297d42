"""``make test``: every part of the test suite, the parts that wait overlapped.

Run by ``make test`` with the system Python (the standard library only), so that it
can time the installs too:

1. install: the .venv (``make .venv/.installed``), Chromium for the browser tests
   (``make browser``);
2. lint, and meanwhile the matrix's virtualenvs (``nox --install-only``, uv);
3. at once: the main pytest run (on pytest-xdist workers, whose tests mostly wait:
   on leases, servers, subprocesses), then the docs; beside it the partitions
   between hosts (``make test-hosts``), then the embedded rerun (on xdist workers
   too); beside both the integration tests once more through PgBouncer (``make
   test-pgbouncer``, mostly waiting too), then the matrix's sessions (``nox
   --no-install -s ...``), a few at a time at the lowest CPU priority, so that they
   use the CPU the others leave.

Each part writes a log (``.test-logs/<part>.log``), printed whole when the part ends;
at the end a table gives each part's result, minutes (wall and CPU) and test counts.
Any part that fails fails the run (exit 1), after every part has finished. The
concurrency is set with ``make test TEST_JOBS=n`` (pytest-xdist workers of the main
run, default 4) and ``MATRIX_JOBS=n`` (the PgBouncer rerun and matrix sessions at once,
default 3: on 2026-12-07 three runs with 3 took 9.5-11.1 minutes, one with 4 took
10.3 and one with all seven sessions at once 11.3: the sessions crawled beside the
main run and slowed it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".test-logs"
MAKE = os.environ.get("MAKE", "make")
MATRIX_JOBS = int(os.environ.get("MATRIX_JOBS") or "3")
NICE = ["nice", "-n", "19"]
#: pytest's last line: "833 passed, 2 skipped, 6 subtests passed in 284.12s (0:04:44)".
SUMMARY = re.compile(r"^=*\s*(\d+ [a-z]+(?:, \d+ [a-z ]+)*) in [\d.]+s", re.MULTILINE)
#: nox's line for a session it skipped: "Session tests-3.11(django='6.0') skipped: ...".
SKIPPED = re.compile(r"^nox > Session \S+ skipped: (.*)$", re.MULTILINE)

#: What the parts run with: this environment, but Python writes the bytecode of what
#: a process imports (the checkout, and the packages of the matrix's virtualenvs,
#: which uv installs uncompiled), so that each of the hundreds of processes the tests
#: start (workers, servers, projects) does not compile them again where
#: PYTHONDONTWRITEBYTECODE is set: 6.0 s to set Django up in a matrix session, 2.5 s.
PARTS_ENVIRONMENT = {
    name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"
}

_print_lock = threading.Lock()


@dataclass
class Part:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    seconds: float = 0.0
    #: The CPU time of the part's processes (those waited for: the tests' own, not
    #: the daemons they leave), user and system: on a shared machine, what the part
    #: costs whatever the others were doing meanwhile.
    cpu_seconds: float = 0.0
    counts: str = ""
    tally: dict[str, int] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return LOGS / (re.sub(r"[^\w.]+", "-", self.name).strip("-") + ".log")

    @property
    def failed(self) -> bool:
        return self.returncode != 0


_running: set[subprocess.Popen[bytes]] = set()
_stopping = threading.Event()
_processes_lock = threading.Lock()


def run(part: Part) -> Part:
    """Run ``part`` to its end with its output in its log; print the log then."""
    say(f"--- {part.name}: started ({' '.join(part.command)})")
    started = time.monotonic()
    with open(part.log, "wb") as log, _processes_lock:
        if _stopping.is_set():
            part.returncode = -signal.SIGTERM
            return part
        process = subprocess.Popen(
            part.command,
            cwd=ROOT,
            env={**PARTS_ENVIRONMENT, **part.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # A process group, stopped as one on Ctrl-C; not a session of its own:
            # where the kernel groups CPU time by session (autogroup), a part's nice
            # would only weigh against its own processes, and the matrix's sessions
            # at nice 19 took 64 % of the CPU from the main run at nice 0 (measured).
            process_group=0,
        )
        _running.add(process)
    part.returncode, part.cpu_seconds = wait_with_usage(process)
    part.seconds = time.monotonic() - started
    output = part.log.read_text(errors="replace")
    part.tally = tally(output)
    part.counts = ", ".join(f"{number} {outcome}" for outcome, number in part.tally.items())
    if not part.counts and (skipped := SKIPPED.search(output)):
        part.counts = f"session skipped: {skipped.group(1)}"
    verdict = "FAILED" if part.failed else "ok"
    say(
        f"=== {part.name} ({verdict}, {part.seconds / 60:.1f} min) ===\n{output.rstrip()}\n"
        f"=== end of {part.name} ({verdict}, exit code {part.returncode}) ===",
    )
    return part


def wait_with_usage(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for ``process``: its exit code, and the CPU seconds it and the children it
    waited for used (``wait4``)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


def tally(output: str) -> dict[str, int]:
    """The test counts of every pytest run in ``output``, added up ("deselected" left
    out: a test one run deselects, another runs)."""
    total: dict[str, int] = {}
    for summary in SUMMARY.finditer(output):
        for item in summary.group(1).split(", "):
            number, outcome = item.split(" ", 1)
            total[outcome] = total.get(outcome, 0) + int(number)
    total.pop("deselected", None)
    return total


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def run_all(parts: list[Part], at_once: int) -> None:
    """Run ``parts``, ``at_once`` of them at a time, in order."""
    pending = list(parts)
    lock = threading.Lock()

    def lane() -> None:
        while True:
            with lock:
                if not pending:
                    return
                part = pending.pop(0)
            run(part)

    lanes = [threading.Thread(target=lane) for _ in range(max(1, at_once))]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()


def in_background(parts: list[Part], at_once: int = 1) -> threading.Thread:
    thread = threading.Thread(target=run_all, args=(parts, at_once))
    thread.start()
    return thread


def make(*arguments: str) -> list[str]:
    return [MAKE, "--no-print-directory", *arguments]


def matrix_sessions() -> list[str]:
    """The names of the nox sessions ``make matrix`` runs."""
    listing = subprocess.run(
        make("-s", "matrix", "ARGS=--list --json"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [session["session"] for session in json.loads(listing.stdout)]


def main() -> int:
    LOGS.mkdir(exist_ok=True)
    started = time.monotonic()
    install = run(Part("install", make(".venv/.installed", "browser")))
    if install.failed:
        return report([install], started)

    # The matrix's virtualenvs are made one after another (each installs this
    # checkout in editable mode, which writes its egg-info here), while lint runs.
    lint = Part("lint", make("lint"))
    linting = in_background([lint])
    matrix_install = run(Part("matrix install", make("matrix", "ARGS=--install-only")))
    linting.join()

    main_run = Part("pytest", make("test-main"))
    # The partitions between hosts wait out minute-long cuts: begun with the main run,
    # on a lane of their own, they end within it; the embedded rerun follows them there
    # (after the main run it was the longest lane's last 1.2 minutes).
    hosts = Part("hosts", make("test-hosts"))
    embedded = Part("embedded", make("test-embedded"))
    docs = Part("docs", make("docs"))
    pgbouncer = Part("pgbouncer", make("test-pgbouncer"))
    # The matrix's sessions at the lowest CPU priority: they take the CPU the other
    # parts leave while they wait (on leases, servers, subprocesses), never the CPU
    # that the latency tests of the main run and the embedded rerun need.
    sessions = [
        Part(f"matrix {name}", NICE + make("matrix", f"ARGS=--no-install -s {shlex.quote(name)}"))
        for name in ([] if matrix_install.failed else matrix_sessions())
    ]
    lanes = [
        in_background([main_run, docs]),
        in_background([hosts, embedded]),
        in_background([pgbouncer, *sessions], MATRIX_JOBS),
    ]
    for thread in lanes:
        thread.join()
    parts = [install, lint, matrix_install, main_run, hosts, embedded, docs, pgbouncer, *sessions]
    return report(parts, started)


def report(parts: list[Part], started: float) -> int:
    """The table of parts; 1 when any failed."""
    failed = [part for part in parts if part.failed]
    width = max(len(part.name) for part in parts)
    lines = [f"{'part'.ljust(width)}  result  minutes  CPU min  tests"]
    for part in parts:
        verdict = "FAILED" if part.failed else "ok"
        minutes = f"{part.seconds / 60:7.1f}  {part.cpu_seconds / 60:7.1f}"
        lines.append(f"{part.name.ljust(width)}  {verdict:6}  {minutes}  {part.counts}".rstrip())
    total = (time.monotonic() - started) / 60
    cpu = sum(part.cpu_seconds for part in parts) / 60
    lines.append(
        f"{'make test'.ljust(width)}  {'FAILED' if failed else 'ok':6}  {total:7.1f}  {cpu:7.1f}"
    )
    say("\n".join(["", "make test: the parts (several run at once)", *lines]))
    if failed:
        say("Failed: " + ", ".join(part.name for part in failed) + f" (logs in {LOGS})")
    say(closing_line(parts))
    return 1 if failed else 0


def closing_line(parts: list[Part]) -> str:
    """Every part's tests added up, in the plain form a CI reads a run's outcome from:
    "tests: 6123 passed, 0 failed, 12 skipped"."""
    total = {
        outcome: sum(part.tally.get(outcome, 0) for part in parts)
        for outcome in ("passed", "failed", "errors", "error", "skipped")
    }
    failed = total["failed"] + total["errors"] + total["error"]
    return f"tests: {total['passed']} passed, {failed} failed, {total['skipped']} skipped"


def _stop_everything(signum: int, _frame: object) -> None:
    """Ctrl-C (or SIGTERM): stop every part running, start no other, exit."""
    with _processes_lock:
        _stopping.set()
        for process in _running:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
    say(f"make test: stopped by signal {signum}")
    os._exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _stop_everything)
    signal.signal(signal.SIGTERM, _stop_everything)
    sys.exit(main())
