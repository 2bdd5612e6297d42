"""Old names kept importable for a while after a rename, with a DeprecationWarning.

A module whose public name changed sets ``__getattr__ = renamed(__name__, {...})``:
code written against the old name keeps working and is told what to import instead.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any


def renamed(module: str, renames: dict[str, str]) -> Callable[[str], Any]:
    """A PEP 562 module ``__getattr__`` answering each old name of ``renames`` with
    the object under its new name, after a ``DeprecationWarning`` naming both."""

    def __getattr__(name: str) -> Any:
        new = renames.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated; use {module}.{new}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(sys.modules[module], new)

    return __getattr__
