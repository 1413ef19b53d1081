"""Sphinx extension for the course website: fixes for the pinned Jupyter Book 1 stack.

Listed in ``_config.yml`` (``sphinx.local_extensions``). The browser tests
(``tests/test_site.py``) fail if any of these errors comes back.

- Sphinx 7.4 writes an inline script twice when an extension adds it after the builder
  started (``app.add_js_file(None, body=...)``: sphinx-thebe, sphinx-togglebutton): the
  builder holds it with filename ``None``, and ``prepare_writing`` adds it again as ``''``.
  Every page then raised "Identifier 'THEBE_JS_URL' has already been declared". This is
  the fix Sphinx itself made in 8.2 (sphinx-doc/sphinx#13402), applied before writing.
"""
from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def _inline_scripts_once(app: Sphinx, env: BuildEnvironment) -> None:
    builder = app.builder
    if not hasattr(builder, "_js_files"):
        return  # not an HTML builder
    from sphinx.builders.html._assets import _JavaScript

    fixed: list[_JavaScript] = []
    for asset in builder._js_files:
        if asset.filename is None:
            asset = _JavaScript("", priority=asset.priority, **asset.attributes)
        if asset not in fixed:
            fixed.append(asset)
    builder._js_files[:] = fixed


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-updated", _inline_scripts_once)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
