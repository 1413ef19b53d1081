"""The whole course as one PDF: ``make pdf``.

    python -m tools.build_pdf        (after ``make book``, or it builds the website first)

1. the website, as ``make book`` builds it (nothing is executed again when it is built);
2. Jupyter Book's single-page HTML build of the same book (``_build/singlehtml``), from the
   same execution cache: every chapter and lab on one page, with its figures;
3. that page printed by headless Chromium, the browser the website tests use, into
   ``_build/html/course.pdf``: maths typeset by the site's own MathJax, every image loaded, code
   lines wrapped (``tools/site_static/course.css``), a table of contents of the chapters and their
   sections at the start, PDF bookmarks, page numbers;
4. the website's pages written again, so that every page's download menu offers
   "whole course .pdf" (tools/site_fixes.py adds that entry when ``course.pdf`` exists).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools import build_book, site_fixes

ROOT = Path(__file__).resolve().parents[1]
PDF_NAME = site_fixes.COURSE_PDF  # in the website's root folder, where every page links to it
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

# Run in the single page before printing: load every image now (they are lazy), then put a table
# of contents (chapters and their sections, linked) after the title.
PREPARE = """async () => {
  const images = Array.from(document.images);
  images.forEach(i => { i.loading = 'eager'; });
  await Promise.all(images.map(i => i.complete ? null : new Promise(done => { i.onload = i.onerror = done; })));
  const article = document.querySelector('article.bd-article');
  const nav = document.createElement('nav');
  nav.id = 'course-contents';
  nav.innerHTML = '<h2>Contents</h2>';
  const list = document.createElement('ol');
  let chapter = null;
  article.querySelectorAll('section > h2, section > h3').forEach(h => {
    const id = h.parentElement.id;
    if (!id) return;
    const item = document.createElement('li');
    item.innerHTML = `<a href="#${id}"></a>`;
    item.firstChild.textContent = h.textContent.replace(/#$/, '').trim();
    if (h.tagName === 'H2') {
      list.appendChild(item);
      chapter = item.appendChild(document.createElement('ol'));
    } else if (chapter) chapter.appendChild(item);
  });
  nav.appendChild(list);
  const title = article.querySelector('h1');
  title.parentElement.insertBefore(nav, title.nextSibling);
  return {images: images.length, broken: images.filter(i => !(i.naturalWidth > 0)).map(i => i.src),
          chapters: list.children.length};
}"""
PRINT_CSS = """
#course-contents { break-after: page; }
#course-contents ol ol { font-size: 0.9em; margin-bottom: 0.4em; }
article.bd-article section > h2 { break-before: page; }
"""
FOOTER = ('<div style="font-size: 8px; width: 100%; text-align: center; color: #555;">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


class PdfError(Exception):
    """The PDF could not be made; the message says why."""


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A local HTTP server for ``folder``; yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()


def build_single_page(root: Path) -> Path:
    """Jupyter Book's singlehtml build of ``root``; returns the page (warnings fail it)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(root), "--builder", "singlehtml", "-W", "-n", "--keep-going"],
                            cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise PdfError("the single-page build failed:\n" + (result.stdout + result.stderr)[-3000:])
    out = root / "_build" / "singlehtml"
    pages = [p for p in out.rglob("*.html") if "_static" not in p.parts and p.name not in ("index.html", "course.html")]
    if len(pages) != 1:
        raise PdfError(f"expected one page in _build/singlehtml, found {[str(p) for p in pages]}")
    # Sphinx writes it where the root document is (book/intro.html) with links relative to the
    # build's top folder (_static/, _images/): it only works from there.
    page = out / "course.html"
    pages[0].replace(page)
    return page


def print_pdf(page_file: Path, site: Path, target: Path, browser: Any = None) -> dict:
    """Print ``page_file`` (inside ``site``) with headless Chromium into ``target``; ``browser``:
    a Playwright browser to use (else one is launched)."""
    if browser is None:
        if not Path(CHROMIUM).exists():
            raise PdfError(f"no Chromium at {CHROMIUM}: sudo apt-get install chromium (or set CHROMIUM=/path)")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            own = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                return print_pdf(page_file, site, target, own)
            finally:
                own.close()
    context = browser.new_context(viewport={"width": 1000, "height": 1400})
    try:
        state = _print_page(context.new_page(), page_file, site, target)
    finally:
        context.close()
    return state


def _print_page(page: Any, page_file: Path, site: Path, target: Path) -> dict:
    """Open ``page_file`` in ``page``, make it ready (maths, images, contents) and print it."""
    with serve(site) as base:
        page.goto(base + page_file.relative_to(site).as_posix(), wait_until="load", timeout=120_000)
        page.emulate_media(media="print")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("async () => { await MathJax.startup.promise; }")
        state = page.evaluate(PREPARE)
        page.add_style_tag(content=PRINT_CSS)
        state["untypeset"] = page.evaluate(
            "Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container')).length")
        # (the theme's scripts raise on the single page's "#document-labs/..." anchors: harmless)
        if state["broken"] or state["untypeset"]:
            raise PdfError(f"the page is not ready to print: images not loaded {state['broken'][:3]}, "
                           f"{state['untypeset']} formulas not typeset")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".pdf.part")
        page.pdf(path=str(partial), format="A4", print_background=True, outline=True, tagged=True,
                 margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
                 display_header_footer=True, header_template="<div></div>", footer_template=FOOTER)
    partial.replace(target)
    return state


def build_pdf(root: Path = ROOT, quiet: bool = False, browser: Any = None) -> tuple[Path, dict]:
    """Make ``root``'s ``_build/html/course.pdf`` (steps in the module docstring); returns its path
    and what the printed page held (``chapters``: its top-level sections, ``images``)."""
    started = time.monotonic()
    site = build_book.build(root, quiet=quiet, source=root)
    if site.returncode != 0:
        raise PdfError("the website did not build cleanly (run make book to see why)")
    page = build_single_page(root)
    target = root / "_build" / "html" / PDF_NAME
    state = print_pdf(page, root / "_build" / "singlehtml", target, browser)
    relinked = build_book.build(root, quiet=True, source=root, rewrite_all=True)
    if relinked.returncode != 0:
        raise PdfError("writing the website's pages again failed:\n" + relinked.stdout[-3000:])
    if not quiet:
        print(f"{target}: {target.stat().st_size / 1e6:.1f} MB, {state['chapters']} chapters and labs, "
              f"{state['images']} images, in {time.monotonic() - started:.0f} s")
    return target, state


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    try:
        build_pdf()
    except PdfError as error:
        print(f"make pdf: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
