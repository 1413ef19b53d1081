"""The real nbgrader command line, end to end, in a scratch course directory:
generate -> release -> fetch -> submit (filesystem exchange) -> collect, plus zip_collect
for students who upload files (e.g. from Colab) -> the course's grading command
(`python -m grading <lab>`: sandboxed autograde, trusted scores, feedback, export) ->
release_feedback -> fetch_feedback.

Three students per lab: the reference solution (full marks), the blank student version
(0, and grading does not crash), and one typical mistake in every answer cell (exactly the
catalogued partial score). The grades CSV carries the same totals."""
import csv
import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grading import labs
from grading.course import Course
from support import COURSE, catalogue
from tools import generate_labs

pytestmark = pytest.mark.pipeline
NBGRADER = str(Path(sys.executable).with_name("nbgrader"))


def nbg(*args: str, cwd: Path, exchange: Path) -> str:
    run = subprocess.run([NBGRADER, *args, f"--Exchange.root={exchange}", "--log-level=INFO"],
                         cwd=cwd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout + run.stderr


def fill(student_nb_path: Path, replacements: dict[str, str], written: str | None) -> nbformat.NotebookNode:
    nb = nbformat.read(student_nb_path, as_version=4)
    for cell in nb.cells:
        meta = labs.nbmeta(cell)
        if labs.is_answer(cell) and meta["grade_id"] in replacements:
            cell.source = replacements[meta["grade_id"]]
        elif cell.cell_type == "markdown" and meta.get("solution") and written is not None:
            cell.source = written
    return nb


class PipelineChecks:
    LAB: str

    def test_full_pipeline(self, tmp_path):
        lab = self.LAB
        course = Course.load().scratch(tmp_path, (lab,))
        exchange = tmp_path / "exchange"
        exchange.mkdir()
        os.chmod(exchange, 0o777)
        src_nb = labs.read(COURSE.source_path(lab))
        max_score = labs.max_auto_score(src_nb)
        cat = catalogue(lab)

        # instructor: generate (as `make labs` does: nbgrader, then the student marks) and release;
        # the generated notebook is the committed one
        nbg("generate_assignment", lab, "--force", cwd=course, exchange=exchange)
        released = course / "labs" / lab / f"{lab}.ipynb"
        generate_labs.add_student_marks(released)
        assert released.read_text() == COURSE.student_path(lab).read_text()
        nbg("release_assignment", lab, "--force", cwd=course, exchange=exchange)

        # a student on JupyterHub: fetch, solve, submit; the instructor collects
        home = tmp_path / "student"
        home.mkdir()
        nbg("fetch_assignment", lab, "--course=dl-course", cwd=home, exchange=exchange)
        fetched = home / lab / f"{lab}.ipynb"
        assert fetched.exists()
        nbformat.write(fill(fetched, labs.answers(src_nb), "A thoughtful written answer."), fetched)
        # the student's Validate: it passes, and no test cell shows a value nbgrader would try to
        # read as a score ("Cell output is ..., which cannot be converted to a float ...")
        run = subprocess.run([NBGRADER, "validate", fetched.name], cwd=fetched.parent, capture_output=True, text=True,
                             timeout=900)  # its own command line: no --log-level or --Exchange options
        log = run.stdout + run.stderr
        assert run.returncode == 0 and "Success! Your notebook passes all the tests." in log, log[-3000:]
        assert "partial credit" not in log and "future releases" not in log, log[-3000:]
        nbg("submit", lab, "--course=dl-course", cwd=home, exchange=exchange)
        nbg("collect", lab, "--update", cwd=course, exchange=exchange)
        hub_student = getpass.getuser()
        assert (course / "submitted" / hub_student / lab / f"{lab}.ipynb").exists()

        # students working on Colab upload "<id>_<lab>.ipynb" files: zip_collect files them
        archive = course / "downloaded" / lab / "archive"
        archive.mkdir(parents=True)
        shutil.copy(COURSE.student_path(lab), archive / f"blank_{lab}.ipynb")
        nbformat.write(fill(COURSE.student_path(lab), cat.COMBINED, None), archive / f"mistakes_{lab}.ipynb")
        nbg("zip_collect", lab, "--force", cwd=course, exchange=exchange)
        for sid in ("blank", "mistakes"):
            assert (course / "submitted" / sid / lab / f"{lab}.ipynb").exists()

        # the course's grading command (sandboxed autograde, trusted scores, feedback, export),
        # collecting again from the exchange: nothing is graded twice
        with open(course / "nbgrader_config.py", "a") as fh:
            fh.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
        run = subprocess.run([sys.executable, "-m", "grading", lab, "--cell-timeout=120"], cwd=course,
                             capture_output=True, text=True,
                             timeout=1200)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "3 submissions: 3 graded, 0 flagged, 0 failed" in run.stdout, run.stdout
        hidden = [line.strip() for c in src_nb.cells if labs.is_test(c)
                  for line in c.source.split("### BEGIN HIDDEN TESTS")[-1].splitlines()
                  if line.strip().startswith(("check", "assert", "for ", "expect"))]
        for sid in (hub_student, "blank", "mistakes"):
            page = (course / "feedback" / sid / lab / f"{lab}.html").read_text()
            assert not [line for line in hidden if line in page]
        # release_feedback serves students of the exchange (uploaded files have no submission secret)
        nbg("release_feedback", lab, f"--student={hub_student}", cwd=course, exchange=exchange)
        nbg("fetch_feedback", lab, "--course=dl-course", cwd=home, exchange=exchange)
        assert list((home / lab / "feedback").glob("*/*.html"))

        expected = {hub_student: max_score, "blank": 0.0, "mistakes": float(cat.COMBINED_EXPECTED_SCORE)}
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            for sid, want in expected.items():
                sub = gb.find_submission(lab, sid)
                assert sub.code_score == pytest.approx(want), f"{sid}: {sub.code_score} != {want}"
                assert sub.max_code_score == pytest.approx(max_score)

        with open(course / "reports" / lab / "grades.csv", newline="") as fh:
            rows = {r["student_id"]: r for r in csv.DictReader(fh) if r["assignment"] == lab}
        assert set(rows) == set(expected)
        for sid, want in expected.items():
            assert float(rows[sid]["raw_score"]) == pytest.approx(want)


for _lab in COURSE.labs():
    _name = "TestPipeline_" + _lab.replace("-", "_")
    globals()[_name] = type(_name, (PipelineChecks,), {"LAB": _lab})
