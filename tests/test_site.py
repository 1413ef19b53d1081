"""The course website as readers meet it.

The book is built once, as ``make book`` builds it (tools/build_book.py: warnings are errors,
every chapter executed, a cell error fails the build). In ``make test`` nbval runs the chapters
first, in the same worker (conftest.py), and the build shows nbval's outputs of each chapter it
ran without error instead of executing it again. Then headless Chromium (Debian's
package, driven by Playwright) opens every page over HTTP, as a first-time reader:

- no console errors, no uncaught exceptions, no failed request, nothing fetched from the
  network at all: every request off the site is refused, as offline, and MathJax is served by
  the site itself (tools/site_fixes.py), so math typesets offline;
- no serious or critical accessibility violation (axe-core), at 1280 and at 390 px;
- math typeset (no raw ``$``/``\\(`` left, no MathJax error), every image loaded and described
  (alt text; a figure's comes from its cell's ``mystnb.image.alt`` metadata);
- every icon drawn (Font Awesome's web font; the theme's 1.5 MB fontawesome.js is dropped),
  bytes per page written to _build/page-weight.md, search.html (no content) under 1.3 MB;
- a search result opens scrolled to the highlighted term;
- each chapter shows every figure its executed notebook made, widget cells a static figure;
- launch buttons (Colab, Binder, JupyterHub) open the page's own notebook on the configured
  repository and branch, and that notebook exists;
- next/previous navigation walks the table of contents; search finds the chapters;
- every internal link and anchor resolves (cross-references, citations, bibliography);
- nothing on the site carries a lab's solution or hidden tests.

Screenshots of the home page and a chapter land in ``_build/screenshots/`` (``make
screenshots`` copies them to docs/img/ for the README).
"""
from __future__ import annotations

import functools
import html
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
import yaml

from tools import build_book, build_pdf, publish

ROOT = Path(__file__).resolve().parents[1]

SITE = ROOT / "_build" / "html"
CACHE = ROOT / "_build" / ".jupyter_cache"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
pytestmark = pytest.mark.notebook


PAGES = build_book.toc_pages()
NOTEBOOK_PAGES = [p for p in PAGES if (ROOT / f"{p}.ipynb").exists()]
CHAPTERS = [p for p in NOTEBOOK_PAGES if p.startswith("book/")]
LABS = [p for p in NOTEBOOK_PAGES if p.startswith("labs/")]


# --- the build ------------------------------------------------------------------------------

BUILD_LOG: list[str] = []


@pytest.fixture(scope="module")
def site() -> Path:
    result = build_book.build(ROOT, quiet=True)
    log = result.stdout + result.stderr
    BUILD_LOG.append(log)
    problems = [line for line in log.splitlines()
                if re.search(r"WARNING|ERROR|Error|Traceback|Exception", line)]
    assert result.returncode == 0, (
        "the book did not build cleanly (warnings are errors, cell errors fail the build):\n"
        + "\n".join(problems[:40]) + "\n--- last lines ---\n" + "\n".join(log.splitlines()[-40:]))
    return SITE


def test_every_page_of_the_toc_is_built(site):
    missing = [p for p in PAGES if not (site / f"{p}.html").exists()]
    assert not missing, f"pages in _toc.yml with no HTML: {missing}"
    assert (site / "index.html").exists() and (site / "search.html").exists()


def test_chapters_nbval_ran_are_shown_from_that_run_not_executed_again(site, request):
    """Each chapter executes once per `make test`: nbval's run (conftest.py) fills the build's
    execution cache. Chapters nbval did not run in this process were executed by the build."""
    log = BUILD_LOG[-1]
    for chapter in getattr(request.config, "recorded_chapters", []):
        path = ROOT / f"{chapter}.ipynb"
        assert f"{path}: Using cached notebook" in log, chapter
        assert f"{path}: Executing notebook" not in log, chapter
    for chapter in CHAPTERS:
        path = ROOT / f"{chapter}.ipynb"
        assert f"{path}: Using cached notebook" in log or f"{path}: Executed notebook" in log, chapter


def write_mini_book(tmp_path: Path, cell: str | None = None, markdown: str | None = None) -> Path:
    """A one-page book with the course's own _config.yml and site extension; returns its folder."""
    book = tmp_path / "book"
    (book / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book)
    shutil.copy(ROOT / "tools" / "site_fixes.py", book / "tools")
    shutil.copytree(ROOT / "tools" / "site_static", book / "tools" / "site_static")
    (book / "book").mkdir()
    for name in ("references.bib", "favicon.svg"):
        shutil.copy(ROOT / "book" / name, book / "book")
    (book / "book" / "intro.md").write_text("# Intro\n\n" + (markdown or "Nothing wrong here.") + "\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page"),
                                         nbformat.v4.new_code_cell(cell or "print('fine')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "book" / "page.ipynb")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/page\n")
    return book


def mini_book(tmp_path: Path, cell: str | None = None, markdown: str | None = None) -> subprocess.CompletedProcess:
    """Build a mini book with plain ``jupyter-book build -W -n``."""
    book = write_mini_book(tmp_path, cell, markdown)
    jb = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run([str(jb), "build", str(book), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=600)


def test_the_build_fails_on_a_cell_error_and_on_a_warning(tmp_path):
    """The configuration the site tests rely on: a clean mini book builds; an exception in a
    cell, or a broken cross-reference, fails the build."""
    ok = mini_book(tmp_path / "ok")
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    broken_cell = mini_book(tmp_path / "cell", cell="raise ValueError('a chapter claim went stale')")
    assert broken_cell.returncode != 0
    assert "a chapter claim went stale" in broken_cell.stdout + broken_cell.stderr
    broken_ref = mini_book(tmp_path / "ref", markdown="See {ref}`no-such-label`.")
    assert broken_ref.returncode != 0
    assert "no-such-label" in broken_ref.stdout + broken_ref.stderr


def test_a_change_in_courselib_re_executes_the_chapters(tmp_path):
    """Jupyter Book's execution cache keys on code cells only: after a change in the helper
    package a plain rebuild shows the old outputs (the trap), the course's build shows the new."""
    lib = tmp_path / "courselib"
    lib.mkdir()
    (lib / "helpers.py").write_text("VERSION = 'helpers-v1'\n")
    book = write_mini_book(tmp_path, cell=f"print(open({str(lib / 'helpers.py')!r}).read())")
    page = book / "_build" / "html" / "book" / "page.html"

    def build(course_build: bool) -> str:
        if course_build:
            result = build_book.build(book, quiet=True, source=book, courselib=lib)
        else:
            jb = Path(sys.executable).with_name("jupyter-book")
            result = subprocess.run([str(jb), "build", str(book), "-W", "-n"], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return page.read_text(encoding="utf-8")

    assert "helpers-v1" in build(course_build=True)
    (lib / "helpers.py").write_text("VERSION = 'helpers-v2'\n")
    stale = build(course_build=False)
    assert "helpers-v1" in stale and "helpers-v2" not in stale, "Jupyter Book's cache no longer keys on code only?"
    fresh = build(course_build=True)
    assert "helpers-v2" in fresh and "helpers-v1" not in fresh
    assert (book / "_build" / ".courselib-hash").read_text().strip() == build_book.courselib_hash(lib)


# --- static checks of the built files --------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


@functools.cache
def parsed(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_internal_links_and_anchors_resolve(site):
    broken, citations = [], 0
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.parts:
            continue
        for href in parsed(page).hrefs:
            url = urlparse(href)
            if url.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = page if not url.path else (page.parent / unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in parsed(target).ids:
                broken.append(f"{page.relative_to(site)}: {href} (no such anchor)")
            if target.name == "bibliography.html" and url.fragment:
                citations += 1
    assert not broken, "broken links:\n" + "\n".join(broken[:30])
    assert citations > 0, "no citation links to the bibliography: sphinxcontrib-bibtex did not run?"


def test_citations_are_unambiguous_labels_with_links(site):
    """Each reference is listed under an author-year label ("He et al. 2016a", tools/site_fixes.py)
    that no other reference shares, names spelled as in print (no "[LBOMuller12]"); citations in
    the text show that label and lead to it; most references link to the paper."""
    bibliography = (site / "book" / "bibliography.html").read_text(encoding="utf-8")
    entries = re.findall(r'<div class="citation" id="([^"]+)"[^>]*>\s*<span class="label">'
                         r'<span class="fn-bracket">\[</span>(.*?)<span class="fn-bracket">\]</span>'
                         r'</span>\s*<p>(.*?)</p>', bibliography, flags=re.S)
    labels = {anchor: html_text(label) for anchor, label, _ in entries}
    assert len(labels) >= 40, f"{len(labels)} references in the bibliography"
    assert len(set(labels.values())) == len(labels), sorted(labels.values())
    pattern = re.compile(r"^([a-z]+ )?[A-Z][\w'’ -]*( and [A-Z][\w'’ -]*| et al\.)? (1[89]|20)\d\d[a-z]?$")
    assert all(pattern.match(label) for label in labels.values()), sorted(labels.values())
    assert {"He et al. 2016a", "He et al. 2016b", "LeCun et al. 2012"} <= set(labels.values())
    linked = [anchor for anchor, _, text in entries if re.search(r'href="https://(arxiv\.org|doi\.org|[\w.]+/)', text)]
    assert len(linked) >= 0.75 * len(entries), f"only {len(linked)} of {len(entries)} references link to the paper"
    cited = 0
    for page in (site / "book").glob("0*.html"):
        for href, text in re.findall(r'<a class="reference internal" href="bibliography\.html#([^"]+)"[^>]*>(.*?)</a>',
                                     page.read_text(encoding="utf-8")):
            assert html_text(text) == labels[href], (page.name, href, text)
            cited += 1
    assert cited >= 40, f"{cited} citations in the chapters"


def html_text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment))).strip()


def links_of(site: Path, docname: str) -> set[str]:
    """The pages (docnames) that ``docname``'s page links to."""
    page = site / f"{docname}.html"
    targets = {(page.parent / unquote(urlparse(h).path)).resolve() for h in parsed(page).hrefs
               if not urlparse(h).scheme and urlparse(h).path.endswith(".html")}
    return {t.relative_to(site.resolve()).with_suffix("").as_posix() for t in targets if site.resolve() in t.parents}


@pytest.mark.parametrize("lab", LABS)
def test_each_lab_and_its_chapter_lead_to_each_other(site, lab):
    """A lab opens with a link to the chapter it goes with (an earlier page); that chapter ends
    with a cell (tagged lab-pointer) leading to the lab."""
    opening = nbformat.read(ROOT / f"{lab}.ipynb", as_version=4).cells[0].source
    chapters = re.findall(r"\]\(\.\./\.\./(book/[\w-]+)\.ipynb\)", opening)
    assert len(chapters) == 1, f"{lab}: its first cell should link to one chapter, links to {chapters}"
    chapter = chapters[0]
    assert PAGES.index(chapter) < PAGES.index(lab)
    last = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4).cells[-1]
    assert publish.LAB_POINTER in last.metadata.get("tags", []), f"{chapter} does not end with its lab"
    assert f"../{lab}.ipynb" in last.source
    assert chapter in links_of(site, lab), f"the page of {lab} does not link to {chapter}"
    assert lab in links_of(site, chapter), f"the page of {chapter} does not link to {lab}"


def test_progress_bars_show_their_final_state_once(site):
    """A tqdm bar redraws itself with "\\r"; the page shows what Jupyter shows, its last state on
    one line (tools/site_fixes.py), not one line per redraw."""
    bars = []
    for chapter in CHAPTERS:
        page = (site / f"{chapter}.html").read_text(encoding="utf-8")
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        bars += [(chapter, line.strip()) for line in re.findall(r"^.*\b\d+%\|.*$", text, flags=re.M)]
    assert bars, "no progress bar on any chapter page (courselib.train shows one)"
    redraws = [bar for bar in bars if "100%|" not in bar[1]]
    assert not redraws, f"progress bars shown at every redraw: {redraws[:5]}"


def test_no_page_carries_a_solution_or_hidden_test(site):
    """The scan `make publish` runs (tools/publish.py; tests/test_publish.py shows that it catches
    a planted line) over every file of the site: its pages, sources, downloads and search index."""
    files = [p for p in site.rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files), "the site offers no notebook downloads?"
    secrets = publish.secret_lines()
    assert set(secrets) == {Path(lab).name for lab in LABS}
    assert all(len(lines) >= 10 for lines in secrets.values()), {lab: len(v) for lab, v in secrets.items()}
    findings = publish.scan(site, secrets)
    assert not findings, "the site publishes what it must not:\n" + "\n".join(map(str, findings[:10]))


# --- the browser ---------------------------------------------------------------------------
# (the browser itself, headless Chromium: the ``browser`` fixture of tests/conftest.py)

@pytest.fixture(scope="module")
def server(site):
    with build_pdf.serve(site) as base:  # a local HTTP server for the folder, as `make serve`
        yield base


@dataclass
class Visit:
    page: object
    errors: list[str] = field(default_factory=list)     # console errors, uncaught exceptions
    failed: list[str] = field(default_factory=list)     # local requests that failed
    external: list[str] = field(default_factory=list)   # network requests off this site
    served: dict[str, int] = field(default_factory=dict)  # path on the site -> bytes sent

    @property
    def weight(self) -> int:
        return sum(self.served.values())


def open_page(browser, server: str, path: str, viewport=(1280, 900), lands_on: str | None = None) -> Visit:
    """Open ``path`` in a fresh browser context (a first-time reader: empty localStorage; a
    phone when the viewport is narrower than 600 px) with the network cut off: every request
    off the site is refused and noted; waits for the redirect to ``lands_on`` if given, then
    for MathJax to finish typesetting."""
    phone = viewport[0] < 600
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                  is_mobile=phone, has_touch=phone)
    page = context.new_page()
    visit = Visit(page)

    def route(r):
        url = r.request.url
        if url.startswith(server):
            return r.continue_()
        visit.external.append(url)
        return r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and visit.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: visit.errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: r.url.startswith(server) and visit.failed.append(r.url))
    page.on("response", lambda r: r.url.startswith(server) and r.status == 200
            and visit.served.setdefault(unquote(urlparse(r.url).path), served_size(r.url)))
    page.on("response", lambda r: r.url.startswith(server) and r.status >= 400
            and visit.failed.append(f"{r.status} {r.url}"))
    page.goto(server + path, wait_until="load")
    if lands_on:
        page.wait_for_url(server + lands_on)
        page.wait_for_load_state("load")
    if page.evaluate("document.querySelector('.math') !== null"):
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("async () => { await MathJax.startup.promise; }")
    return visit


def served_size(url: str) -> int:
    """The bytes the test server sent for ``url``: the size of the file it served."""
    path = SITE / unquote(urlparse(url).path).lstrip("/")
    return (path / "index.html" if path.is_dir() else path).stat().st_size


RAW_MATH = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|(?<![\w$])\$[^$\s][^$\n]{0,200}?[^\s\\$]\$(?![\w$])")

# An alt text that is a file name (MyST-NB's default for a cell's figure: its path). A figure's
# alt text comes from its cell's metadata, mystnb.image.alt.
ALT_IS_A_FILE = re.compile(r"\.(png|jpe?g|svg|gif)$|_images/|[0-9a-f]{32}", re.I)

PAGE_STATE = """async () => {
  await document.fonts.ready;
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, .cell_output, script, style, mjx-container').forEach(e => e.remove());
  return {
    images: Array.from(document.images).map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0,
                                                   alt: i.getAttribute('alt'), figure: !!i.closest('.cell_output')})),
    math: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('.math mjx-container, mjx-container.MathJax').length,
    untypeset: Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))
                    .map(e => e.textContent.slice(0, 80)),
    mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
                    .map(e => e.getAttribute('data-mjx-error') || e.textContent),
    prose: prose.innerText,
    title: document.title,
    // text inside formulas, as MathJax's assistive MathML holds it (a visible backslash)
    mathText: Array.from(document.querySelectorAll('mjx-assistive-mml mtext')).map(e => e.textContent)
                   .filter(t => t.includes(String.fromCharCode(92))),
    // code blocks with lines hidden sideways, display equations wider than the text column
    cutCode: Array.from(article.querySelectorAll('pre')).filter(e => e.scrollWidth > e.clientWidth + 1)
                  .map(e => e.textContent.slice(0, 60)),
    wideMath: Array.from(article.querySelectorAll('mjx-container[display="true"]'))
                   .filter(e => e.getBoundingClientRect().right > article.getBoundingClientRect().right + 1)
                   .map(e => e.getBoundingClientRect().width),
    pageWidth: document.documentElement.scrollWidth,
    // icons (Font Awesome's web font, drawn by the theme's CSS): a visible one without its glyph
    blankIcons: Array.from(document.querySelectorAll('i[class*="fa-"]')).filter(i => i.getClientRects().length)
                     .filter(i => { const style = getComputedStyle(i);
                                    return ['none', 'normal', ''].includes(getComputedStyle(i, '::before').content)
                                           || !document.fonts.check(`${style.fontWeight} 16px ${style.fontFamily}`); })
                     .map(i => i.className),
  };
}"""


def accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical violations on ``page`` (its script is injected, not fetched)."""
    from axe_playwright_python.sync_playwright import Axe

    # preload: axe would fetch the stylesheets itself and resolve their @import against the page
    # (a 404 for /basic.css); the rule that needs them (css-orientation-lock) is a minor one
    found = Axe().run(page, options={"resultTypes": ["violations"], "preload": False}).response["violations"]
    return [f"{v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['html'][:120]})"
            for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("path", [f"{p}.html" for p in PAGES] + ["search.html", "genindex.html"])
def test_page_loads_clean_with_math_and_images(browser, server, path, width):
    """On a laptop and on a phone, with the network cut off."""
    visit = open_page(browser, server, path, viewport=(width, 900))
    state = visit.page.evaluate(PAGE_STATE)
    violations = accessibility_violations(visit.page)
    visit.page.context.close()
    assert not visit.errors, f"{path}: {visit.errors}"
    assert not visit.failed, f"{path}: requests failed: {visit.failed}"
    assert not visit.external, f"{path}: fetched from the network (the site must work offline): {visit.external}"
    assert not [i["src"] for i in state["images"] if not i["ok"]], f"{path}: images not loaded"
    no_alt = [i["src"] for i in state["images"] if not i["alt"] or ALT_IS_A_FILE.search(i["alt"])
              or (i["figure"] and len(i["alt"].split()) < 8)]
    assert not no_alt, f"{path}: images without a description for who cannot see them (alt text): {no_alt[:3]}"
    assert not state["untypeset"], f"{path}: math left untypeset: {state['untypeset'][:5]}"
    assert not state["mathErrors"], f"{path}: MathJax errors: {state['mathErrors'][:5]}"
    raw = RAW_MATH.findall(state["prose"])
    assert not raw, f"{path}: raw math delimiters in the text (markdown not parsed as math?): {raw[:5]}"
    assert not state["mathText"], f"{path}: literal backslashes in the text of formulas: {state['mathText'][:5]}"
    assert not state["cutCode"], f"{path}: code lines cut at the column's edge: {state['cutCode'][:5]}"
    assert not state["wideMath"], f"{path}: equations wider than the column: {state['wideMath'][:5]}"
    assert state["pageWidth"] <= width, f"{path}: the page scrolls sideways ({state['pageWidth']} px)"
    assert not state["blankIcons"], f"{path}: icons drawn without their glyph: {state['blankIcons']}"
    assert not violations, f"{path}: accessibility (axe-core), serious or critical:\n" + "\n".join(violations)
    assert not [u for u in visit.served if "fontawesome.js" in u], f"{path}: loads fontawesome.js (1.5 MB)"
    if path.startswith("book/0"):
        assert state["math"] > 0, f"{path}: a chapter without any typeset math?"


BASELINE_MAX = 1.3e6  # bytes: what every page costs before its own content (search.html has none)


def test_page_weight_is_reported_and_the_baseline_page_is_light(browser, server):
    """What a first visit to each page downloads (HTML, scripts, styles, fonts, images), written
    to _build/page-weight.md; search.html, which has no content of its own, is the baseline."""
    rows = []
    for path in [f"{p}.html" for p in PAGES] + ["search.html"]:
        visit = open_page(browser, server, path)
        visit.page.wait_for_load_state("networkidle")
        heaviest = max(visit.served, key=visit.served.get)
        rows.append((path, visit.weight, len(visit.served), heaviest, visit.served[heaviest]))
        visit.page.context.close()
    table = ["| page | bytes | files | heaviest file |", "| --- | ---: | ---: | --- |"]
    table += [f"| {p} | {w:,} | {n} | {h} ({b:,}) |" for p, w, n, h, b in rows]
    (SITE.parent / "page-weight.md").write_text("\n".join(table) + "\n")
    baseline = dict((p, w) for p, w, *_ in rows)["search.html"]
    assert baseline < BASELINE_MAX, f"search.html weighs {baseline:,} bytes:\n" + "\n".join(table)


def executed_notebook(docname: str) -> nbformat.NotebookNode:
    """The chapter with the outputs of the execution the site was built from (Jupyter Book's
    cache; its ``_build/jupyter_execute`` copy is written without outputs when a rebuild
    takes them from the cache)."""
    from jupyter_cache import get_cache

    source = nbformat.read(ROOT / f"{docname}.ipynb", as_version=4)
    _, executed = get_cache(str(CACHE)).merge_match_into_notebook(source)
    return executed


def _shown_code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code"
            and "remove-cell" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_shows_its_figures_and_widgets(browser, server, chapter):
    """Every figure the executed chapter made is on its page and loaded; every widget cell
    (courselib.widgets.interactive_figure) shows a static figure; on a phone a tap on a figure
    opens it at full size (tools/site_static/course.js)."""
    executed = executed_notebook(chapter)
    cells = _shown_code_cells(executed)
    figures = [sum("image/png" in o.get("data", {}) for o in c.get("outputs", [])) for c in cells]
    widget_cells = [i for i, c in enumerate(cells) if "interactive_figure(" in c.source]
    visit = open_page(browser, server, f"{chapter}.html")
    shown = visit.page.evaluate("""() => Array.from(document.querySelectorAll('div.cell')).map(cell =>
        Array.from(cell.querySelectorAll('.cell_output img')).filter(i => i.complete && i.naturalWidth > 0).length)""")
    visit.page.context.close()
    visit_full_size_figure(browser, server, chapter)
    assert sum(figures) >= 1, f"{chapter}: the executed notebook has no figure"
    assert len(shown) == len(cells), f"{chapter}: {len(shown)} code cells on the page, {len(cells)} in the notebook"
    assert shown == figures, f"{chapter}: figures per cell on the page {shown} != in the notebook {figures}"
    if chapter != "book/00_first_steps":
        assert widget_cells, f"{chapter}: no widget cell found (interactive_figure)"
    for i in widget_cells:
        assert shown[i] >= 1, f"{chapter}: the widget in code cell {i} shows no static figure on the site"


def visit_full_size_figure(browser, server: str, chapter: str) -> None:
    """On a phone, tapping a chapter's first figure opens its image at full size."""
    visit = open_page(browser, server, f"{chapter}.html", viewport=(390, 844))
    page = visit.page
    figure = page.locator("div.cell_output img").first
    width_shown = figure.bounding_box()["width"]
    natural = figure.evaluate("i => i.naturalWidth")
    figure.scroll_into_view_if_needed()
    figure.tap()
    page.wait_for_url("**/_images/*.png")
    assert page.evaluate("document.images[0].naturalWidth") == natural
    assert natural > width_shown, (chapter, natural, width_shown)
    errors = visit.errors
    page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("lab", LABS)
def test_a_lab_opens_on_its_tasks_with_the_helpers_collapsed(browser, server, lab):
    """The long read-only helper cell (tools/generate_labs.py tags it) is a "Show code cell
    source" toggle: the reader sees its first comment line, not 200 lines of code."""
    visit = open_page(browser, server, f"{lab}.html")
    page = visit.page
    helper = page.locator("div.cell.tag_hide-input")
    assert helper.count() == 1, f"{lab}: {helper.count()} collapsed cells"
    code = helper.locator("div.cell_input pre")
    assert not code.is_visible(), f"{lab}: the helper code is shown expanded"
    helper.locator("summary").first.click()
    code.wait_for(state="visible", timeout=5000)
    assert code.inner_text().count("\n") > 40
    page.context.close()


@pytest.mark.parametrize("notebook", NOTEBOOK_PAGES)
def test_a_chapter_offers_its_notebook_with_outputs(site, notebook):
    """The download menu: the source notebook (no outputs) and, for an executed chapter, the
    notebook as executed for the page (tools/site_fixes.py): every figure and printed result."""
    links = parsed(site / f"{notebook}.html").hrefs
    executed = f"{'../' * notebook.count('/')}_executed/{notebook}.ipynb"
    if notebook in LABS:  # shown blank, as students receive them: nothing executed to offer
        assert executed not in links
        return
    assert executed in links, f"{notebook}: no download of the executed notebook"
    offered = nbformat.read(site / "_executed" / f"{notebook}.ipynb", as_version=4)
    nbformat.validate(offered)
    source = nbformat.read(ROOT / f"{notebook}.ipynb", as_version=4)
    assert [c.source for c in offered.cells] == [c.source for c in source.cells]
    outputs = [o for c in offered.cells if c.cell_type == "code" for o in c.outputs]
    expected = [o for c in executed_notebook(notebook).cells if c.cell_type == "code" for o in c.outputs]
    assert outputs == expected and any("image/png" in o.get("data", {}) for o in outputs)


def _launch_urls(notebook: str) -> dict[str, str]:
    repo = CONFIG["repository"]["url"].rstrip("/")
    branch = CONFIG["repository"].get("branch", "main")
    org_repo = urlparse(repo).path.strip("/")
    launch = CONFIG["launch_buttons"]
    path = f"{notebook}.ipynb"
    # a chapter opens on Colab as its Colab copy (MyST as plain Markdown: tools/colab.py), which the
    # student edition holds in colab/; the labs hold no MyST and open as they are
    colab_path = f"colab/{path}" if notebook.startswith("book/") else path
    return {
        "colab": f"{launch['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/{colab_path}",
        "binder": f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{org_repo}/{branch}?urlpath=lab/tree/{path}",
        "jupyterhub": (f"{launch['jupyterhub_url'].rstrip('/')}/hub/user-redirect/git-pull?repo="
                       f"{repo.replace('://', '%3A//')}&urlpath=lab/tree/{org_repo.split('/')[-1]}/{path}"
                       f"&branch={branch}"),
    }


@pytest.mark.parametrize("notebook", NOTEBOOK_PAGES)
def test_launch_buttons_open_this_notebook(browser, server, notebook):
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", f"{notebook}.ipynb"], cwd=ROOT,
                             capture_output=True).returncode == 0
    assert tracked, f"{notebook}.ipynb is not in the repository: its launch links would 404"
    visit = open_page(browser, server, f"{notebook}.html")
    page = visit.page
    page.click("button[aria-label='Launch interactive content']")
    hrefs = page.eval_on_selector_all(".dropdown-launch-buttons a.dropdown-item", "as => as.map(a => a.href)")
    for name, expected in _launch_urls(notebook).items():
        link = page.locator(f"a.dropdown-item[href='{expected}']")
        assert link.count() == 1, f"{notebook}: no {name} launch link to {expected}; links: {hrefs}"
        assert link.is_visible(), f"{notebook}: the {name} launch link is not shown when the menu opens"
    download = page.eval_on_selector("a[href$='.ipynb'][href*='_sources']", "a => a.href")
    status = page.request.get(download).status
    page.context.close()
    assert status == 200 and download.endswith(f"_sources/{notebook}.ipynb"), (download, status)


def test_next_and_previous_walk_the_table_of_contents(browser, server):
    visit = open_page(browser, server, "index.html", lands_on=f"{PAGES[0]}.html")  # a redirect
    page = visit.page
    sidebar = page.eval_on_selector_all("nav.bd-docs-nav a.reference.internal", "as => as.map(a => a.href)")
    assert [urlparse(h).path.lstrip("/") for h in sidebar] == [f"{p}.html" for p in PAGES], sidebar
    walked = [urlparse(page.url).path.lstrip("/")]
    assert walked == [f"{PAGES[0]}.html"]
    while page.locator("a.right-next").count():
        page.click("a.right-next")
        page.wait_for_load_state("load")
        walked.append(urlparse(page.url).path.lstrip("/"))
        assert len(walked) <= len(PAGES) + 2, walked
    assert walked == [f"{p}.html" for p in PAGES], walked
    page.click("a.left-prev")
    page.wait_for_load_state("load")
    assert urlparse(page.url).path.lstrip("/") == f"{PAGES[-2]}.html"
    errors = visit.errors
    page.context.close()
    assert not errors, errors


DRAWER = """sel => { const e = document.querySelector(sel); if (!e) return null; const r = e.getBoundingClientRect();
  const shown = a => { const q = a.getBoundingClientRect(); return q.width > 0 && q.right > 0 && q.left < innerWidth; };
  return {open: e.open === true, left: r.left, right: r.right,
          links: Array.from(e.querySelectorAll('a')).filter(shown).map(a => a.getAttribute('href'))}; }"""


def test_a_phone_reader_opens_and_closes_the_menu_and_the_page_contents(browser, server):
    """At 390 px the sidebars are drawers: tapping ☰ opens the table of contents, tapping beside
    it closes it; the same for the page contents (pydata-sphinx-theme issue 2451 broke both)."""
    visit = open_page(browser, server, "book/02_initialization.html", viewport=(390, 844))
    page = visit.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways on a phone"
    for toggle, drawer, outside, expected in (
            (".primary-toggle", "#pst-primary-sidebar-modal", (380, 420), "03_optimizers.html"),
            (".secondary-toggle", "#pst-secondary-sidebar-modal", (10, 420), "#"),
    ):
        buttons = page.locator(f"{toggle}:visible")
        assert buttons.count() == 1, f"{toggle}: {buttons.count()} visible buttons"
        buttons.first.tap()
        page.wait_for_function(f"document.querySelector('{drawer}').open === true", timeout=5000)
        state = page.evaluate(DRAWER, drawer)
        assert state["left"] >= 0 and state["right"] <= 390, state
        assert any(expected in (href or "") for href in state["links"]), state["links"]
        page.touchscreen.tap(*outside)
        page.wait_for_function(f"document.querySelector('{drawer}').open === false", timeout=5000)
    page.locator(".primary-toggle:visible").first.tap()  # and a link in the drawer leads on
    page.wait_for_function("document.querySelector('#pst-primary-sidebar-modal').open === true")
    page.locator("#pst-primary-sidebar-modal a[href$='03_optimizers.html']").first.tap()
    page.wait_for_url("**/book/03_optimizers.html")
    errors = visit.errors
    page.context.close()
    assert not errors, errors


def test_a_desktop_reader_collapses_and_restores_the_sidebar(browser, server):
    visit = open_page(browser, server, "book/02_initialization.html", viewport=(1280, 900))
    page = visit.page
    sidebar = "document.querySelector('#pst-primary-sidebar').getBoundingClientRect().right"
    assert page.evaluate(sidebar) > 200
    assert page.evaluate("document.querySelector('.bd-header').getBoundingClientRect().height") == 0, \
        "a header bar above the page (a second search button only) is back"
    page.locator(".primary-toggle:visible").first.click()
    page.wait_for_function(f"{sidebar} <= 0", timeout=5000)
    page.locator(".primary-toggle:visible").first.click()
    page.wait_for_function(f"{sidebar} > 200", timeout=5000)
    errors = visit.errors
    page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("query, expected", [("Kaiming", "book/02_initialization.html"),
                                             ("AdamW", "book/03_optimizers.html"),
                                             ("convolution", "book/04_cnns.html")])
def test_search_finds_the_chapter(browser, server, query, expected):
    visit = open_page(browser, server, f"{PAGES[0]}.html")
    page = visit.page
    page.locator("button.search-button__button:visible").first.click()  # as a reader would
    box = page.locator("input[name='q']:visible")
    box.fill(query)
    box.press("Enter")
    page.wait_for_url("**/search.html?q=*")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    results = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
    page.context.close()
    assert any(urlparse(r).path.endswith(expected) for r in results), f"{query!r}: {results}"


@pytest.mark.parametrize("width", [1280, 390])
def test_a_search_result_opens_on_the_highlighted_term(browser, server, width):
    """Chapter 7 first names Kaiming near its end: opened from the search results, the page shows
    the term highlighted (Sphinx) and scrolled into view (tools/site_static/course.js)."""
    visit = open_page(browser, server, "search.html?q=Kaiming", viewport=(width, 844))
    page = visit.page
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    page.locator("#search-results ul.search li a[href$='07_training_in_practice.html']").first.click()
    page.wait_for_url("**/book/07_training_in_practice.html")
    page.wait_for_function("document.querySelector('article span.highlighted') !== null", timeout=5000)
    page.wait_for_function("window.scrollY > 2000", timeout=5000)
    match = page.locator("article span.highlighted:visible").first
    box = match.bounding_box()
    assert match.inner_text().lower() == "kaiming"
    assert box["y"] >= 0 and box["y"] + box["height"] <= 844, box
    errors = visit.errors
    page.context.close()
    assert not errors, errors


def _blank(png: Path) -> bool:
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    return float(pixels[..., :3].std()) < 0.02


SCREENSHOT_NAMES = ("home.png", "chapter.png", "phone.png")


def test_screenshots_of_home_and_a_chapter(browser, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    visit = open_page(browser, server, f"{PAGES[0]}.html", viewport=(1280, 800))
    visit.page.screenshot(path=str(SCREENSHOTS / "home.png"))
    visit.page.context.close()
    visit = open_page(browser, server, "book/02_initialization.html", viewport=(1280, 800))
    # the section that derives Xavier's variance: prose, display math, then code
    visit.page.evaluate("window.scrollTo(0, document.querySelector('#xavier-glorot-initialization')"
                        ".getBoundingClientRect().top + window.scrollY - 70)")
    visit.page.screenshot(path=str(SCREENSHOTS / "chapter.png"))
    visit.page.context.close()
    # on a phone: the same section, text, maths and code wrapped to the column
    visit = open_page(browser, server, "book/02_initialization.html", viewport=(390, 844))
    visit.page.evaluate("window.scrollTo(0, document.querySelector('#xavier-glorot-initialization')"
                        ".getBoundingClientRect().top + window.scrollY - 60)")
    visit.page.screenshot(path=str(SCREENSHOTS / "phone.png"))
    visit.page.context.close()
    for name in SCREENSHOT_NAMES:
        assert not _blank(SCREENSHOTS / name), f"{name} is blank"


def test_readme_shows_the_screenshots():
    readme = (ROOT / "README.md").read_text()
    for name in SCREENSHOT_NAMES:
        assert f"docs/img/{name}" in readme, f"README does not show docs/img/{name}"
        assert (ROOT / "docs" / "img" / name).exists() and not _blank(ROOT / "docs" / "img" / name)


def test_make_pdf_prints_the_whole_course(site, browser):
    """`make pdf` from the built site: one PDF with every chapter and lab, a table of contents and
    bookmarks, in well under 5 minutes; then every page's download menu offers it. (Last in this
    file: it writes the site's pages again.)"""
    started = time.monotonic()
    pdf, state = build_pdf.build_pdf(ROOT, quiet=True, browser=browser)  # the tests' Chromium
    seconds = time.monotonic() - started
    assert seconds < 300, f"make pdf took {seconds:.0f} s"
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type /Page[^s]", data))
    assert data.startswith(b"%PDF-") and b"/Outlines" in data, "not a PDF with bookmarks"
    assert pages > 100, f"{pages} pages"
    titles = [nbformat.read(ROOT / f"{p}.ipynb", as_version=4).cells[0].source.splitlines()[0].lstrip("# ")
              for p in NOTEBOOK_PAGES]
    assert state["chapters"] >= len(NOTEBOOK_PAGES) + 1, state  # + the bibliography
    assert state["images"] >= 60, state
    printed = (SITE.parent / "singlehtml" / "course.html").read_text(encoding="utf-8")
    assert all(html.escape(t, quote=False) in printed for t in titles), [t for t in titles if t not in printed]
    for docname in PAGES:
        links = _Links()
        links.feed((site / f"{docname}.html").read_text(encoding="utf-8"))
        assert f"{'../' * docname.count('/')}{build_pdf.PDF_NAME}" in links.hrefs, f"{docname}: no link to the PDF"
