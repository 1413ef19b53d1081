"""The chapters' Colab copies (tools/colab.py): the same code, the MyST markup as plain Markdown.

Colab itself cannot be driven here; its Markdown is CommonMark with HTML (as JupyterLab's default
renderer), so the copies are rendered with markdown-it-py's CommonMark renderer and checked for
what a reader would see: no raw MyST, citations as the website's labels, each self-check answer a
``<details>`` whose Markdown and formulas are rendered (not a code block). The website's Colab
link to the copy and the labels' agreement with the website's bibliography are checked on the
published edition (tests/test_student_edition.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt

from tools import colab

ROOT = Path(__file__).resolve().parents[1]
MYST_LEFT = re.compile(r"\{[A-Za-z][\w:-]*\}`|^\s*(`{3,}|:{3,})\{|^\([\w-]+\)=\s*$", re.M)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, tuple]:
    out = tmp_path_factory.mktemp("colab")
    written = colab.write_copies(ROOT, out)
    return {p.name: (nbformat.read(ROOT / "book" / p.name, 4), nbformat.read(p, 4)) for p in written}


def _markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_every_chapter_has_a_copy_with_the_same_code_cells(copies):
    assert sorted(copies) == sorted(p.name for p in ROOT.glob("book/*.ipynb"))
    for name, (chapter, copy) in copies.items():
        code = [(c.id, c.source, c.metadata) for c in chapter.cells if c.cell_type == "code"]
        assert [(c.id, c.source, c.metadata) for c in copy.cells if c.cell_type == "code"] == code, name
        assert copy.metadata == chapter.metadata, name
        assert [c.id for c in copy.cells if c.id != "colab-references"] == [c.id for c in chapter.cells], name


def test_no_myst_markup_is_left_and_something_was_converted(copies):
    converted = 0
    for name, (chapter, copy) in copies.items():
        left = MYST_LEFT.findall(_markdown(copy))
        assert not left, f"{name}: MyST markup left in the Colab copy: {left[:5]}"
        converted += len(MYST_LEFT.findall(_markdown(chapter)))
    assert converted > 100  # the chapters do use MyST (106 citations, 45 answers, 12 references today)


def test_citations_read_as_the_websites_labels_and_are_listed_at_the_end(copies):
    name = "03_optimizers.ipynb"
    chapter, copy = copies[name]
    text = _markdown(copy)
    assert "{cite}" in _markdown(chapter)
    assert "heavy-ball method** of Polyak (Polyak 1964) keeps" in text
    assert "with the default betas (Kingma and Ba 2015)." in text
    references = copy.cells[-1]
    assert references.id == "colab-references" and references.source.startswith("## References\n")
    items = references.source.splitlines()[2:]
    cited = sorted(colab.cited_keys([_markdown(chapter)]))
    assert len(items) == len(cited) and all(i.startswith("- **") for i in items)
    assert any("Kingma and Ba 2015" in i and "https://arxiv.org/abs/1412.6980" in i for i in items)
    for name, (chapter, copy) in copies.items():
        if colab.cited_keys([_markdown(chapter)]):
            assert copy.cells[-1].id == "colab-references", name
        else:
            assert copy.cells[-1].id != "colab-references", name


def test_two_papers_of_the_same_authors_and_year_get_letters_as_on_the_website():
    texts = [_markdown(nbformat.read(p, 4)) for p in ROOT.glob("book/*.ipynb")]
    cites = colab.Citations.load(ROOT / colab.BIBLIOGRAPHY, colab.cited_keys(texts))
    he = sorted(label for label in cites.labels.values() if label.startswith("He et al. 201"))
    assert len(he) >= 2 and any(label.endswith("a") for label in he), he  # He et al. 2016a, 2016b...
    assert len(set(cites.labels.values())) == len(cites.labels)


def test_references_to_other_sections_name_them(copies):
    chapter, copy = copies["03_optimizers.ipynb"]
    assert "{ref}`lr-schedules`" in _markdown(chapter)
    assert "*Training CNNs in practice › 7. Learning-rate schedules*" in _markdown(copy)
    chapter7, copy7 = copies["07_training_in_practice.ipynb"]
    assert "(lr-schedules)=" in _markdown(chapter7) and "(lr-schedules)=" not in _markdown(copy7)


def _rendered(source: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(source)


def test_self_check_answers_render_as_closed_details_with_markdown_inside(copies):
    answers = 0
    for name, (_, copy) in copies.items():
        for cell in copy.cells:
            if cell.cell_type != "markdown" or "<details>" not in cell.source:
                continue
            sources = re.findall(r"<details>(.*?)</details>", cell.source, re.S)
            html = _rendered(cell.source)
            blocks = re.findall(r"<details>(.*?)</details>", html, re.S)
            assert len(blocks) == len(sources), (name, cell.id)
            for block, source in zip(blocks, sources):
                answers += 1
                assert "<summary><b>" in block and "<p>" in block, (name, block[:300])
                assert "<pre>" not in block or "```" in source, (name, block[:300])  # not a code block
                for code in re.findall(r"<code>(.*?)</code>", block, re.S):
                    assert "$" not in code, (name, code)  # formulas are text for MathJax, not code
            assert "<details open" not in html
    assert answers >= 40


def test_admonitions_without_dropdown_become_block_quotes():
    converter = colab.Converter(colab.Citations({"k": "Kay 2020"}, {"k": "Kay. A paper."}), {}, "Ch")
    out = converter.markdown("Text {cite}`k`.\n\n```{admonition} Why\nBecause $x$ {cite}`k`.\n\nAnd more.\n```\n")
    assert out == "Text (Kay 2020).\n\n> **Why**\n>\n> Because $x$ (Kay 2020).\n>\n> And more.\n"
    assert "<blockquote>" in _rendered(out)
    code = "```python\nx = a[0](b)  # {cite}`k`\n```\nAfter [a](../x.ipynb), `{cite}`."
    assert converter.markdown(code) == "```python\nx = a[0](b)  # {cite}`k`\n```\nAfter [a](../../x.ipynb), `{cite}`."
    # text right after a block starts a paragraph of its own (not a lazy line of the quote or HTML)
    after = converter.markdown("```{note}\nBody.\n```\nNext.")
    assert after == "> **Note**\n>\n> Body.\n\nNext." and "<p>Next.</p>" in _rendered(after)
    assert converter.references() == "## References\n\n- **Kay 2020**. Kay. A paper."


def test_markup_it_cannot_convert_stops_it_naming_the_cell(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "references.bib").write_text("@article{k, author={A. Kay}, title={T}, year={2020}, journal={J}}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Ch\n\nSee {numref}`fig-x` and {cite}`k`.")]
    nb.cells[0].id = "intro-cell"
    nbformat.write(nb, book / "01_ch.ipynb")
    with pytest.raises(colab.ColabError, match=r"01_ch.ipynb: cell intro-cell: the role \{numref\}"):
        colab.write_copies(tmp_path, tmp_path / "out")
    nb.cells[0].source = "# Ch\n\n```{figure} x.png\nA figure.\n```"
    nbformat.write(nb, book / "01_ch.ipynb")
    with pytest.raises(colab.ColabError, match=r"the directive \{figure\}"):
        colab.write_copies(tmp_path, tmp_path / "out")
    for source, message in (("1. Step\n\n   ```{note}\n   Body\n   ```\n2. Next", r"is indented"),
                            (":::{note}\n:math: not an option\n:::", r"has the option :math:"),
                            ("```{admonition} Why $x$?\n:class: dropdown\nBody\n```", r"holds markup")):
        nb.cells[0].source = "# Ch\n\n" + source
        nbformat.write(nb, book / "01_ch.ipynb")
        with pytest.raises(colab.ColabError, match=message):
            colab.write_copies(tmp_path, tmp_path / "out")
    nb.cells[0].source = "# Ch\n\n{cite}`nokey`"
    nbformat.write(nb, book / "01_ch.ipynb")
    with pytest.raises(colab.ColabError, match=r"no entry for the cited key\(s\) \['nokey'\]"):
        colab.write_copies(tmp_path, tmp_path / "out")


def test_the_labs_hold_no_myst_markup_colab_would_show_raw():
    """Colab opens the labs themselves (their cells are nbgrader's: no copy), so they must read
    right as they are."""
    labs = sorted(ROOT.glob("labs/*/*.ipynb")) + sorted(ROOT.glob("solutions/*/*.ipynb"))
    assert labs
    for path in labs:
        left = MYST_LEFT.findall(_markdown(nbformat.read(path, 4)))
        assert not left, f"{path.relative_to(ROOT)}: MyST markup Colab would show raw: {left[:5]}"


def test_relative_links_lead_from_the_copy_to_the_same_file(copies):
    converter = colab.Converter(colab.Citations({}, {}), {}, "Ch")
    assert converter.inline("[lab 1](../labs/lab1-init/lab1-init.ipynb), [ch 2](02_initialization.ipynb#top), "
                            "[web](https://example.org/x), [here](#sec), `[code](../x.ipynb)`") == (
        "[lab 1](../../labs/lab1-init/lab1-init.ipynb), [ch 2](02_initialization.ipynb#top), "
        "[web](https://example.org/x), [here](#sec), `[code](../x.ipynb)`")
    for other in ('<img src="fig.svg">', "[the intro](intro.md)"):  # Colab serves no such file
        with pytest.raises(colab.ColabError, match="a file Colab cannot show"):
            converter.inline(other)
    _, copy = copies["02_initialization.ipynb"]
    pointer = [c.source for c in copy.cells if "lab-pointer" in c.metadata.get("tags", [])]
    assert len(pointer) == 1 and "](../../labs/lab1-init/lab1-init.ipynb)" in pointer[0]
