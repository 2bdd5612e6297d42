"""Old names kept importable for a while after a rename, with a DeprecationWarning;
old forms of an endpoint kept answering for a while, with a ``Deprecation`` header.

A module whose public name changed sets ``__getattr__ = renamed(__name__, {...})``:
code written against the old name keeps working and is told what to import instead.
An HTTP answer in a deprecated form goes through :func:`deprecated_form`, which tells
a client the same in headers (RFC 9745) that HTTP libraries and gateways can log.
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


def deprecated_form(response: Any, since: int, successor: str) -> Any:
    """Mark ``response`` as given in a form deprecated ``since`` (a Unix time) whose
    replacement is at the URL ``successor``."""
    response["Deprecation"] = f"@{since}"
    response["Link"] = f'<{successor}>; rel="successor-version"'
    return response
