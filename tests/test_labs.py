"""The labs' tests are the product: the reference solution passes every test cell, the blank
student version fails every one, and each catalogued typical mistake fails exactly the test
cells it should (tests/lab_mistakes/<lab>.py). Fast: cells run in-process, experiments skipped."""
import json
import re
from pathlib import Path

import pytest

from courselib import checking
from grading import labs, trusted
from support import COURSE, catalogue
from support import source as _source
from tools import generate_labs

ROOT = Path(__file__).resolve().parents[1]


def pytest_generate_tests(metafunc):
    if "mistake" in metafunc.fixturenames:
        lab = metafunc.cls.LAB
        names = sorted(catalogue(lab).MISTAKES)
        metafunc.parametrize("mistake", names)


class LabChecks:
    LAB: str

    @pytest.fixture
    def nb(self):
        return _source(self.LAB)

    def test_structure(self, nb):
        cells = nb.cells
        answers, tests = labs.answers(nb), labs.tests(nb)
        assert answers and tests
        ids = [labs.nbmeta(c)["grade_id"] for c in cells if labs.nbmeta(c).get("grade_id")]
        assert len(ids) == len(set(ids)), "grade_ids must be unique"
        assert all(p > 0 for p in tests.values())
        for gid in answers:
            assert any(t == f"test_{gid}" or t.startswith(f"test_{gid}_") for t in tests), \
                f"answer cell {gid} has no test cell named test_{gid}[_...]"
        for c in cells:
            if labs.is_test(c):
                assert "### BEGIN HIDDEN TESTS" in c.source, f"{labs.nbmeta(c)['grade_id']} has no hidden tests"
                assert labs.nbmeta(c).get("locked"), "test cells are locked"
            if labs.is_answer(c):
                assert "### BEGIN SOLUTION" in c.source
        last_test = max(i for i, c in enumerate(cells) if labs.is_test(c))
        assert all(i > last_test for i, c in enumerate(cells) if labs.is_experiment(c)), \
            "experiment cells come after every test cell"
        written = [c for c in cells if c.cell_type == "markdown" and labs.nbmeta(c).get("solution")
                   and labs.nbmeta(c).get("grade")]
        assert written, "each lab has a manually graded written answer"

    def test_reference_solution_passes_every_test_cell(self, nb):
        res = labs.run_inprocess(nb)
        failed = {k: (v.error or v.stderr) for k, v in res.items() if not v.ok}
        assert set(res) == set(labs.tests(nb))
        assert not failed, failed
        # a test cell that ends with a value shows an Out[n] (it looks like a failure, and nbgrader
        # tries to read it as a score): every check a cell ends with returns None
        shown = {k: v.shown for k, v in res.items() if v.shown is not None}
        assert not shown, f"test cells that end with a value: {shown}"

    def test_student_version_with_the_reference_answers_passes_without_showing_values(self, nb):
        """What a student who wrote correct answers sees: every visible check passes, and no test
        cell shows an Out[n] (which would look like a failure)."""
        student = labs.read(COURSE.student_path(self.LAB))
        res = labs.run_inprocess(student, labs.answers(nb))
        assert {k for k, r in res.items() if not r.ok} == set(), {k: r.error for k, r in res.items() if not r.ok}
        assert {k: r.shown for k, r in res.items() if r.shown is not None} == {}

    def test_blank_student_version_fails_every_test_cell(self):
        student = labs.read(COURSE.student_path(self.LAB))
        res = labs.run_inprocess(student)
        assert res and all(not r.ok for r in res.values()), \
            [k for k, r in res.items() if r.ok]
        assert all("NotImplementedError" in r.error for r in res.values())

    def test_student_version_expects_exactly_the_errors_of_its_stubs(self):
        """nbval runs the blank lab: the cells tagged raises-exception are exactly those that raise,
        each for the unanswered stubs (see labs.expected_errors); every other cell runs clean."""
        student = labs.read(COURSE.student_path(self.LAB))
        expected = labs.expected_errors(student)
        tagged = {i for i, c in enumerate(student.cells) if generate_labs.RAISES in c.metadata.get("tags", [])}
        assert tagged == set(expected)
        assert {i for i, c in enumerate(student.cells) if labs.is_test(c)} <= tagged
        assert not any(labs.is_answer(student.cells[i]) for i in tagged), "an answer cell must define, not call"
        assert sum(e.startswith("NotImplementedError") for e in expected.values()) >= len(labs.tests(student)) // 2

    def test_an_error_in_a_helper_cell_of_the_student_lab_is_refused(self):
        student = labs.read(COURSE.student_path(self.LAB))
        helper = next(i for i, c in enumerate(student.cells) if c.cell_type == "code" and not labs.is_test(c)
                      and not labs.is_answer(c) and "import" in c.source)
        student.cells[helper].source += "\nundefined_name_in_setup\n"
        with pytest.raises(ValueError, match=f"cell {helper} .* raises \"NameError"):
            labs.expected_errors(student)

    def test_student_version_is_what_nbgrader_generates(self, tmp_path):
        generate_labs.generate((self.LAB,), tmp_path)
        diffs = generate_labs.differences(ROOT / "labs" / self.LAB, tmp_path / self.LAB)
        assert not diffs, f"labs/{self.LAB} drifted from solutions/ (run `make labs`): {diffs}"

    def test_no_hidden_test_code_reaches_students(self, nb):
        student_text = json.dumps(labs.read(COURSE.student_path(self.LAB)).cells)
        for c in nb.cells:
            for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", c.source, re.S):
                for line in region.splitlines():
                    line = line.strip()
                    if len(line) > 25 and not line.startswith("#"):
                        assert json.dumps(line)[1:-1] not in student_text, f"hidden test line leaked: {line}"
            if labs.is_answer(c):
                sol = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", c.source, re.S).group(1)
                for line in sol.splitlines():
                    if len(line.strip()) > 30:
                        assert json.dumps(line.strip())[1:-1] not in student_text, f"solution line leaked: {line}"

    def test_long_helper_cells_start_collapsed_for_students(self):
        student = labs.read(COURSE.student_path(self.LAB))
        collapsed = [i for i, c in enumerate(student.cells) if generate_labs.HIDE in c.metadata.get("tags", [])]
        helpers = [i for i, c in enumerate(student.cells) if generate_labs.is_long_helper(c)]
        assert helpers and collapsed == helpers, (helpers, collapsed)
        assert all(student.cells[i].metadata["jupyter"]["source_hidden"] is True for i in helpers)
        # on Colab: the form view shows the cell's #@title line (what it provides), not its code
        assert all(student.cells[i].source.startswith("#@title ") and student.cells[i].metadata["cellView"] == "form"
                   for i in helpers)

    def test_catalogue_covers_every_answer_cell(self, nb):
        cat = catalogue(self.LAB)
        covered = [gid for gid, _src, _fail in cat.MISTAKES.values()]
        for gid in labs.answers(nb):
            assert covered.count(gid) >= 3, f"fewer than 3 catalogued mistakes for {gid}"
        assert set(cat.COMBINED) == set(labs.answers(nb)), "COMBINED needs one mistake per answer cell"

    def test_typical_mistake_fails_exactly_the_expected_tests(self, nb, mistake, tmp_path, monkeypatch):
        """... in the notebook, and in the grader's trusted replay of the same run."""
        gid, source, expected = catalogue(self.LAB).MISTAKES[mistake]
        record = tmp_path / "records.bin"
        monkeypatch.setenv(checking.RECORD_ENV, str(record))
        res = labs.run_inprocess(nb, {gid: source})
        monkeypatch.delenv(checking.RECORD_ENV)
        failed = {k for k, r in res.items() if not r.ok}
        assert failed == set(expected), (
            f"mistake {mistake!r}: failed {sorted(failed)}, expected {sorted(expected)}; "
            + "; ".join(f"{k}: {(r.error or r.stderr)[:200]}" for k, r in res.items() if k in failed ^ set(expected)))
        verdicts, problem = trusted.replay(nb, record)
        assert not problem
        trusted_failed = {k for k, v in verdicts.items() if not v.passed}
        assert trusted_failed == failed, (
            f"mistake {mistake!r}: the trusted replay failed {sorted(trusted_failed)}, the notebook {sorted(failed)}: "
            + "; ".join(f"{k}: {verdicts[k].message}" for k in trusted_failed ^ failed))

    def test_combined_mistakes_score(self, nb):
        cat = catalogue(self.LAB)
        res = labs.run_inprocess(nb, cat.COMBINED)
        points = labs.tests(nb)
        score = sum(points[k] for k, r in res.items() if r.ok)
        assert score == cat.COMBINED_EXPECTED_SCORE
        assert 0 < score < labs.max_auto_score(nb)


for _lab in COURSE.labs():
    _name = "TestLab_" + _lab.replace("-", "_")
    globals()[_name] = type(_name, (LabChecks,), {"LAB": _lab})


@pytest.mark.notebook
def test_nbval_fails_a_student_lab_on_any_error_but_the_expected_ones(tmp_path):
    """The student lab as committed passes nbval; the same lab with one test cell's tag removed,
    or with an error in a helper cell, fails it at exactly that cell."""
    import subprocess
    import sys

    lab = "lab3-conv"
    student = labs.read(COURSE.student_path(lab))
    labs.nbformat.write(student, tmp_path / "as_committed.ipynb")
    test_cell = next(i for i, c in enumerate(student.cells) if labs.is_test(c))
    untagged = labs.read(COURSE.student_path(lab))
    untagged.cells[test_cell].metadata["tags"].remove(generate_labs.RAISES)
    labs.nbformat.write(untagged, tmp_path / "untagged.ipynb")
    broken = labs.read(COURSE.student_path(lab))
    helper = next(i for i, c in enumerate(broken.cells) if c.cell_type == "code" and "import" in c.source
                  and not c.metadata.get("tags"))
    broken.cells[helper].source += "\nundefined_name_in_setup\n"
    labs.nbformat.write(broken, tmp_path / "broken_helper.ipynb")
    code_cells = [i for i, c in enumerate(student.cells) if c.cell_type == "code"]
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                          "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rf",
                          "as_committed.ipynb", "untagged.ipynb", "broken_helper.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    failed = re.findall(r"^FAILED (\S+::Cell \d+)", run.stdout, re.M)
    assert sorted(failed) == [f"broken_helper.ipynb::Cell {code_cells.index(helper)}",
                              f"untagged.ipynb::Cell {code_cells.index(test_cell)}"], run.stdout[-3000:]
