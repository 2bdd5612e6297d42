"""The demo's API pages work without the internet: Swagger UI and Redoc load their
scripts, styles and icons from the project's own static files (drf-spectacular-sidecar),
never from a CDN. Rendered in a fresh interpreter on the demo's own settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_server import FOREIGN_VARIABLES
from tests.helpers import ROOT

# Renders each page with Django's test client and prints every URL it references,
# with where staticfiles finds it (None: not among the project's static files).
RENDER = """
import json, re, sys
import django
django.setup()
from django.contrib.staticfiles import finders
from django.test import Client

found = {}
for page in sys.argv[1:]:
    response = Client(HTTP_HOST="127.0.0.1").get(page)
    assert response.status_code == 200, (page, response.status_code)
    html = response.content.decode()
    for url in re.findall(r'(?:src|href)\\s*=\\s*["\\']([^"\\']+)', html) + re.findall(
        r'["\\'](https?://[^"\\']+)', html
    ):
        path = url.removeprefix("/static/")
        found[url] = path != url and bool(finders.find(path.split("?")[0]))
print(json.dumps(found))
"""


def referenced(*pages: str, tmp_path: Path) -> dict[str, bool]:
    env = {name: value for name, value in os.environ.items() if name not in FOREIGN_VARIABLES}
    env.update(
        DJANGO_SETTINGS_MODULE="demo.settings",
        DEMO_DATABASE_PATH=str(tmp_path / "demo.sqlite3"),
    )
    result = subprocess.run(
        [sys.executable, "-c", RENDER, *pages],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("page", ["/schema/swagger/", "/schema/redoc/"])
def test_the_api_page_references_no_external_host(page: str, tmp_path: Path) -> None:
    urls = referenced(page, tmp_path=tmp_path)

    assert urls
    assert [url for url in urls if "//" in url] == []


@pytest.mark.parametrize("page", ["/schema/swagger/", "/schema/redoc/"])
def test_every_asset_of_the_api_page_is_a_static_file_of_the_project(
    page: str, tmp_path: Path
) -> None:
    urls = referenced(page, tmp_path=tmp_path)
    assets = {url: found for url, found in urls.items() if not url.startswith("/schema/")}

    assert assets
    assert [url for url, found in assets.items() if not found] == []


def test_the_demo_page_has_a_favicon_among_its_static_files(tmp_path: Path) -> None:
    urls = referenced("/", tmp_path=tmp_path)

    icons = [url for url in urls if "favicon" in url]
    assert icons
    assert all(urls[icon] for icon in icons)
