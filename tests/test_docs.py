"""The documentation keeps up with the code it describes."""

from __future__ import annotations

import re
from typing import Any

from async_orders.conf import DEFAULTS
from tests.helpers import ROOT
from tools.import_cycles import graph

DOCS = ROOT / "docs"


def test_the_settings_reference_has_a_row_for_every_setting() -> None:
    reference = (DOCS / "settings.md").read_text().split("## Reference", 1)[1]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", reference, flags=re.MULTILINE)

    assert sorted(documented) == sorted(DEFAULTS)


def test_every_page_is_in_the_table_of_contents() -> None:
    index = (DOCS / "index.md").read_text()
    pages = {path.stem for path in DOCS.glob("*.md")} - {"index"}

    assert {page for page in pages if f"\n{page}\n" not in index} == set()


def test_the_architecture_page_lists_every_module_and_nothing_else() -> None:
    package = ROOT / "async_orders"
    modules = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
        and not (path.name == "__init__.py" and path.parent != package)
    }
    page = (ROOT / "docs" / "architecture.md").read_text()

    assert set(re.findall(r"^\| `([\w/]+\.py)` \|", page, re.MULTILINE)) == modules


def _layers(page: str) -> dict[str, int]:
    """The layers the architecture page draws: each module or wing it names, numbered
    from the bottom. A name ending in ``/`` stands for every module of that wing."""
    block = page.split("down these layers", 1)[1].split("\n\n")[1]
    rows = [line[4:] for line in block.splitlines() if line[4:5] != " "]
    return {
        name: len(rows) - row
        for row, line in enumerate(rows)
        for name in re.split(r" {2,}", line.split("   ")[0].strip())
    }


def test_imports_run_down_the_layers_the_architecture_page_draws() -> None:
    layers = _layers((DOCS / "architecture.md").read_text())

    def layer(module: str) -> int | None:
        name = module.removeprefix("async_orders.")
        return layers.get(name.split(".")[0] + "/", layers.get(name))

    upward = [
        f"{module} -> {target}"
        for module, targets in graph(ROOT / "async_orders").items()
        for target in targets
        if (low := layer(module)) is not None and (high := layer(target)) is not None
        if high > low
    ]

    assert len(layers) == 28  # issue 26: task_orders, followed_tasks; 27: batches, labels, attempts
    assert upward == []


def test_the_quickstarts_settings_keep_a_workers_connection() -> None:
    """The settings block as row 15 of ``make bench`` reads and runs it
    (benchmarks/worker_profiles.py): a worker following the quickstart keeps its
    database connection across orders, through Celery (``CELERY_DB_REUSE_MAX``) and
    Django (``CONN_MAX_AGE``), so W001 and W002 stay quiet and the row measures the
    fast path."""
    from benchmarks.worker_profiles import quickstart_settings

    project: dict[str, Any] = {"INSTALLED_APPS": ["django.contrib.admin"], "DATABASES": {}}
    project["DATABASES"]["default"] = {"ENGINE": "django.db.backends.sqlite3"}
    exec(quickstart_settings(), project)

    assert project["INSTALLED_APPS"][-2:] == ["rest_framework", "async_orders"]
    assert project["CELERY_DB_REUSE_MAX"] >= 1
    assert project["DATABASES"]["default"]["CONN_MAX_AGE"] > 0
    assert "CELERY_BROKER_URL" not in project  # the benchmark's own broker is kept
