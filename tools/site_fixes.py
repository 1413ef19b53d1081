"""Sphinx extension for the course website: fixes for the pinned Jupyter Book 1 stack.

Listed in ``_config.yml`` (``sphinx.local_extensions``). The browser tests
(``tests/test_site.py``) fail if any of these errors comes back.

- Sphinx 7.4 writes an inline script twice when an extension adds it after the builder
  started (``app.add_js_file(None, body=...)``: sphinx-thebe, sphinx-togglebutton): the
  builder holds it with filename ``None``, and ``prepare_writing`` adds it again as ``''``.
  Every page then raised "Identifier 'THEBE_JS_URL' has already been declared". This is
  the fix Sphinx itself made in 8.2 (sphinx-doc/sphinx#13402), applied before writing.
- ``site_static/course.css``: code and outputs wrap instead of being cut at the column's edge
  (on a phone, on paper), and a display equation wider than the column scrolls in its own box.
- MathJax is served by the site itself, not by a CDN: every page loads
  ``_static/mathjax/tex-mml-chtml.js``, copied from MathJax 3.2.2 (the ``django-static-mathjax``
  package) with the parts it loads on demand (TeX extensions, fonts, menu, accessibility). Offline
  (an intranet, a train, a blocked CDN) the formulas still typeset, and no page makes a
  third-party request.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

MATHJAX_ENTRY = "tex-mml-chtml.js"  # the component Sphinx and Jupyter Book load from the CDN
# What the entry loads on demand, relative to it (the other bundles and the SVG output are unused).
MATHJAX_PARTS = ["input/tex/extensions", "output/chtml", "ui", "a11y", "sre", "adaptors"]


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


def mathjax_source() -> Path:
    """MathJax's ``es5`` folder in the installed django-static-mathjax package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax is missing: pip install django-static-mathjax==3.2.2.1 (a course dependency)")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"


STATIC = Path(__file__).with_name("site_static")  # copied into the site's _static/


def _static_files(app: Sphinx) -> None:
    app.config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"  # a path without scheme: under _static/
    app.config.html_static_path.append(str(STATIC))


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_ENTRY, target / MATHJAX_ENTRY)
    for part in MATHJAX_PARTS:
        shutil.copytree(source / part, target / part, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-updated", _inline_scripts_once)
    app.connect("builder-inited", _static_files)
    app.add_css_file("course.css")
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
