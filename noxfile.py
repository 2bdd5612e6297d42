"""The support matrix: the unit tests on every Python x Django the package declares.

``make matrix`` (or ``.venv/bin/nox``) runs one session per combination; nox skips,
saying so, a combination whose interpreter this machine lacks (we never download
one) and the ones Django itself does not support. Sessions run on SQLite and a
private Redis, so they share nothing with other runs; the integration and browser
tests, which need the services and a browser, stay with ``make test``, and so do the
packaging tests (building and installing the distributions does not change with
the Django of the session).

The virtualenvs are made and filled by uv (seconds, not pip's minutes) when it is
installed (requirements-dev.txt pins it), from where pip would install: uv reads no
pip configuration, so pip's indexes, find-links and constraints are handed to it.
``make test`` makes them all first (``nox --install-only``) and then runs the
sessions several at once (``nox --no-install -s ...``, tools/test_all.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
#: Each supported Django feature release and the requirement that picks it.
DJANGOS = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1", "6.1": "Django>=6.1,<6.2"}
#: The oldest Python each Django release supports (Django 6.0 dropped 3.10 and 3.11).
OLDEST_PYTHON = {"5.2": "3.10", "6.0": "3.12", "6.1": "3.12"}

nox.options.default_venv_backend = "uv|venv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = False
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]


#: pip's settings (pip.conf or PIP_ variables) and the uv variables that say the same.
PIP_TO_UV = {
    "index-url": ("UV_DEFAULT_INDEX", " "),
    "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "find-links": ("UV_FIND_LINKS", ","),
    "constraint": ("UV_CONSTRAINT", " "),
    "cert": ("SSL_CERT_FILE", " "),
}


@functools.cache
def _install_env() -> dict[str, str]:
    """For uv, the package sources pip is configured with, best match over all of
    them as pip takes it; nothing for pip itself, which reads its own."""
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        listing = ""
    env = {"UV_INDEX_STRATEGY": "unsafe-best-match", "UV_PYTHON_DOWNLOADS": "never"}
    for line in listing.splitlines():  # global.find-links='/opt/wheels', :env:.cert='...'
        key, _, value = line.partition("=")
        variable, separator = PIP_TO_UV.get(key.rpartition(".")[2], (None, " "))
        if variable is not None:
            env[variable] = separator.join(value.strip("'\"").split())
    return env


#: What a session's virtualenv is filled from: while these are unchanged, a reused
#: virtualenv is not filled again (Django reinstalled twice, pip asked about each
#: requirement), and `make test`'s `nox --install-only` takes seconds.
INSTALL_INPUTS = ("requirements-dev.txt", "requirements-demo.txt", "setup.cfg", "pyproject.toml")


def _fingerprint(python: str, django: str) -> str:
    digest = hashlib.sha256(f"{python}\n{DJANGOS[django]}".encode())
    for name in INSTALL_INPUTS:
        digest.update(Path(name).read_bytes())
    return digest.hexdigest()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@nox.session(python=PYTHONS)
@nox.parametrize("django", list(DJANGOS))
def tests(session: nox.Session, django: str) -> None:
    """The unit tests with the pinned dev requirements, Django swapped for ``django``."""
    python = str(session.python)
    if _version(python) < _version(OLDEST_PYTHON[django]):
        session.skip(f"Django {django} needs Python {OLDEST_PYTHON[django]} or newer")
    stamp = Path(str(session.virtualenv.location), "async-orders-installed")
    fingerprint = _fingerprint(python, django)
    if stamp.exists() and stamp.read_text() == fingerprint:
        session.log(f"Installed already from the same {', '.join(INSTALL_INPUTS)}")
    else:
        _install(session, django)
        # Written only when the installs ran (run_install, skipped as they are by --no-install).
        write = f"import pathlib; pathlib.Path({str(stamp)!r}).write_text({fingerprint!r})"
        session.run_install("python", "-c", write, silent=True)
    session.run("python", "-m", "django", "--version")
    # SQLite and a private Redis: a session shares nothing with other runs.
    session.env["ASYNC_ORDERS_TEST_SERVICES"] = "embedded"
    # The schemathesis fuzz in breadth here, in depth in the main run (tests/test_contract.py).
    session.env["ASYNC_ORDERS_FUZZ_EXAMPLES"] = os.environ.get("ASYNC_ORDERS_FUZZ_EXAMPLES", "20")
    session.run(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-m", "not integration and not browser and not packaging", *session.posargs,
    )  # fmt: skip


def _install(session: nox.Session, django: str) -> None:
    env = {}
    if session.venv_backend == "uv":
        env = _install_env()
        # pip in the virtualenv, as `python -m venv` puts it there (test_package runs it).
        session.run_install("python", "-m", "ensurepip", "--upgrade", "--default-pip", silent=True)
    session.install("--quiet", "-r", "requirements-dev.txt", env=env)
    session.install("--quiet", DJANGOS[django], env=env)
