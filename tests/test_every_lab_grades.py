"""Every lab, found by folder, graded as a small class by the grading command (`course-grade`, what
`make grade` runs): the reference answers, blank, the catalogue's combined mistakes, a
catalogued mistake of the first and of the last answer cell, and one attack of each kind that needs no knowledge of the
lab (the lab-specific ones, and the attacks that take minutes, are in tests/test_adversarial.py).

Expected scores come from the lab itself: a catalogued mistake loses the points of the cells the
catalogue lists; an attack that stops an answer cell (killing the grader, exiting the kernel, an
endless loop) scores what the notebook scores without that answer, measured in-process.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import nbformat
import pytest

from grading import labs
from grading.course import Course
from support import HIDDEN_PRINT, LIAR, PATCH, snoop_code, student_notebook

pytestmark = pytest.mark.pipeline
COURSE = Course.load()
CELL_TIMEOUT = 20


def score_without(source: nbformat.NotebookNode, answers: dict[str, str], gid: str) -> float:
    """What the notebook scores in-process with ``answers`` but answer ``gid`` left undefined."""
    points = labs.tests(source)
    stub = "raise NotImplementedError()"  # the answer cell stops before it defines anything
    res = labs.run_inprocess(source, {**answers, gid: stub})
    return float(sum(points[k] for k, r in res.items() if r.ok))


def the_class(lab: str, course: Path, port: int) -> dict[str, tuple[dict, float, str]]:
    """student id -> (answer cells, exact expected score, expected status)."""
    source = labs.read(COURSE.source_path(lab))
    ref, points = labs.answers(source), labs.tests(source)
    full = float(sum(points.values()))
    blank = labs.answers(labs.read(COURSE.student_path(lab)))  # the stubs, as students get them
    first, last = list(ref)[0], list(ref)[-1]
    cat = COURSE.catalogue(lab)
    students = {
        "reference": (ref, full, "graded"),
        "blank": ({}, 0.0, "graded"),
        "combined-mistakes": (cat.COMBINED, float(cat.COMBINED_EXPECTED_SCORE), "graded"),
    }
    for gid in dict.fromkeys([first, last]):  # the first catalogued mistake of the first and last answer
        name, (_, code, fails) = next((n, m) for n, m in sorted(cat.MISTAKES.items()) if m[0] == gid)
        status = "flagged" if name in cat.FORBIDDEN else "graded"
        students[f"mistake-{name}"[:60].replace("_", "-")] = (
            {**ref, gid: code}, full - sum(points[t] for t in fails), status)
    secrets = [course / "solutions" / lab / f"{lab}.ipynb", course / "gradebook.db", Path("/etc/shadow"),
               COURSE.source_path(lab)]
    without_first, without_last = score_without(source, ref, first), score_without(source, ref, last)
    students.update({
        # patching what tests compare with, around blank answers: nothing to earn
        "patch-comparisons": ({first: PATCH + blank[first]}, 0.0, "flagged"),
        # an object that says yes to every comparison: plain data has no opinions
        "lying-objects": ({first: LIAR + blank[first].replace(
            "raise NotImplementedError()", "return torch.zeros(1).as_subclass(Agreeable)")}, 0.0, "flagged"),
        # every later cell turned into `pass`: no checks ran, nothing earned
        "input-transformer": ({**ref, first: ref[first] + '\nget_ipython().input_transformers_cleanup'
                               '.append(lambda lines: ["pass\\n"])\n'}, 0.0, "flagged"),
        "hook-prints-tests": ({**ref, first: HIDDEN_PRINT + ref[first]}, full, "flagged"),
        "snoop": ({**ref, first: snoop_code(secrets, port) + ref[first]}, full, "flagged"),
        "kill-parent": ({**ref, first: "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + ref[first]},
                        without_first, "flagged"),
        "exit-kernel": ({**ref, last: "import os\nos._exit(0)\n" + ref[last]}, without_last, "flagged"),
        "endless-loop": ({**ref, last: "while True:\n    pass\n" + ref[last]}, without_last, "flagged"),
        "delete-record": ({**ref, first: "import os\nos.remove(os.environ['COURSELIB_RECORD'])\n" + ref[first]},
                          0.0, "flagged"),
    })
    return students


@pytest.fixture(scope="module")
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    yield sock
    sock.close()


@pytest.mark.parametrize("lab", COURSE.labs())
def test_the_grading_command_grades_a_class_of_every_lab(lab, tmp_path, listener):
    course = COURSE.scratch(tmp_path, [lab])
    shutil.copytree(COURSE.release_dir(lab), Course.load(course).release_dir(lab))
    students = the_class(lab, course, listener.getsockname()[1])
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for sid, (answers, _, _) in students.items():
        nbformat.write(student_notebook(answers, lab), uploads / f"{sid}_{lab}.ipynb")
    command = shutil.which("course-grade")
    assert command, "the console command course-grade is not installed (pip install -e .)"
    run = subprocess.run([command, lab, f"--from={uploads}", "--workers=2", f"--cell-timeout={CELL_TIMEOUT}"],
                         cwd=course, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{len(students)} submissions:" in run.stdout
    results = {p.stem: p for p in (course / "reports" / lab / "results").glob("*.json")}
    assert set(results) == set(students)
    got = {sid: json.loads(path.read_text()) for sid, path in results.items()}
    wrong = {sid: (got[sid]["score"], got[sid]["status"], expected, status, got[sid]["flags"][:3])
             for sid, (_, expected, status) in students.items()
             if (got[sid]["score"], got[sid]["status"]) != (expected, status)}
    assert not wrong, wrong
    # the feedback never shows hidden test code
    source = labs.read(COURSE.source_path(lab))
    hidden = [line.strip() for c in source.cells if labs.is_test(c)
              for line in c.source.split("### BEGIN HIDDEN TESTS")[-1].splitlines() if len(line.strip()) > 30]
    for page in (course / "feedback").rglob("*.html"):
        text = page.read_text()
        assert not [line for line in hidden if line in text], page
