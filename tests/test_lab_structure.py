"""The conventions of docs/writing-a-lab.md that can be read off the files, for every lab folder.

A test cell opens with ``checks.cell("<its grade_id>")``: that line tells the checks which cell
is running (for the error messages and the grading report). A copied cell whose first line still
names the cell it was copied from would report under the wrong name, so the ids must match. A
test cell does not end with a value other than a call (a check returning None: tests/test_labs.py
runs every test cell and fails one that shows a value).
"""
import ast
import re
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from grading import labs
from grading.course import LAB_NAME, Course
from tools import build_book

COURSE = Course.load()
ROOT = COURSE.root
LAB_NOTEBOOKS = sorted(p for lab in COURSE.labs() for p in (COURSE.source_path(lab), COURSE.student_path(lab))
                       if p.is_file())


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


def ends_with_a_value(source: str) -> bool:
    """Whether the cell's last statement is an expression that is not a call (a name, a
    comparison, a string, ...): Jupyter would show its value as Out[n]."""
    body = ast.parse(source).body
    return bool(body) and isinstance(body[-1], ast.Expr) and not isinstance(body[-1].value, ast.Call) \
        and not source.rstrip().endswith(";")


def visible_part(source: str) -> str:
    return source.split("### BEGIN HIDDEN TESTS")[0]


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_cell_ends_with_a_value(path):
    bad = [gid for gid, src in autograded_cells(path)
           if ends_with_a_value(labs.strip_markers(src)) or ends_with_a_value(visible_part(src))]
    assert not bad, f"test cells that end with a bare expression (shown as Out[n]): {bad}"


@pytest.mark.parametrize("source, expected", [
    ('checks.cell("t")\nassert f(1) == 2', False),
    ('checks.cell("t")\ncheck_conv(f, cases)', False),
    ('checks.cell("t")\nmessage', True),
    ('checks.cell("t")\nf(1) == 2', True),
    ('checks.cell("t")\n"done"', True),
    ('checks.cell("t")\nmessage;', False),
])
def test_ends_with_a_value_reads_the_last_statement(source, expected):
    assert ends_with_a_value(source) == expected


def test_labs_are_found_by_folder():
    assert COURSE.labs() == sorted(p.parent.name for p in (ROOT / COURSE.source).glob("*/*.ipynb")
                                   if p.stem == p.parent.name)
    assert len(COURSE.labs()) >= 3


@pytest.mark.parametrize("lab", COURSE.labs())
def test_lab_folder_follows_the_guide(lab):
    """docs/writing-a-lab.md, sections 1-6, for what the files show."""
    assert LAB_NAME.fullmatch(lab), f"{lab!r}: a lab's name is lower-case letters, digits and hyphens"
    assert COURSE.student_path(lab).is_file(), f"{lab}: no student version (run `make labs`)"
    nb = labs.read(COURSE.source_path(lab))
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    # an upload "<student>_<lab>.ipynb" is filed under that student and lab by nbgrader's zip_collect
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    match = re.match(config.FileNameCollectorPlugin.named_regexp, f"uploads/s.1-x_{lab}.ipynb")
    assert match and match.group("student_id") == "s.1-x" and match.group("file_id") == f"{lab}.ipynb"
    # the helper cell: locked, grade id check_helpers, the rule and the checks session
    helpers = [c for c in nb.cells if labs.nbmeta(c).get("grade_id") == "check_helpers"]
    assert len(helpers) == 1 and labs.nbmeta(helpers[0]).get("locked") and not labs.is_test(helpers[0]), \
        f"{lab}: one locked helper cell with grade_id check_helpers"
    assert re.search(r"^checks = checking\.Session\(", helpers[0].source, re.M), f"{lab}: no checks session"
    policy = labs.policy(nb)
    assert "forbidden" in policy, f"{lab}: the helper cell declares no POLICY = {{'forbidden': ...}}"
    for key in policy:
        re.compile(policy[key])
    answers, tests = labs.answers(nb), labs.tests(nb)
    assert all(gid.startswith("test_") for gid in tests), f"{lab}: test cells' grade ids start with test_"
    written = [labs.nbmeta(c)["grade_id"] for c in nb.cells if c.cell_type == "markdown"
               and labs.nbmeta(c).get("solution") and labs.nbmeta(c).get("grade")]
    assert written and all(w.startswith("written_") for w in written), f"{lab}: written answers: {written}"
    # the mistake catalogue
    cat = COURSE.catalogue(lab)
    for name in ("MISTAKES", "COMBINED", "COMBINED_EXPECTED_SCORE", "FORBIDDEN"):
        assert hasattr(cat, name), f"{COURSE.catalogue_path(lab)} has no {name}"
    assert set(cat.FORBIDDEN) <= set(cat.MISTAKES) and cat.FORBIDDEN, \
        f"{lab}: FORBIDDEN names catalogued mistakes that use a forbidden routine (at least one)"
    for name, (gid, _source, fails) in cat.MISTAKES.items():
        assert gid in answers and set(fails) <= set(tests), f"{lab}: mistake {name} names unknown cells"
    # the website lists it
    assert f"{COURSE.release}/{lab}/{lab}" in build_book.toc_pages(ROOT)


def _loads(source: str) -> set[str]:
    """Names a cell reads without assigning them itself."""
    tree = ast.parse(source)
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    stored |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - stored


def _defines(source: str) -> set[str]:
    tree = ast.parse(source)
    return ({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            | {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)})


def required_answers(nb) -> dict[str, list[str]]:
    """For each experiment code cell (by id): the answers it runs, directly, through another answer
    (``xavier_normal_`` calls ``compute_fans``) or through what an earlier experiment cell made."""
    answers = labs.answers(nb)
    uses = {name: {other for other in answers if other != name and other in _loads(source)}
            for name, source in answers.items()}
    required, made, made_with = {}, set(), set()
    for cell in nb.cells:
        if cell.cell_type != "code" or "experiment" not in cell.metadata.get("tags", []):
            continue
        body = cell.source.split("\n", 1)[1] if cell.source.startswith("labcheck.require_written(") else cell.source
        todo = [a for a in answers if a in _loads(body)] + (sorted(made_with) if _loads(body) & made else [])
        needed: set[str] = set()
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo += sorted(uses[name])
        required[cell.id] = [a for a in answers if a in needed]
        made |= _defines(body)
        made_with |= needed
    return required


def guard(source: str) -> list[str] | None:
    """The arguments of a leading ``labcheck.require_written(...)`` statement, or None."""
    body = ast.parse(source).body
    call = body[0].value if body and isinstance(body[0], ast.Expr) else None
    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "require_written"
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "labcheck"):
        return [arg.id for arg in call.args if isinstance(arg, ast.Name)]
    return None


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiments_first_name_the_blank_answers_they_run(path):
    """Run All on a lab not finished yet reaches the experiments (their cells may raise): each then
    says which answer to write (labcheck.require_written), not a bare error from deep inside the
    training or a KeyError in the next cell."""
    nb = nbformat.read(path, as_version=4)
    required = required_answers(nb)
    assert required, "the lab has no experiment code cell"
    cells = {c.id: c.source for c in nb.cells}
    for cell_id, answers in required.items():
        if answers:
            assert guard(cells[cell_id]) is not None, (f"experiment cell {cell_id} runs {answers}: start it "
                                                       f"with labcheck.require_written({', '.join(answers)})")
            assert set(guard(cells[cell_id])) >= set(answers), (cell_id, guard(cells[cell_id]), answers)
        else:
            assert guard(cells[cell_id]) is None, f"experiment cell {cell_id} runs no answer: no guard needed"
