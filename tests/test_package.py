"""What the installed package does to the project that installs it: nothing it did
not ask for. Each test runs a fresh interpreter, because the guarantee is about a
host project's settings and imports, which the test suite's own process has fixed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

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
