"""The support matrix: the unit tests on every Python x Django the package declares.

``make matrix`` (or ``.venv/bin/nox``) runs one session per combination; nox skips,
saying so, a combination whose interpreter this machine lacks (we never download
one) and the ones Django itself does not support. Sessions run on SQLite and a
private Redis, so they share nothing with other runs; the integration and browser
tests, which need the services and a browser, stay with ``make test``.
"""

from __future__ import annotations

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
#: Each supported Django feature release and the requirement that picks it.
DJANGOS = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1", "6.1": "Django>=6.1,<6.2"}
#: The oldest Python each Django release supports (Django 6.0 dropped 3.10 and 3.11).
OLDEST_PYTHON = {"5.2": "3.10", "6.0": "3.12", "6.1": "3.12"}

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = False
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@nox.session(python=PYTHONS)
@nox.parametrize("django", list(DJANGOS))
def tests(session: nox.Session, django: str) -> None:
    """The unit tests with the pinned dev requirements, Django swapped for ``django``."""
    python = str(session.python)
    if _version(python) < _version(OLDEST_PYTHON[django]):
        session.skip(f"Django {django} needs Python {OLDEST_PYTHON[django]} or newer")
    session.install("--quiet", "-r", "requirements-dev.txt")
    session.install("--quiet", DJANGOS[django])
    session.run("python", "-m", "django", "--version")
    # SQLite and a private Redis: a session shares nothing with other runs.
    session.env["ASYNC_ORDERS_TEST_SERVICES"] = "embedded"
    session.run(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-m", "not integration and not browser", *session.posargs,
    )  # fmt: skip
