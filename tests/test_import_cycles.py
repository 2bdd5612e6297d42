"""The package's modules import one another one way only, as ``make lint`` checks:
an import cycle, even one hidden inside a function, is a layering mistake."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ROOT
from tools import import_cycles


def write_package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in modules.items():
        (package / f"{name}.py").write_text(source)
    return package


def test_async_orders_has_no_import_cycle() -> None:
    assert import_cycles.cycles(import_cycles.graph(ROOT / "async_orders")) == []


def test_an_import_inside_a_function_closes_a_cycle(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {"a": "from pkg.b import x\n", "b": "def f():\n    from pkg import a\n"},
    )

    assert import_cycles.cycles(import_cycles.graph(package)) == [["pkg.a", "pkg.b"]]


def test_a_type_checking_import_does_not(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "a": "from pkg.b import x\n",
            "b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import y\n",
        },
    )

    assert import_cycles.cycles(import_cycles.graph(package)) == []


def test_a_cycle_fails_the_check(tmp_path: Path, capsys) -> None:
    package = write_package(tmp_path, {"a": "from . import b\n", "b": "from .a import z\n"})

    assert import_cycles.main(["import_cycles.py", str(package)]) == 1
    assert "pkg.a -> pkg.b" in capsys.readouterr().out
