"""Sphinx extension for the course website: fixes for the pinned Jupyter Book 1 stack.

Listed in ``_config.yml`` (``sphinx.local_extensions``). The browser tests
(``tests/test_site.py``) fail if any of these errors comes back.

- Sphinx 7.4 writes an inline script twice when an extension adds it after the builder
  started (``app.add_js_file(None, body=...)``: sphinx-thebe, sphinx-togglebutton): the
  builder holds it with filename ``None``, and ``prepare_writing`` adds it again as ``''``.
  Every page then raised "Identifier 'THEBE_JS_URL' has already been declared". This is
  the fix Sphinx itself made in 8.2 (sphinx-doc/sphinx#13402), applied before writing.
- ``site_static/course.js``: a page opened from the search results scrolls to the first of the
  search terms that Sphinx highlights on it (else the reader lands at the top of a long chapter).
- ``site_static/course.css``: code and outputs wrap instead of being cut at the column's edge
  (on a phone, on paper), and a display equation wider than the column scrolls in its own box.
- A progress bar's output shows its final state on one line, as in Jupyter
  (:func:`_stream_chunks_joined`).
- Citations read "(He et al. 2016a)" in the text and the bibliography lists that same label
  before the reference, ordered by author and year (the ``course`` styles below, named in
  ``_config.yml``). Two papers by the same authors in the same year get a letter each (the
  default ``alpha`` labels mangled names with accents, ``[LBOMuller12]``, and the default
  author-year text gave "He et al., 2016" for two different papers); an ``eprint``, ``doi`` or
  ``url`` field becomes a link.
- No ``fontawesome.js`` (1.5 MB per page): the theme's stylesheet already draws the icons with
  Font Awesome's web fonts (see :data:`FONTAWESOME_JS`).
- Each executed chapter offers "Download: .ipynb with outputs" (``_executed/``, from Jupyter
  Book's execution cache) beside the source notebook, which has no outputs.
- The bibliography's entries are list items (``role="listitem"``, not the deprecated
  ``doc-biblioentry`` inside a ``role="list"``), as screen readers expect.
- Once ``make pdf`` has printed the whole course into the site (``course.pdf``), every page's
  download menu offers it.
- The Colab launch button of a chapter opens its Colab copy, ``colab/book/<chapter>.ipynb`` in
  the public repository (written by ``make publish``, :mod:`tools.colab`): Colab cannot render
  MyST, so the copy says the same in plain Markdown (citations as "(He et al. 2016a)", the
  self-check answers as ``<details>``). Binder and JupyterHub open the chapter itself, in
  JupyterLab, which renders MyST (``jupyterlab-myst``).
- MathJax is served by the site itself, not by a CDN: every page loads
  ``_static/mathjax/tex-mml-chtml.js``, copied from MathJax 3.2.2 (the ``django-static-mathjax``
  package) with the parts it loads on demand (TeX extensions, fonts, menu, accessibility). Offline
  (an intranet, a train, a blocked CDN) the formulas still typeset, and no page makes a
  third-party request.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pybtex.plugin
from pybtex.database import Entry
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.label import LabelReferenceStyle

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


def author_year(entry: Entry) -> str:
    """"Glorot and Bengio 2010", "He et al. 2016": the authors' (else editors') last names, LaTeX
    accents decoded, then the year."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text") for p in people]
    if not names:
        who = Text.from_latex(entry.fields.get("title", entry.key)).render_as("text").split(":")[0]
    elif len(names) <= 2:
        who = " and ".join(names)
    else:
        who = f"{names[0]} et al."
    return f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """Labels "He et al. 2016a", "He et al. 2016b": :func:`author_year`, and a letter where two
    entries would share a label (a, b, ... in the bibliography's order)."""

    def format_labels(self, sorted_entries: list[Entry]) -> Iterator[str]:
        labels = [author_year(entry) for entry in sorted_entries]
        shared, seen = Counter(labels), Counter()
        for label in labels:
            if shared[label] > 1:
                seen[label] += 1
                label += string.ascii_lowercase[seen[label] - 1]
            yield label


class CourseBibliography(PlainStyle):
    """pybtex's ``plain`` (sorted by author, year, title; links from eprint, doi, url) with
    :class:`AuthorYearLabels`."""

    default_label_style = AuthorYearLabels


@dataclass
class CourseCitations(LabelReferenceStyle):
    """The label in round brackets: "(He et al. 2016a)", "(Ba et al. 2016; Wu and He 2018)"."""

    bracket_parenthetical: BracketStyle = field(default_factory=lambda: BracketStyle(left="(", right=")", sep="; "))


pybtex.plugin.register_plugin("pybtex.style.formatting", "course", CourseBibliography)
register_plugin("sphinxcontrib.bibtex.style.referencing", "course", CourseCitations)


def _stream_chunks_joined(coalesce: Any) -> Any:
    """MyST-NB's ``coalesce_streams`` (``nb_merge_streams``) strips each chunk a stream arrived in
    and joins the chunks with newlines, so a progress bar's carriage returns ("\\r" + the bar
    again) fall at line starts, where they are not applied: chapter 0 showed ten lines of one
    tqdm bar. Joining the chunks as a terminal does (plain concatenation) first leaves one chunk
    per stream, whose "\\r" MyST-NB then applies."""
    def joined_first(outputs: list[Any]) -> list[Any]:
        merged, streams = [], {}
        for output in outputs or []:
            if output.get("output_type") == "stream":
                if output["name"] in streams:
                    streams[output["name"]]["text"] += output["text"]
                    continue
                output = nbformat.from_dict({**output})
                streams[output["name"]] = output
            merged.append(output)
        return coalesce(merged)

    return joined_first


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


# pydata-sphinx-theme 0.16 loads Font Awesome twice: as CSS with its web fonts (in the theme's
# stylesheet, which draws every icon the site has) and as fontawesome.js (1.5 MB, "so that users
# can add custom icons", which the course does not). The script was 58 % of what a page weighed
# before its own content; it goes from every page and from _static/.
FONTAWESOME_JS = re.compile(r'[ \t]*<script src="[^"]*_static/scripts/fontawesome\.js\?digest=\w+"></script>\n?')


def _drop_fontawesome_js(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    for page in outdir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        lean = FONTAWESOME_JS.sub("", text)
        if lean != text:
            page.write_text(lean, encoding="utf-8")
    for script in (outdir / "_static" / "scripts").glob("fontawesome.js*"):
        script.unlink()


def _bibliography_list_items(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                              doctree: Any) -> None:
    """docutils writes the bibliography as ``role="list"`` around entries with the deprecated
    ``role="doc-biblioentry"``; a list must hold list items (axe-core: aria-required-children,
    critical for screen readers)."""
    if "body" in context and 'role="doc-biblioentry"' in context["body"]:
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


def _add_download(context: dict[str, Any], button: dict[str, str], position: int | None = None) -> None:
    """Put ``button`` into sphinx-book-theme's download menu of the page (at the end, or at
    ``position``)."""
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(len(group["buttons"]) if position is None else position, button)


COURSE_PDF = "course.pdf"  # in the site's root: the whole course, printed by tools/build_pdf.py


def _course_pdf_download(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                         doctree: Any) -> None:
    """Once ``make pdf`` has put the whole course as one PDF into the site, every page's
    download menu offers it."""
    if not (Path(app.outdir) / COURSE_PDF).is_file():
        return
    _add_download(context, {
        "type": "link",
        "url": context["pathto"](COURSE_PDF, 1),
        "text": "whole course .pdf",
        "tooltip": "The whole course (chapters and labs) as one PDF",
        "icon": "fas fa-book",
        "label": "download-course-pdf-button",
    })


EXECUTED = "_executed"  # in the site: the chapters as executed for it, outputs included


def _executed_notebook_download(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                                doctree: Any) -> None:
    """Beside "Download .ipynb" (the source, without outputs), offer the notebook as the build
    executed it, with its figures and printed results, from Jupyter Book's execution cache."""
    source = Path(app.env.doc2path(pagename))
    if source.suffix != ".ipynb" or doctree is None:
        return
    from jupyter_cache import get_cache

    cache_path = app.config.nb_execution_cache_path or Path(app.outdir).parent / ".jupyter_cache"
    if not Path(cache_path).is_dir():
        return
    try:
        _, executed = get_cache(str(cache_path)).merge_match_into_notebook(nbformat.read(source, as_version=4))
    except KeyError:  # not executed (the student labs are shown blank)
        return
    target = Path(app.outdir) / EXECUTED / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, target)
    _add_download(context, {
        "type": "link",
        "url": f"{context['pathto'](EXECUTED, 1)}/{pagename}.ipynb",
        "text": ".ipynb with outputs",
        "tooltip": "Download the notebook with its figures and results, as executed for this page",
        "icon": "fas fa-chart-line",
        "label": "download-executed-notebook-button",
    }, position=1)  # after the source notebook


COLAB_FOLDER = "colab"  # in the student edition: the chapters' Colab copies (tools/colab.py)
COLAB_PAGES = "book/"  # the pages that have one: the chapters (the labs hold no MyST markup)


def _colab_opens_the_copy(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                          doctree: Any) -> None:
    """Point a chapter's Colab launch link at its Colab copy (:data:`COLAB_FOLDER`)."""
    if not pagename.startswith(COLAB_PAGES):
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group["buttons"]:
            if button.get("text") == "Colab":  # .../github/<org>/<repo>/blob/<branch>/<path>
                url, found = re.subn(rf"(/github/[^/]+/[^/]+/blob/[^/]+/)({re.escape(pagename)}\.ipynb)$",
                                     rf"\g<1>{COLAB_FOLDER}/\g<2>", button["url"])
                if found != 1:  # e.g. a branch name with a slash
                    raise RuntimeError(f"tools/site_fixes.py cannot point the Colab button of {pagename} at "
                                       f"its Colab copy: unexpected URL {button['url']}")
                button["url"] = url


def setup(app: Sphinx) -> dict[str, Any]:
    import myst_nb.core.render

    if not getattr(myst_nb.core.render.coalesce_streams, "__wrapped_by_course__", False):
        myst_nb.core.render.coalesce_streams = _stream_chunks_joined(myst_nb.core.render.coalesce_streams)
        myst_nb.core.render.coalesce_streams.__wrapped_by_course__ = True
    app.connect("env-updated", _inline_scripts_once)
    app.connect("builder-inited", _static_files)
    app.add_css_file("course.css")
    app.add_js_file("course.js")
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _drop_fontawesome_js)
    app.connect("html-page-context", _bibliography_list_items)
    # after sphinx-book-theme has made its header buttons (priority 501)
    app.connect("html-page-context", _executed_notebook_download, priority=502)
    app.connect("html-page-context", _course_pdf_download, priority=502)
    app.connect("html-page-context", _colab_opens_the_copy, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
