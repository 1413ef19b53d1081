"""Every committed notebook: valid, no outputs, the course kernel; student labs carry no answers."""
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for pat in ("book/*.ipynb", "solutions/*/*.ipynb", "labs/*/*.ipynb") for p in ROOT.glob(pat))


def test_there_are_notebooks():
    assert any(p.match("book/*.ipynb") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"cells {with_outputs} have outputs: commit notebooks stripped"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), \
        "a notebook opens with its title"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parts[-3] == "labs"], ids=lambda p: p.name)
def test_student_labs_hold_no_instructor_material(path):
    text = json.dumps(nbformat.read(path, as_version=4).cells)
    for marker in nbgrader_markers():
        assert marker not in text


def nbgrader_markers() -> list[str]:
    """The delimiters nbgrader looks for in an instructor notebook (read from nbgrader itself, so
    that this file, published with the student edition, does not spell them out)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, InstantiateTests

    solutions, hidden, autotests = ClearSolutions(), ClearHiddenTests(), InstantiateTests()
    return [solutions.begin_solution_delimeter, solutions.end_solution_delimeter, hidden.begin_test_delimeter,
            hidden.end_test_delimeter, autotests.autotest_delimiter]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parts[-3] != "labs"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_student_labs_expect_errors(path):
    """nbval must fail on any error in a chapter or an instructor lab (a failing hidden test)."""
    tagged = [i for i, c in enumerate(nbformat.read(path, as_version=4).cells)
              if "raises-exception" in c.metadata.get("tags", [])]
    assert not tagged, f"cells {tagged} are tagged raises-exception"


def test_pytest_collects_every_cell_of_every_notebook_for_nbval():
    """`pytest` (pyproject.toml's testpaths and addopts) runs every notebook under nbval."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                          "-p", "no:cacheprovider", "--ignore=tests"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    collected = [line.split("::")[0] for line in run.stdout.splitlines() if ".ipynb::Cell " in line]
    for path in NOTEBOOKS:
        code = sum(c.cell_type == "code" for c in nbformat.read(path, as_version=4).cells)
        assert collected.count(str(path.relative_to(ROOT))) == code, (path, run.stdout[-2000:])
    assert len(collected) == sum(collected.count(str(p.relative_to(ROOT))) for p in NOTEBOOKS)
