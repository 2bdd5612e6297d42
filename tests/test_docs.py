"""The documentation keeps up with the code it describes."""

from __future__ import annotations

import re

from async_orders.conf import DEFAULTS
from tests.helpers import ROOT

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
