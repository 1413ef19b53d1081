"""The Colab copies of the chapters: the same notebooks with their MyST markup as plain Markdown.

The website (Jupyter Book) and JupyterLab (``jupyterlab-myst``) render the chapters' MyST
markup; Colab cannot, and shows it raw: ``{cite}`he2016deep``` instead of a citation, and a
self-check answer as a code block of raw LaTeX. ``make publish`` therefore writes, beside each
chapter ``book/<name>.ipynb`` of the student edition, a copy ``colab/book/<name>.ipynb`` whose
code cells are the chapter's own and whose Markdown says the same thing in the Markdown every
notebook viewer renders:

- ``{cite}`a,b``` -> "(Author Year; Author Year)", the labels the website prints
  (:mod:`tools.site_fixes`), and a last cell *References* that lists the works the chapter cites;
- ``{ref}`label``` -> the title of the section the label marks, in italics, after its chapter's
  title when it is in another chapter ("*Training CNNs in practice › 7. Learning-rate
  schedules*"); ``(label)=`` lines are dropped;
- a relative link to a notebook (``../labs/lab1-init/lab1-init.ipynb``) -> the same notebook from
  the copy's folder (``../../labs/...``: on Colab it opens the lab); a link to another chapter
  opens its copy; inline code and code blocks are left as they are;
- an ``admonition`` or ``dropdown`` with ``:class: dropdown`` -> a ``<details>`` element (a click
  opens it, its Markdown and formulas rendered), any other admonition -> a block quote with its
  title in bold.

Any other MyST role or directive, a directive option other than ``class``/``name``, an indented
directive, a title with markup or a relative link to anything but a notebook stops the
conversion with the cell it is in (teach it here): a chapter never reaches Colab with markup
Colab would show raw. The website's Colab button opens
the copy (``tools/site_fixes.py``: :data:`site_fixes.COLAB_FOLDER`).

    python -m tools.colab OUT_DIR      # write the copies of this repository's chapters into OUT_DIR
"""
from __future__ import annotations

import argparse
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from pybtex.database import BibliographyData, parse_file

from tools.site_fixes import COLAB_FOLDER, CourseBibliography

ROOT = Path(__file__).resolve().parents[1]
BIBLIOGRAPHY = Path("book/references.bib")

ROLE = re.compile(r"\{([A-Za-z][\w:-]*)\}`([^`]*)`")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>.*)$")
LABEL = re.compile(r"^\(([\w-]+)\)=[ \t]*$", re.M)
LINK = re.compile(r"(\]\(|src=\")(?![a-z][\w+.-]*:|#|/)([^)\"\s]+)")
INLINE = re.compile(rf"(?P<role>{ROLE.pattern})|(?P<code>(`+)[^`]*?(?P=code_ticks))|(?P<link>{LINK.pattern})"
                    .replace("(`+)", "(?P<code_ticks>`+)"))
CODE_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(?!\{)")  # a plain code block: copied as it is
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", re.M)
OPTIONS = {"class", "name"}  # a directive's options this module understands (name: a label, dropped)
ADMONITIONS = {"admonition", "dropdown", "note", "tip", "hint", "important", "warning", "caution",
               "attention", "danger", "error", "seealso"}


class ColabError(ValueError):
    """The chapter holds markup this module cannot turn into plain Markdown."""


@dataclass(frozen=True)
class Citations:
    """Each bibliography key's label ("He et al. 2016a") and reference (Markdown), as the website
    formats them: the labels are those of the works cited anywhere in the book, so the letters
    ("a", "b") match the website's bibliography."""

    labels: dict[str, str]
    references: dict[str, str]

    @classmethod
    def load(cls, bib: Path, cited: set[str]) -> Citations:
        data = parse_file(str(bib))
        unknown = sorted(cited - set(data.entries))
        if unknown:
            raise ColabError(f"{bib}: no entry for the cited key(s) {unknown}")
        subset = BibliographyData({key: data.entries[key] for key in data.entries if key in cited})
        formatted = list(CourseBibliography().format_bibliography(subset))
        return cls({e.key: e.label for e in formatted},
                   {e.key: e.text.render_as("markdown").replace("\n", " ") for e in formatted})


@dataclass(frozen=True)
class Section:
    title: str
    chapter: str  # the title of the notebook it is in


def _cell_markdown(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def cited_keys(texts: list[str]) -> set[str]:
    return {key.strip() for text in texts for name, body in ROLE.findall(text)
            if name.split(":")[0] == "cite" for key in body.split(",")}


def chapter_title(nb) -> str:
    for text in _cell_markdown(nb):
        match = re.search(r"^#[ \t]+(.+)$", text, re.M)
        if match:
            return match.group(1).strip()
    return ""


def sections(notebooks: list) -> dict[str, Section]:
    """Each ``(label)=`` target of the notebooks: the heading that follows it."""
    found: dict[str, Section] = {}
    for nb in notebooks:
        texts = _cell_markdown(nb)
        for i, text in enumerate(texts):
            for match in LABEL.finditer(text):
                rest = "\n".join([text[match.end():], *texts[i + 1:i + 2]])
                heading = HEADING.search(rest)
                if heading is None:
                    raise ColabError(f"the label ({match.group(1)})= is not followed by a heading")
                found[match.group(1)] = Section(heading.group(1).strip(), chapter_title(nb))
    return found


class Converter:
    """Turns one chapter's Markdown cells into plain Markdown (see the module docstring)."""

    def __init__(self, citations: Citations, targets: dict[str, Section], chapter: str) -> None:
        self.citations, self.targets, self.chapter = citations, targets, chapter
        self.cited: list[str] = []

    def role(self, match: re.Match) -> str:
        name, body = match.group(1), match.group(2)
        if name in ("cite", "cite:p"):
            keys = [k.strip() for k in body.split(",")]
            self.cited += [k for k in keys if k not in self.cited]
            return "(" + "; ".join(self.citations.labels[k] for k in keys) + ")"
        if name == "ref":
            explicit = re.fullmatch(r"(.+?)\s*<([\w-]+)>", body)
            text, label = (explicit.group(1), explicit.group(2)) if explicit else (None, body.strip())
            if label not in self.targets:
                raise ColabError(f"{{ref}}`{body}`: no label ({label})= in the chapters")
            section = self.targets[label]
            shown = text or section.title
            return f"*{shown}*" if section.chapter == self.chapter else f"*{section.chapter} › {shown}*"
        raise ColabError(f"the role {{{name}}} has no plain-Markdown form in tools/colab.py: "
                         f"{match.group(0)}")

    @staticmethod
    def link(match: re.Match) -> str:
        """A relative link of a chapter (in book/) to a notebook, from its copy in colab/book/ (on
        Colab, a notebook link opens that notebook). Colab serves no other file of the repository
        (an image, a page), so any other relative link stops the conversion."""
        path, hash_, fragment = match.group(2).partition("#")
        target = posixpath.normpath(posixpath.join("book", path))
        if not target.endswith(".ipynb"):
            raise ColabError(f"the relative link {match.group(2)!r} leads to a file Colab cannot show: "
                             "use an absolute URL, or teach tools/colab.py to rewrite it")
        if target.startswith("book/"):  # another chapter: its copy, beside this one
            return match.group(0)
        return match.group(1) + posixpath.relpath(target, posixpath.join(COLAB_FOLDER, "book")) + hash_ + fragment

    def inline(self, text: str) -> str:
        """Roles and relative links rewritten; inline code (`` `...` ``) left as it is."""
        def one(match: re.Match) -> str:
            if match.group("role"):
                return self.role(ROLE.fullmatch(match.group(0)))
            if match.group("code"):
                return match.group(0)
            return self.link(LINK.fullmatch(match.group(0)))
        return INLINE.sub(one, text)

    def markdown(self, source: str) -> str:
        lines = source.split("\n")
        out: list[str] = []
        i = 0
        while i < len(lines):
            code = CODE_FENCE.match(lines[i])
            if code:
                end = re.compile(rf"^\s*{re.escape(code.group(1)[0])}{{{len(code.group(1))},}}\s*$")
                j = i + 1
                while j < len(lines) and not end.match(lines[j]):
                    j += 1
                out += lines[i:j + 1]
                i = j + 1
                continue
            opened = FENCE.match(lines[i])
            if opened is None:
                if not LABEL.fullmatch(lines[i].strip()):
                    out.append(self.inline(lines[i]))
                i += 1
                continue
            fence, name = opened.group("fence"), opened.group("name")
            if opened.group("indent"):
                raise ColabError(f"the directive {{{name}}} is indented (in a list?): tools/colab.py converts "
                                 "directives at the start of a line only")
            close = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            j = i + 1
            options: dict[str, str] = {}
            while j < len(lines) and re.match(r"^\s*:[\w-]+:", lines[j]):
                key, _, value = lines[j].strip()[1:].partition(":")
                if key not in OPTIONS:
                    raise ColabError(f"the directive {{{name}}} has the option :{key}:, which tools/colab.py "
                                     f"does not know ({', '.join(sorted(OPTIONS))})")
                options[key] = value.strip()
                j += 1
            body_start = j
            while j < len(lines) and not close.match(lines[j]):
                j += 1
            if j == len(lines):
                raise ColabError(f"the directive {{{name}}} is not closed:\n{source[:300]}")
            body = self.markdown("\n".join(lines[body_start:j]).strip("\n"))
            out += self.directive(name, opened.group("arg").strip(), options, body)
            if j + 1 < len(lines) and lines[j + 1].strip():
                out.append("")  # else the next line would continue the block quote or the HTML block
            i = j + 1
        return "\n".join(out)

    def directive(self, name: str, title: str, options: dict[str, str], body: str) -> list[str]:
        if name not in ADMONITIONS:
            raise ColabError(f"the directive {{{name}}} has no plain-Markdown form in tools/colab.py")
        title = title or name.capitalize()
        if re.search(r"[*_`$\[<{]", title):
            raise ColabError(f"the title of a {{{name}}} holds markup ({title!r}), which a <summary> or a bold "
                             "title would show raw: plain words only")
        if name == "dropdown" or "dropdown" in options.get("class", "").split():
            # blank lines around the body: the Markdown inside <details> is rendered, formulas too
            return [f"<details><summary><b>{title}</b></summary>", "", body, "", "</details>"]
        return [f"> **{title}**", ">"] + [f"> {line}".rstrip() for line in body.split("\n")]

    def references(self) -> str:
        items = [f"- **{self.citations.labels[k]}**. {self.citations.references[k]}"
                 for k in sorted(self.cited, key=lambda k: self.citations.labels[k])]
        return "## References\n\n" + "\n".join(items)


def convert(nb, citations: Citations, targets: dict[str, Section]):
    """The Colab copy of the notebook ``nb`` (a new notebook; ``nb`` is not changed)."""
    copy = nbformat.reads(nbformat.writes(nb), as_version=4)
    converter = Converter(citations, targets, chapter_title(nb))
    for cell in copy.cells:
        if cell.cell_type == "markdown":
            try:
                cell.source = converter.markdown(cell.source)
            except (ColabError, KeyError) as error:
                raise ColabError(f"cell {cell.get('id')}: {error}") from None
    if converter.cited:
        cell = nbformat.v4.new_markdown_cell(converter.references())
        cell.id = "colab-references"
        copy.cells.append(cell)
    return copy


def chapters(root: Path) -> list[Path]:
    return sorted(root.glob("book/*.ipynb"))


def write_copies(root: Path, into: Path) -> list[Path]:
    """Write the Colab copy of every chapter of ``root`` to ``into``/colab/book/; returns them."""
    paths = chapters(root)
    notebooks = [nbformat.read(p, as_version=4) for p in paths]
    texts = [t for nb in notebooks for t in _cell_markdown(nb)]
    texts += [p.read_text() for p in sorted(root.glob("book/*.md"))]
    citations = Citations.load(root / BIBLIOGRAPHY, cited_keys(texts))
    targets = sections(notebooks)
    written = []
    for path, nb in zip(paths, notebooks):
        target = into / COLAB_FOLDER / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            nbformat.write(convert(nb, citations, targets), target)
        except ColabError as error:
            raise ColabError(f"{path.relative_to(root)}: {error}") from None
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write colab/book/*.ipynb into")
    args = parser.parse_args(argv)
    try:
        written = write_copies(ROOT, args.out)
    except ColabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
