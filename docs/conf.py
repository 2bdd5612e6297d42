"""Sphinx configuration: the Markdown pages (MyST) of docs/, built by ``make docs``
with warnings as errors. Nothing here reaches the network."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from async_orders import __version__  # noqa: E402

project = "async_orders"
author = "async_orders contributors"
copyright = "async_orders contributors"
release = __version__
version = __version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
# Anchors for ## and ### headings, so [text](page.md#a-heading) links resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "alabaster"
html_title = f"async_orders {release}"
html_static_path: list[str] = []
