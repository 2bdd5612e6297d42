"""docs/quickstart.md's "Add it to your project", replayed as a new user follows it.

A fresh venv on the newest Python and Django of the support matrix (noxfile.py), a
fresh ``django-admin startproject yourproject``, the package installed from a wheel
built from this checkout, and every code block of the section's steps taken from the
Markdown and added to the file its first line names. Then the commands the steps
name: migrate, check, a Celery worker, the reconciler, and an order placed over HTTP
that completes, with the schema and its pages served. The test follows the docs
when they change; a block that cannot be applied as written is a docs bug, to be
fixed in the docs, never worked around here.

Only what a user must substitute is substituted: ``...`` in a list (the entries
startproject wrote) and the broker's address. The database stays startproject's
SQLite, as a new user has it. The venv is made once per test session; each phase's
wall time is printed, since this is the slowest test of the suite.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis
import requests

from async_orders.embedded import EmbeddedRedis
from tests import services
from tests.demo_server import free_port
from tests.helpers import ROOT, forget_queues, processes_in_session, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fresh_project]

QUICKSTART = ROOT / "docs" / "quickstart.md"
PROJECT = "yourproject"
#: A code block's first line names the file it goes into, e.g. ``# yourproject/urls.py``;
#: a block may name another file further down (the settings and URLs of one feature).
FILE_LINE = re.compile(rf"^# ({PROJECT}/[\w/]+\.py)$", re.MULTILINE)
#: A fenced Python block; indented ones belong to the numbered steps.
FENCE = re.compile(r"^(?P<indent> *)```python\n(?P<code>.*?)^(?P=indent)```$", re.M | re.S)
#: The wheel the install step names, with its extras.
WHEEL = re.compile(r'"[^"]*\bdist/(?P<name>async_orders-[^"\[]+\.whl)\[(?P<extras>[\w,-]+)\]"')
#: The extras a step asks for besides the install step's ("the `docs-ui` extra").
MORE_EXTRAS = re.compile(r"the `([\w-]+)` extra\b")
#: The client's own distribution, installed from the checkout as the quickstart says.
CLIENT_INSTALL = re.compile(r"`pip install /path/to/async_orders/(?P<folder>[\w/]+)`")
#: The extra a SQLite project does without.
DATABASE_EXTRAS = {"postgres"}

#: The Redis database of the replay when a real Redis answers: one that no other run
#: uses (the tests use 15, the benchmarks 14, and 13 was seen holding benchmark queues),
#: since every quickstart project's worker consumes Celery's default queue, ``celery``.
REDIS_DB = 12
#: Replays in other checkouts share that Redis database: one runs at a time.
LOCK_KEY = "async-orders-quickstart-replay"
LOCK_SECONDS = 600
#: How long a started process may take to stop after Ctrl-C; then it is killed.
STOP_TIMEOUT = 30
ORDER_TIMEOUT = 90
#: This test run's variables, which a user's shell does not have: pytest-django's
#: DJANGO_SETTINGS_MODULE would win over manage.py's default, the suite's broker over
#: the project's, and an active venv's over the user's.
FOREIGN_PREFIXES = ("DJANGO_", "CELERY_", "REDIS_", "ASYNC_ORDERS_", "DEMO_")
FOREIGN_VARIABLES = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}

#: The schedulable view a user adds, as docs/views-and-helpers.md shows it.
VIEW = """\
from django.http import JsonResponse

from async_orders import ProgressItems, schedulable


@schedulable
def report(request, size):
    total = 0
    for number in ProgressItems(range(size), message="Adding up"):
        total += number
    return JsonResponse({"size": size, "total": total})
"""
VIEW_URL = """\
from . import views

urlpatterns += [path("report/<int:size>/", views.report, name="report")]
"""


class Phases:
    """The wall time of each phase, in the order they ran, for the printed summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - start

    def summary(self) -> str:
        rows = [f"  {name:<40} {seconds:6.1f} s" for name, seconds in self.seconds.items()]
        return "\n".join(["quickstart replay, wall time per phase:", *rows])


@dataclass
class UserVenv:
    """The venv a new user made: the newest matrix Django, the package from a wheel."""

    bin: Path
    python_version: str
    django: str
    #: The phases that made it; only the first test of the session pays them.
    phases: Phases = field(default_factory=Phases)

    def command(self, documented: str) -> list[str]:
        """A command of the docs (``.venv/bin/celery ...``), run with this venv."""
        words = shlex.split(documented)
        assert words[0].startswith(".venv/bin/"), documented
        return [str(self.bin / words[0].removeprefix(".venv/bin/")), *words[1:]]


def _unavailable(reason: str) -> NoReturn:
    """Skip, saying why, when this machine cannot give the test its Python or Django;
    under CI=true that is a broken CI image instead, never a silent skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, yet the quickstart replay cannot run: {reason}")
    pytest.skip(reason)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _matrix() -> tuple[list[str], str, str]:
    """The Pythons of noxfile.py that can run its newest Django, newest first, and that
    Django's series and requirement. Read from the file, not imported: nox need not be
    installed where the tests run."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    values = {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    series = max(values["DJANGOS"], key=_version)
    oldest = _version(values["OLDEST_PYTHON"][series])
    pythons = [v for v in values["PYTHONS"] if _version(v) >= oldest]
    return sorted(pythons, key=_version, reverse=True), series, values["DJANGOS"][series]


def _interpreter(version: str) -> str | None:
    """Python ``version`` from pyenv (as `make matrix` finds it) or PATH, if it runs: a
    pyenv shim is on PATH for versions that `pyenv global` does not name, and fails."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"), reverse=True)
    for candidate in [*map(str, pyenv), shutil.which(f"python{version}")]:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


def _user_environment(venv_bin: Path | None = None) -> dict[str, str]:
    """The environment of a user's shell: this run's variables left out."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(FOREIGN_PREFIXES) and name not in FOREIGN_VARIABLES
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if venv_bin is not None:
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a documented step; its output is the failure message when it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def _section() -> str:
    """The "Add it to your project" section of the quickstart."""
    text = QUICKSTART.read_text()
    assert "## Add it to your project" in text, "docs/quickstart.md lost its section"
    return text.split("## Add it to your project", 1)[1].split("\n## ", 1)[0]


def _blocks(section: str) -> list[tuple[str, str]]:
    """``(file, code)`` for each code block of the numbered steps, in order."""
    pieces: list[tuple[str, str]] = []
    for fence in FENCE.finditer(section):
        if not fence["indent"]:
            continue  # after the steps: an example run from elsewhere (the client)
        code = textwrap.dedent(fence["code"])
        parts = FILE_LINE.split(code)
        assert not parts[0].strip(), f"A quickstart block names no file on its first line:\n{code}"
        pieces += [
            (name, body.strip("\n") + "\n")
            for name, body in zip(parts[1::2], parts[2::2], strict=True)
        ]
    return pieces


def _client_example(section: str, base: str, view: str) -> str:
    """The client example after the steps, pointed at ``base`` and ``view`` (the
    address and the URL name a user substitutes), printing the order's status."""
    examples = [f["code"] for f in FENCE.finditer(section) if "async_orders.client" in f["code"]]
    assert len(examples) == 1, f"The quickstart has {len(examples)} client examples"
    code, found = re.subn(
        r"Client\(\"[^\"]+\"\)\.run\(\"[^\"]+\"", f"Client({base!r}).run({view!r}", examples[0]
    )
    assert found == 1, f"The client example no longer calls Client(url).run(view):\n{examples[0]}"
    return f"{code}\nprint(order.status)\n"


def _documented(section: str, word: str) -> str:
    """The one ``.venv/bin/...`` command of the steps that contains ``word``."""
    found = [c for c in re.findall(r"`(\.venv/bin/[^`]+)`", section) if word in c]
    assert len(found) == 1, f"The quickstart names {len(found)} commands with {word!r}: {found}"
    return found[0]


def _as_written(code: str, broker: str) -> str:
    """A block with what a user substitutes: ``[...,`` for the list's existing entries,
    and the broker's address for this test's broker."""
    code = re.sub(r"^(\w+) = \[\.\.\., ", r"\1 = [*\1, ", code, flags=re.MULTILINE)
    code = re.sub(r"^CELERY_BROKER_URL = .*$", f"CELERY_BROKER_URL = {broker!r}", code, flags=re.M)
    assert "..." not in code, f"A quickstart block the test cannot apply as written:\n{code}"
    return code


def _append(path: Path, code: str) -> None:
    """Add ``code`` at the end of ``path``, which startproject may not have made."""
    existing = path.read_text() if path.exists() else ""
    path.write_text(f"{existing.rstrip()}\n\n\n{code}".lstrip())


def _build_wheel(dist: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """The quickstart's ``python -m pip wheel --no-deps -w dist .`` in this checkout,
    with this run's Python (any Python with pip builds the same pure wheel); returns
    the finished command and its wall time."""
    start = time.monotonic()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), "."]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    return done, time.monotonic() - start


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> UserVenv:
    """A fresh venv, made as the quickstart says: Django first (startproject needs
    it), then the wheel built from this checkout with the extras the steps name. The
    wheel is built while the venv is made: the two wait on the index and the disk
    more than on the CPU."""
    pythons, series, requirement = _matrix()
    found = [(v, path) for v in pythons if (path := _interpreter(v))]
    if not found:
        _unavailable(f"Django {series} needs Python {' or '.join(pythons)}; none is here")
    python_version, python = found[0]
    install = WHEEL.search(_section())
    assert install, "The quickstart no longer names the wheel to install"
    root = tmp_path_factory.mktemp("quickstart-venv")
    venv = UserVenv(root / ".venv" / "bin", python_version, series)
    env = _user_environment()
    with ThreadPoolExecutor(max_workers=1) as builder:
        building = builder.submit(_build_wheel, root / "dist", env)
        with venv.phases(f"venv (Python {python_version})"):
            _run([python, "-m", "venv", str(root / ".venv")], root, env)
        with venv.phases(f"pip install Django {series}"):
            pip = [str(venv.bin / "pip"), "install", "--quiet"]
            done = subprocess.run([*pip, requirement], env=env, capture_output=True, text=True)
            if done.returncode:
                _unavailable(
                    f"{requirement} cannot be installed on Python {python_version}: "
                    f"{done.stderr.strip().splitlines()[-1:]}"
                )
        with venv.phases("pip wheel: the rest of it"):
            built, seconds = building.result()
    venv.phases.seconds["pip wheel (beside the above)"] = seconds
    if built.returncode:
        pytest.fail(f"{shlex.join(built.args)} exited {built.returncode}:\n{built.stderr}")
    wheels = [path.name for path in (root / "dist").glob("*.whl")]
    assert wheels == [install["name"]], (
        f"The quickstart names {install['name']}; pip built {wheels}"
    )
    extras = ",".join(
        sorted(
            (set(install["extras"].split(",")) - DATABASE_EXTRAS)
            | set(MORE_EXTRAS.findall(_section()))
        )
    )
    with venv.phases(f"pip install wheel[{extras}]"):
        _run([*pip, f"{root / 'dist' / install['name']}[{extras}]"], root, env)
    [client] = CLIENT_INSTALL.findall(_section())
    with venv.phases("pip install the client"):
        _run([*pip, str(ROOT / client)], root, env)
    return venv


@contextmanager
def _broker(scratch: Path) -> Iterator[str]:
    """The real Redis when the suite uses it (held for this replay alone), else a
    private one that lives as long as the block."""
    if services.BROKER != "redis":
        scratch.mkdir()
        with EmbeddedRedis(scratch) as embedded:
            yield embedded.url
        return
    url = f"redis://{services.REDIS[0]}:{services.REDIS[1]}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    token = uuid.uuid4().hex
    wait_until(
        lambda: client.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS),
        timeout=LOCK_SECONDS,
        what="a quickstart replay of another checkout to end",
    )
    try:
        yield url
    finally:
        forget_queues(client, "celery")
        if client.get(LOCK_KEY) == token.encode():
            client.delete(LOCK_KEY)


class Processes:
    """The long-running processes of the replay, each in a session of its own, as
    each would have a terminal of its own, so that whatever it starts (runserver's
    autoreloaded child, Celery's pool) is found and stopped with it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        with open(self.directory / f"{name}.log", "wb") as log:
            self.started[name] = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}.log:\n{(self.directory / f'{name}.log').read_text(errors='replace')}"
            for name in self.started
        )

    def running(self) -> bool:
        """True while every process runs; fails the test when one exited."""
        exited = {n: p.returncode for n, p in self.started.items() if p.poll() is not None}
        if exited:
            pytest.fail(f"Exited early: {exited}")
        return True

    def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """``wait_until`` while every process runs; a failure shows their logs."""
        try:
            return wait_until(lambda: self.running() and condition(), timeout=timeout, what=what)
        except pytest.fail.Exception as timed_out:
            pytest.fail(f"{timed_out}\n{self.logs()}")

    def stop(self) -> dict[str, list[str]]:
        """Ctrl-C to each process group, as a terminal sends it; whatever of a session
        is still there after STOP_TIMEOUT is killed and returned."""
        for process in self.started.values():
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        leftovers: dict[str, list[str]] = {}
        for name, process in self.started.items():
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with suppress(pytest.fail.Exception):
                wait_until(
                    lambda pid=process.pid: not processes_in_session(pid),
                    timeout=max(deadline - time.monotonic(), 0.1),
                )
            if left := processes_in_session(process.pid):
                leftovers[name] = left
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return leftovers


def _answers(url: str) -> bool:
    """Whether a server answers at ``url``, whatever the status (a Response of a 404 is
    falsy: ``Response.__bool__`` is ``ok``)."""
    try:
        requests.get(url, timeout=5)
    except requests.ConnectionError:
        return False
    return True


def _done(http: requests.Session, url: str) -> requests.Response | None:
    """The order at ``url`` once done (201); None while it runs (202)."""
    answer = http.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code in (201, 202), answer.text
    return answer if answer.status_code == 201 else None


@pytest.fixture
def phases(user_venv: UserVenv, capsys: pytest.CaptureFixture[str]) -> Iterator[Phases]:
    """The test's phases after the venv's; printed whether the test passes or not,
    since a slow phase is worth seeing either way."""
    phases = Phases()
    phases.seconds.update(user_venv.phases.seconds)
    user_venv.phases.seconds.clear()  # a second test of the session reuses the venv
    yield phases
    with capsys.disabled():
        print(f"\n{phases.summary()}")


def test_the_quickstart_as_a_new_user_follows_it(
    user_venv: UserVenv, phases: Phases, tmp_path: Path
) -> None:
    section = _section()
    env = _user_environment(user_venv.bin)
    project = tmp_path / PROJECT
    with phases("django-admin startproject"):
        _run([str(user_venv.bin / "django-admin"), "startproject", PROJECT], tmp_path, env)
        version = _run([str(user_venv.bin / "django-admin"), "--version"], tmp_path, env)
        assert version.startswith(f"{user_venv.django}."), version

    processes = Processes(tmp_path)
    with _broker(tmp_path / "redis") as broker:
        with phases("apply the code blocks"):
            blocks = _blocks(section)
            for name, code in blocks:
                _append(project / name, _as_written(code, broker))
            assert {name for name, _ in blocks} >= {
                f"{PROJECT}/{name}"
                for name in ("settings.py", "celery.py", "__init__.py", "urls.py")
            }, blocks
            assert (
                f"CELERY_BROKER_URL = {broker!r}" in (project / PROJECT / "settings.py").read_text()
            )
            # The view a user opts in (docs/views-and-helpers.md), and its URL.
            (project / PROJECT / "views.py").write_text(VIEW)
            _append(project / PROJECT / "urls.py", VIEW_URL)
        with phases("manage.py migrate"):
            _run(user_venv.command(_documented(section, "manage.py migrate")), project, env)
        with phases("manage.py check"):
            checked = _run(
                [*user_venv.command(".venv/bin/python manage.py check"), "--fail-level", "WARNING"],
                project,
                env,
            )
            assert "System check identified no issues" in checked, checked
        with phases("manage.py list_schedulable_views"):
            listed = _run(
                user_venv.command(_documented(section, "list_schedulable_views")), project, env
            )
            assert "report" in listed, listed

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            with phases("start server, worker, reconciler"):
                runserver = ".venv/bin/python manage.py runserver"
                for name, command in (
                    ("runserver", [*user_venv.command(runserver), f"127.0.0.1:{port}"]),
                    ("worker", user_venv.command(_documented(section, " worker"))),
                    ("reconciler", user_venv.command(_documented(section, "reconcile_orders"))),
                ):
                    processes.start(name, command, project, env)
                processes.wait_until(lambda: _answers(f"{base}/"), 60, "runserver to answer")
            with phases("order: POST, 302, poll to 201"):
                http = requests.Session()
                placed = http.post(
                    f"{base}/async/report/order/",
                    json={"kwargs": {"size": 20}},
                    allow_redirects=False,
                    timeout=10,
                )
                assert placed.status_code == 302, placed.text
                done: requests.Response = processes.wait_until(
                    lambda: _done(http, placed.headers["Location"]), ORDER_TIMEOUT, "the order"
                )
                result = http.get(done.headers["Location"], timeout=10)
                assert result.status_code == 200, result.text
                assert result.json() == {"size": 20, "total": 190}
            with phases("the client example"):
                example = _client_example(section, base, "report")
                ran = _run([str(user_venv.bin / "python"), "-c", example], project, env)
                assert ran.strip().endswith("completed"), ran
            with phases("schema and its pages"):
                for page in ("schema/", "schema/swagger/", "schema/redoc/"):
                    answer = http.get(f"{base}/{page}", timeout=30)
                    assert answer.status_code == 200, (page, answer.text[:500])
                swagger = http.get(f"{base}/schema/swagger/", timeout=10).text
                assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', swagger)
                assert assets, "Swagger UI from a CDN, not from drf_spectacular_sidecar"
                for asset in assets:
                    assert http.get(f"{base}{asset}", timeout=10).status_code == 200, asset
        finally:
            with phases("stop every process"):
                leftovers = processes.stop()
    assert leftovers == {}, f"Still running after Ctrl-C:\n{leftovers}\n{processes.logs()}"
    # What a user would see scroll by: no process logged a traceback on the way.
    assert "Traceback" not in processes.logs(), processes.logs()
