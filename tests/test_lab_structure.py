"""Structure every lab follows: each autograded test cell first names its own grade id.

A test cell opens with ``checks.cell("<its grade_id>")``: that line tells the checks which cell
is running (for the error messages and the grading report). A copied cell whose first line still
names the cell it was copied from would report under the wrong name, so the ids must match.
"""
import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_NOTEBOOKS = sorted(p for pat in ("solutions/*/*.ipynb", "labs/*/*.ipynb") for p in ROOT.glob(pat))


def autograded_cells(path: Path) -> list[tuple[str, str]]:
    """(grade_id, source) of every autograded test cell of a lab notebook."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            cells.append((meta["grade_id"], cell.source))
    return cells


def named_cell(source: str) -> str | None:
    """The string in a leading ``checks.cell("...")`` statement, or None."""
    body = ast.parse(source).body
    if not body or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call):
        return None
    call = body[0].value
    if (isinstance(call.func, ast.Attribute) and call.func.attr == "cell"
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "checks"
            and len(call.args) == 1 and not call.keywords and isinstance(call.args[0], ast.Constant)):
        return call.args[0].value
    return None


def test_there_are_lab_notebooks_with_test_cells():
    assert LAB_NOTEBOOKS and all(autograded_cells(p) for p in LAB_NOTEBOOKS)


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_cell_first_names_its_own_grade_id(path):
    wrong = [(grade_id, named_cell(src)) for grade_id, src in autograded_cells(path) if named_cell(src) != grade_id]
    assert not wrong, f"test cells whose first statement is not checks.cell(<own grade_id>): {wrong}"


@pytest.mark.parametrize("source, expected", [
    ('checks.cell("test_a")\nassert f(1) == 2', "test_a"),
    ('# a comment first is fine\nchecks.cell("test_a")', "test_a"),
    ('assert f(1) == 2\nchecks.cell("test_a")', None),
    ('checks.cell(name)', None),
    ('other.cell("test_a")', None),
])
def test_named_cell_reads_only_a_leading_checks_cell_call(source, expected):
    assert named_cell(source) == expected
