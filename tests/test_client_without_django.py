"""The Python client in an interpreter where Django is not installed: a virtualenv
holding only ``requests`` (and what it needs), ``async_orders_client`` and
``async_orders`` (for its signing module), placing an order of a namespaced DRF
router name on a live server and waiting for it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import venv
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.helpers import ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

# Run with ``-I``: no PYTHONPATH, no user site, not the repository as working folder.
SCRIPT = """
import importlib.util, json, sys
import requests
from async_orders_client import Client, OrderFailed
from async_orders.signing import sign, verify_signature

BLOCKED = ("django", "rest_framework")
assert not any(importlib.util.find_spec(name) for name in BLOCKED), "Django is installed here"
assert verify_signature("s", b"{}", sign("s", 1, b"{}"), now=1)

session = requests.Session()
session.auth = ("alice", "pw")
client = Client(sys.argv[1], session=session)
order = client.run("shop:item-list", data={"name": "made without Django"}, timeout=30)
replayed = client.result(order)
try:
    client.run("shop:item-detail", kwargs={"pk": 999999}, method="PATCH", data={}, timeout=30)
except OrderFailed as failed:
    error = failed.error
print(json.dumps({
    "status": order.status,
    "resource_url": order.resource_url,
    "replayed": [replayed.status_code, replayed.json()],
    "error": error,
    "django_loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}))
"""


def requirement_names(distribution: str) -> list[str]:
    """The distributions ``distribution`` needs without extras."""
    requirements = metadata.requires(distribution) or []
    return [
        re.match(r"[A-Za-z0-9_.-]+", requirement)[0]
        for requirement in requirements
        if "extra ==" not in requirement
    ]


def copy_installed(distribution: str, site_packages: Path) -> None:
    """Copy ``distribution`` and what it needs, file by file as installed here: the
    same result as ``pip install`` from this machine's cache, without the network."""
    for name in [distribution, *requirement_names(distribution)]:
        found = metadata.distribution(name)
        for file in found.files or []:
            source = Path(found.locate_file(file))
            if source.is_file() and not str(file).startswith(".."):
                (site_packages / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, site_packages / file)


@pytest.fixture(scope="module")
def python_without_django(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv's interpreter with only requests and the two packages on its path."""
    home = tmp_path_factory.mktemp("venv-without-django")
    venv.create(home, with_pip=False, system_site_packages=False, symlinks=True)
    python = home / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site_packages = Path(purelib)
    copy_installed("requests", site_packages)
    (site_packages / "async_orders").symlink_to(ROOT / "async_orders")
    client_package = ROOT / "clients" / "python" / "src" / "async_orders_client"
    (site_packages / "async_orders_client").symlink_to(client_package)
    return python


def test_the_client_places_and_waits_for_an_order_where_django_is_not_installed(
    live_server: Any, python_without_django: Path, tmp_path: Path
) -> None:
    User.objects.create_user("alice", password="pw")
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)

    result = subprocess.run(
        [python_without_django, "-I", script, live_server.url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "completed"
    assert re.fullmatch(r".*/shop/items/\d+/", outcome["resource_url"])
    assert outcome["replayed"][0] == 200  # resource_url: the created item itself
    assert outcome["replayed"][1]["name"] == "made without Django"
    assert outcome["error"]["status_code"] == 404
    assert outcome["django_loaded"] == []


def test_the_interpreter_of_that_test_cannot_import_django(python_without_django: Path) -> None:
    # Guards the test above: were Django reachable, it would prove nothing.
    result = subprocess.run(
        [python_without_django, "-I", "-c", "import django"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert "No module named 'django'" in result.stderr
